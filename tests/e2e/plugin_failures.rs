//! Every way a plugin can fail to load or to run gives one line naming the file and the cause,
//! and the host keeps running (or exits non-zero with that line when the plugin was required).
//!
//! The broken plugins are built from `tests/fixtures/bad-plugins`, a workspace of their own.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::{Clshost, build_workspace, plugin_file, stdout_ok};
use clshost::registry::{Registry, SearchPath};
use clshost_plugin_api::{ABI_MINOR, LossContext, Tensor};

fn fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_workspace("tests/fixtures/bad-plugins"))
}

/// The built fixture plugin `id` (`panics`, `not_a_plugin`, ...).
pub(crate) fn fixture(id: &str) -> PathBuf {
    fixtures_dir().join(plugin_file(id))
}

/// Runs `clshost --plugin <fixture> plugins` and returns (exit code, stderr).
fn required_plugin_failure(id: &str) -> (Option<i32>, String, PathBuf) {
    let path = fixture(id);
    let out = Clshost::new().run(["--plugin".as_ref(), path.as_os_str(), "plugins".as_ref()]);
    (
        out.status.code(),
        String::from_utf8(out.stderr).unwrap(),
        path,
    )
}

#[test]
fn a_library_that_is_not_a_plugin() {
    let (code, stderr, path) = required_plugin_failure("not_a_plugin");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: plugin {}: not a clshost plugin (it exports no `clshost_plugin_abi` handshake)\n",
            path.display()
        )
    );
}

#[test]
fn a_plugin_built_for_a_newer_abi_major() {
    let (code, stderr, path) = required_plugin_failure("abi_future");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: plugin {}: built for plugin ABI 2.3, but this clshost uses ABI 1.{ABI_MINOR}: \
             rebuild it against clshost-plugin-api 1.x\n",
            path.display()
        )
    );
}

#[test]
fn a_plugin_built_for_an_older_abi_major() {
    let (code, stderr, path) = required_plugin_failure("abi_past");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: plugin {}: built for plugin ABI 0.4, but this clshost uses ABI 1.{ABI_MINOR}: \
             rebuild it against clshost-plugin-api 1.x\n",
            path.display()
        )
    );
}

#[test]
fn a_plugin_whose_abi_layout_differs() {
    let (code, stderr, path) = required_plugin_failure("layout_mismatch");
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: plugin {}: ABI layout mismatch: it says ABI 1.{ABI_MINOR} but its types differ \
             from this clshost's (built against a modified clshost-plugin-api?); rebuild it \
             against clshost-plugin-api 1.{ABI_MINOR} (run with -vv for the layout report)\n",
            path.display()
        )
    );
}

#[test]
fn discovered_broken_plugins_are_skipped_and_listed() {
    let dir = fixtures_dir();
    let out = Clshost::new().run(["--plugin-dir".as_ref(), dir.as_os_str(), "plugins".as_ref()]);
    let stdout = stdout_ok(&out);
    let stderr = String::from_utf8(out.stderr).unwrap();
    for id in ["not_a_plugin", "abi_future", "abi_past", "layout_mismatch"] {
        let path = fixture(id);
        let line = format!("not loaded: {}: ", path.display());
        assert_eq!(stdout.matches(&line).count(), 1, "{line} in:\n{stdout}");
        let warning = format!("WARN skipping plugin {}: ", path.display());
        assert_eq!(
            stderr.matches(&warning).count(),
            1,
            "{warning} in:\n{stderr}"
        );
    }
    assert!(stdout.contains("panic_in_compute"), "{stdout}");
    assert_eq!(
        stderr.lines().count(),
        4,
        "one line per broken plugin:\n{stderr}"
    );
}

#[test]
fn two_plugins_offering_one_name_is_an_error_naming_both() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let copies: Vec<PathBuf> = dirs
        .iter()
        .zip(["panics_a", "panics_b"])
        .map(|(d, id)| {
            let copy = d.path().join(plugin_file(id));
            std::fs::copy(fixture("panics"), &copy).unwrap();
            copy
        })
        .collect();
    let out = Clshost::new().run([
        "--plugin-dir".as_ref(),
        dirs[0].path().as_os_str(),
        "--plugin-dir".as_ref(),
        dirs[1].path().as_os_str(),
        "plugins".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: two plugins offer a component named `panic_in_compute`: {} \
             (clshost-plugin-panics) and {} (clshost-plugin-panics); remove one of them from the \
             plugin search path\n",
            copies[0].display(),
            copies[1].display()
        )
    );
}

fn panics_registry() -> Registry {
    let search = SearchPath {
        files: vec![fixture("panics")],
        ..SearchPath::default()
    };
    Registry::load(&search).expect("the panics fixture loads")
}

/// The line of `needle` in the fixture's source, for the panic location in messages.
fn source_line(needle: &str) -> usize {
    let source = include_str!("../fixtures/bad-plugins/panics/src/lib.rs");
    source
        .lines()
        .position(|l| l.contains(needle))
        .expect("needle in source")
        + 1
}

#[test]
fn a_constructor_that_panics() {
    let registry = panics_registry();
    let ctx = LossContext { num_classes: 3 };
    for _ in 0..2 {
        let err = registry
            .new_loss("panic_in_new", "", &ctx)
            .err()
            .expect("the constructor fails");
        assert_eq!(
            err.to_string(),
            format!(
                "loss `panic_in_new` (plugin clshost-plugin-panics, {}): new: panicked: \
                 constructor exploded (at panics/src/lib.rs:{})",
                fixture("panics").display(),
                source_line("constructor exploded")
            )
        );
    }
}

#[test]
fn a_component_method_that_panics() {
    let registry = panics_registry();
    let loss = registry
        .new_loss("panic_in_compute", "", &LossContext { num_classes: 3 })
        .expect("created");
    let logits = Tensor::zeros(vec![2, 3]);
    let targets = Tensor::zeros(vec![2, 3]);
    let mut grad = Tensor::zeros(vec![2, 3]);
    for _ in 0..2 {
        let err = loss
            .compute(logits.view(), targets.view(), grad.view_mut())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "loss `panic_in_compute` (plugin clshost-plugin-panics, {}): compute: panicked: \
                 index out of bounds: the len is 6 but the index is 16 (at panics/src/lib.rs:{})",
                fixture("panics").display(),
                source_line("values[index]")
            )
        );
    }
}

#[test]
fn a_bad_config_names_the_field() {
    let registry = panics_registry();
    let err = registry
        .new_loss(
            "panic_in_compute",
            "(smoothing: 0.1)",
            &LossContext { num_classes: 3 },
        )
        .err()
        .expect("unknown field");
    assert_eq!(
        err.to_string(),
        format!(
            "loss `panic_in_compute` (plugin clshost-plugin-panics, {}): new: line 1, column 2: \
             `smoothing`: unknown field `smoothing` (this component takes no parameters)",
            fixture("panics").display()
        )
    );
}
