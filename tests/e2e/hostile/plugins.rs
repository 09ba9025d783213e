//! Hostile plugin files: truncated or damaged libraries in a searched directory.

use std::path::{Path, PathBuf};

use crate::support::{Clshost, FIRST_PARTY_PLUGINS, plugin_file, profile_dir, stderr, stdout_ok};
use clshost::registry::file_check;

/// The first 5 KB, 64 KB and 300 KB of the built losses plugin, as plugins of their own in
/// `dir`, each with the message that refuses it.
fn truncated_copies(dir: &Path) -> Vec<(PathBuf, String)> {
    let full = std::fs::read(profile_dir().join(plugin_file("losses"))).expect("the plugin");
    [5 * 1024, 64 * 1024, 300 * 1024]
        .into_iter()
        .map(|cut| {
            let path = dir.join(plugin_file(&format!("losses_first_{cut}")));
            std::fs::write(&path, &full[..cut]).expect("writing a truncated copy");
            let message = file_check::check(&path)
                .expect_err("a truncated copy is refused")
                .to_string();
            assert!(
                message.starts_with("is damaged or truncated: its segment at offset ")
                    && message.ends_with(&format!(
                        " lies past the end of the {cut}-byte file (a half-finished copy?); copy \
                         it again or remove it"
                    )),
                "{message}"
            );
            (path, message)
        })
        .collect()
}

/// A directory with three truncated copies, an empty file and a text file under plugin names,
/// and the message each one gets.
fn hostile_dir() -> (tempfile::TempDir, Vec<(PathBuf, String)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = truncated_copies(dir.path());
    let empty = dir.path().join(plugin_file("empty"));
    std::fs::write(&empty, b"").expect("writing an empty file");
    files.push((
        empty,
        "is empty (a half-finished copy?); copy it again or remove it".to_string(),
    ));
    let text = dir.path().join(plugin_file("notes"));
    std::fs::write(&text, "not a library\n").expect("writing a text file");
    files.push((
        text,
        "is not a shared library: its 14 bytes start with no ELF, Mach-O or PE header".to_string(),
    ));
    (dir, files)
}

#[test]
fn truncated_plugins_are_listed_as_not_loaded_and_the_others_still_load() {
    let clshost = Clshost::new();
    let (dir, files) = hostile_dir();
    let out = clshost.run([
        "--plugin-dir".as_ref(),
        dir.path().as_os_str(),
        "plugins".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = stdout_ok(&out);
    let stderr = stderr(&out);
    for (path, message) in &files {
        let line = format!("not loaded: {}: {message}\n", path.display());
        assert!(stdout.contains(&line), "{line} in:\n{stdout}");
        let warning = format!("skipping plugin {}: {message}\n", path.display());
        assert!(stderr.contains(&warning), "{warning} in:\n{stderr}");
    }
    assert_eq!(stderr.lines().count(), files.len(), "{stderr}");
    let footer = format!(" components from {} plugins, ", FIRST_PARTY_PLUGINS.len());
    assert!(stdout.contains(&footer), "{stdout}");
    assert!(stdout.contains("cross_entropy"), "{stdout}");
}

#[test]
fn doctor_reports_truncated_plugins_found_through_the_environment() {
    let clshost = Clshost::new();
    let (dir, files) = hostile_dir();
    let out = clshost
        .command(["doctor"])
        .env("CLSHOST_PLUGIN_PATH", dir.path())
        .output()
        .expect("clshost runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout_ok(&out);
    let loaded = format!("\nPlugins loaded: {}\n", FIRST_PARTY_PLUGINS.len());
    assert!(text.contains(&loaded), "{text}");
    assert!(
        text.contains(&format!("\nNot loaded: {}\n", files.len())),
        "{text}"
    );
    for (path, message) in &files {
        let line = format!("  {} (CLSHOST_PLUGIN_PATH): {message}\n", path.display());
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

#[test]
fn a_truncated_plugin_named_on_the_command_line_stops_the_command() {
    let clshost = Clshost::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, message) = truncated_copies(dir.path()).remove(0);
    let out = clshost.run(["--plugin".as_ref(), path.as_os_str(), "plugins".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("error: plugin {}: {message}\n", path.display())
    );
}
