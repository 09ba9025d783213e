//! Cargo run from inside a test binary (`cargo test` runs the test, the test runs `cargo build`),
//! shared by the end-to-end tests and the host's data tests (`host/tests/data/common.rs` includes
//! this file by path).
//!
//! A nested build of the workspace's default members (a plain `cargo build`) finds every unit
//! that `cargo test --workspace` compiled, and only links and copies the binary and the plugins
//! into `target/<profile>/`. One of a single package (`-p`) resolves that package's features
//! alone, compiles it again, and makes the next plain build compile it back.

use std::env;
use std::process::Command;

/// A `cargo` command, the one running the tests, with the environment of a shell.
///
/// `cargo test` describes the package under test to its binaries (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME`, ...). Build scripts that read those names (ring's does) tell cargo to rerun
/// when they change, so a nested build that inherited them would rebuild such crates and
/// everything above them, and the next `cargo test` would rebuild them back.
pub fn cargo_command() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || PACKAGE_VARIABLES.contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// The variables, besides `CARGO_PKG_*` and `CARGO_BIN_EXE_*`, that cargo sets for a test binary
/// about its own package.
const PACKAGE_VARIABLES: [&str; 6] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
];
