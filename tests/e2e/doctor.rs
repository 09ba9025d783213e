//! `clshost doctor`: what the installation offers, as text and JSON, on the machine the tests run
//! on. The first-party plugins are built with their default features (cpu and wgpu, no cuda).

use std::path::Path;

use crate::support::{Clshost, FIRST_PARTY_PLUGINS, plugin_file, profile_dir, stdout_ok};
use clshost_plugin_api::ABI_MINOR;
use serde_json::Value;

/// Whether Mesa's software Vulkan (lavapipe) is installed, so wgpu has an adapter without a GPU.
fn lavapipe_installed() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
}

fn doctor_json() -> Value {
    let out = Clshost::new().run(["doctor", "--json"]);
    serde_json::from_str(&stdout_ok(&out)).expect("one JSON object")
}

/// The resnet plugin's report of `backend` in `doctor --json`.
fn resnet_backend<'a>(json: &'a Value, backend: &str) -> Option<&'a Value> {
    json["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == backend)
        .and_then(|b| {
            b["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["plugin"] == "clshost-plugin-resnet")
        })
}

#[test]
fn text_lists_versions_search_path_plugins_backends_and_a_verdict() {
    let out = Clshost::new().run(["doctor"]);
    let text = stdout_ok(&out);
    assert!(
        text.starts_with(&format!(
            "clshost {} (plugin ABI {})\nCPUs: ",
            env!("CARGO_PKG_VERSION"),
            clshost_plugin_api::ABI_VERSION_STRING
        )),
        "{text}"
    );
    let exe_dir = profile_dir();
    assert!(
        text.contains(&format!(
            "{} (executable directory): {} plugin files",
            exe_dir.display(),
            FIRST_PARTY_PLUGINS.len()
        )),
        "{text}"
    );
    for id in ["resnet", "augment", "losses", "metrics", "export"] {
        let file = exe_dir.join(plugin_file(id));
        assert!(
            text.contains(&format!("       {}\n", file.display())),
            "{text}"
        );
        assert!(text.contains(&format!("  clshost-plugin-{id} ")), "{text}");
    }
    assert!(text.contains("(user directory): does not exist"), "{text}");
    assert!(
        text.contains(&format!(
            "  clshost-plugin-resnet 0.1.0 (ABI 1.{ABI_MINOR}): 3 backbones; devices \
                 reported: cpu, wgpu\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  clshost-plugin-losses 0.1.0 (ABI 1.{ABI_MINOR}): 3 losses; devices reported: \
                 no backends\n"
        )),
        "{text}"
    );
    let threads = std::thread::available_parallelism().unwrap();
    assert!(
        text.contains(&format!(
            "\nVerdict:\n  cpu: 1 device: cpu = flex [{threads} thread"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "  cuda: not built into any loaded plugin (first-party plugins: rebuild with \
             `--features cuda`)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  libtorch: not built into any loaded plugin (first-party plugins: rebuild with \
             `--features libtorch` after `eval \"$(scripts/setup-libtorch.sh)\"`)\n"
        ),
        "{text}"
    );
}

#[test]
fn json_has_plugins_cpu_and_the_backends_with_their_devices() {
    let json = doctor_json();
    assert_eq!(json["abi"], clshost_plugin_api::ABI_VERSION_STRING);
    assert_eq!(
        json["cpu"]["available_parallelism"],
        std::thread::available_parallelism().unwrap().get()
    );
    // Started directly: a job of one, whether or not the build has MPI.
    let distributed = &json["distributed"];
    assert_eq!(
        (&distributed["rank"], &distributed["size"]),
        (&0.into(), &1.into())
    );
    assert!(distributed["launcher"].is_null() && distributed["problem"].is_null());
    let names: Vec<&str> = json["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for crate_name in FIRST_PARTY_PLUGINS {
        assert!(names.contains(&crate_name), "{names:?}");
    }
    let resnet = json["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "clshost-plugin-resnet")
        .unwrap();
    assert_eq!(resnet["components"]["backbone"], 3);
    assert_eq!(resnet["abi_minor"], clshost_plugin_api::ABI_MINOR);
    assert_eq!(json["failures"], Value::Array(vec![]));
    assert_eq!(json["registry_error"], Value::Null);

    let cpu = resnet_backend(&json, "cpu").expect("resnet reports cpu");
    assert_eq!(cpu["devices"][0]["id"], "cpu");
    assert_eq!(cpu["devices"][0]["name"], "flex");
    assert_eq!(cpu["problem"], Value::Null);
    assert!(
        resnet_backend(&json, "cuda").is_none(),
        "cuda is not in the default build"
    );

    let exe = json["search_path"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"] == "executable directory")
        .unwrap();
    assert_eq!(exe["exists"], true);
    assert_eq!(
        exe["files"].as_array().unwrap().len(),
        FIRST_PARTY_PLUGINS.len()
    );
}

#[test]
fn wgpu_reports_the_software_adapter_or_why_there_is_none() {
    let json = doctor_json();
    let wgpu = resnet_backend(&json, "wgpu").expect("wgpu is in the default build");
    let devices = wgpu["devices"].as_array().unwrap();
    if lavapipe_installed() {
        let default = devices
            .iter()
            .find(|d| d["id"] == "wgpu")
            .unwrap_or_else(|| panic!("the default adapter is listed: {wgpu}"));
        let name = default["name"].as_str().unwrap();
        let detail = default["detail"].as_str().unwrap();
        if name.starts_with("llvmpipe") {
            assert!(
                detail.contains("Cpu: software rasterizer, slow"),
                "{detail}"
            );
        }
        assert!(
            devices
                .iter()
                .any(|d| d["name"].as_str().unwrap().starts_with("llvmpipe")),
            "lavapipe's adapter is listed: {wgpu}"
        );
    } else if devices.is_empty() {
        assert!(
            wgpu["problem"].as_str().unwrap().starts_with("no "),
            "{wgpu}"
        );
    }
}

#[test]
fn shadowed_plugins_and_missing_directories_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(plugin_file("losses"));
    std::fs::copy(profile_dir().join(plugin_file("losses")), &copy).unwrap();
    let missing = dir.path().join("missing");
    let out = Clshost::new()
        .command(["doctor"])
        .env(
            "CLSHOST_PLUGIN_PATH",
            std::env::join_paths([dir.path(), Path::new(&missing)]).unwrap(),
        )
        .output()
        .unwrap();
    let text = stdout_ok(&out);
    assert!(
        text.contains(&format!(
            "  1. {} (CLSHOST_PLUGIN_PATH): 1 plugin file\n       {}\n  2. {} (CLSHOST_PLUGIN_PATH): does not exist\n",
            dir.path().display(),
            copy.display(),
            missing.display()
        )),
        "{text}"
    );
    let shadowed = profile_dir().join(plugin_file("losses"));
    assert!(
        text.contains(&format!(
            "       {} (shadowed by {})\n",
            shadowed.display(),
            copy.display()
        )),
        "{text}"
    );
}
