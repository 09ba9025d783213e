//! The Dockerfile, checked without a Docker engine: every path it copies exists and is not
//! ignored, every workspace member reaches the builder, the build command is the README's with
//! the GPU features added, and what the runtime stage takes from the builder is what the build
//! makes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One instruction, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

/// The Dockerfile's instructions, without comments, with `\` continuations joined.
fn instructions() -> Vec<Instruction> {
    let text = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    keyword: keyword.to_uppercase(),
                    args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                });
                current.clear();
            }
        }
    }
    out
}

impl Instruction {
    /// The sources of a `COPY`: every word but the destination.
    fn copy_sources(&self) -> Vec<&str> {
        let words: Vec<&str> = self.args.split(' ').collect();
        words[..words.len() - 1].to_vec()
    }
}

/// The stages: each `FROM ... AS name` with the instructions after it.
fn stages() -> Vec<(String, Vec<Instruction>)> {
    let mut stages: Vec<(String, Vec<Instruction>)> = Vec::new();
    for i in instructions() {
        if i.keyword == "FROM" {
            let name = i.args.rsplit_once(" AS ").map(|(_, n)| n.to_string());
            stages.push((name.expect("every stage is named"), Vec::new()));
        } else {
            stages.last_mut().expect("FROM comes first").1.push(i);
        }
    }
    stages
}

/// The instructions of the stage `name`.
fn stage<'a>(stages: &'a [(String, Vec<Instruction>)], name: &str) -> &'a [Instruction] {
    let (_, instructions) = stages.iter().find(|(n, _)| n == name).unwrap();
    instructions
}

/// The patterns of `.dockerignore`.
fn ignored() -> Vec<String> {
    fs::read_to_string(repo_root().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("**/").to_string())
        .collect()
}

/// `cargo metadata` of the workspace.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The context paths the builder copies.
fn builder_copies() -> Vec<String> {
    let stages = stages();
    let builder = stage(&stages, "builder");
    builder
        .iter()
        .filter(|i| i.keyword == "COPY")
        .flat_map(|i| i.copy_sources())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_copied_context_path_exists_and_is_not_ignored() {
    let ignored = ignored();
    let mut copied = 0;
    for (_, instructions) in stages() {
        for i in instructions.iter().filter(|i| i.keyword == "COPY") {
            if i.args.starts_with("--from=") {
                continue;
            }
            for source in i.copy_sources() {
                assert!(
                    repo_root().join(source).exists(),
                    "COPY {source}: no such path"
                );
                let first = Path::new(source).components().next().unwrap();
                let first = first.as_os_str().to_string_lossy();
                assert!(
                    !ignored.iter().any(|p| *p == first),
                    "COPY {source}: excluded by .dockerignore"
                );
                copied += 1;
            }
        }
    }
    assert!(copied >= 7, "{copied} paths copied");
}

#[test]
fn the_builder_gets_every_workspace_member_and_the_lock_file() {
    let copies = builder_copies();
    assert!(copies.iter().any(|c| c == "Cargo.lock"));
    assert!(copies.iter().any(|c| c == "Cargo.toml"));
    let meta = metadata();
    let root = repo_root().canonicalize().unwrap();
    for package in meta["packages"].as_array().unwrap() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
        let dir = manifest.parent().unwrap().strip_prefix(&root).unwrap();
        assert!(
            copies.iter().any(|c| dir.starts_with(c)),
            "workspace member {} ({}) is not copied into the builder",
            package["name"],
            dir.display()
        );
    }
}

#[test]
fn the_build_is_the_readmes_with_the_gpu_backends_and_ships_every_plugin() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let readme_build = readme
        .lines()
        .find(|l| l.starts_with("cargo build"))
        .expect("the README has a build command")
        .split("&&")
        .next()
        .unwrap()
        .trim();
    let stages = stages();
    let builder = stage(&stages, "builder");
    let run = builder
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the builder runs cargo build");
    let build = &run.args[run.args.find("cargo build").unwrap()..];
    assert!(
        build.starts_with(readme_build),
        "`{build}` does not start with the README's `{readme_build}`"
    );
    assert!(build.contains("clshost-plugin-resnet/cuda"), "{build}");
    assert!(build.contains("clshost-plugin-resnet/wgpu"), "{build}");
    assert!(
        run.args
            .contains("cp target/release/clshost target/release/libclshost_plugin_*.so /out/"),
        "{}",
        run.args
    );

    // Every cdylib of the workspace is a first-party plugin the glob above ships.
    let meta = metadata();
    let mut plugins = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            let kinds = target["crate_types"].as_array().unwrap();
            if kinds.iter().any(|k| k == "cdylib") {
                plugins.push(target["name"].as_str().unwrap().replace('-', "_"));
            }
        }
    }
    assert_eq!(plugins.len(), 6, "{plugins:?}");
    for p in &plugins {
        assert!(
            p.starts_with("clshost_plugin_"),
            "{p} escapes the copy glob"
        );
    }

    let runtime = stage(&stages, "runtime");
    let shipped: Vec<&str> = runtime
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.as_str())
        .collect();
    assert!(
        shipped.contains(&"--from=builder /out/ /opt/clshost/"),
        "{shipped:?}"
    );
    assert!(
        shipped.contains(&"recipes /opt/clshost/recipes"),
        "{shipped:?}"
    );
}

#[test]
fn the_runtime_is_non_root_with_data_and_runs_volumes() {
    let stages = stages();
    let (_, runtime) = stages.last().unwrap();
    let get = |k: &str| {
        runtime
            .iter()
            .filter(|i| i.keyword == k)
            .map(|i| i.args.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("USER"), ["1000:1000"]);
    assert_eq!(get("VOLUME"), [r#"["/data", "/runs"]"#]);
    assert_eq!(get("ENTRYPOINT"), [r#"["clshost"]"#]);
    assert!(
        get("RUN")
            .iter()
            .any(|r| r.contains("useradd") && r.contains("--uid 1000"))
    );
}
