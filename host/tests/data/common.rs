//! Support shared by the data tests: the augmentation plugin, built once per test process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "../../../tests/e2e/nested_cargo.rs"]
mod nested_cargo;

/// The profile directory (`target/<profile>`) with the augmentation plugin in it, once per test
/// process: a plain `cargo build` of the workspace, as the end-to-end tests run it, which finds
/// the plugin compiled by `cargo test --workspace` and copies it there.
pub fn augment_plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = nested_cargo::cargo_command()
            .args(["build", "--quiet"])
            .current_dir(repo)
            .status()
            .unwrap();
        assert!(status.success(), "building the workspace failed");
        // target/<profile>/deps/<this test> -> target/<profile>
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    })
}
