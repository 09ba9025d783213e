//! `clshost plugins` over the first-party plugins, as a user runs it right after a build: the
//! plugins are found next to the binary.

use clshost_plugin_api::{ABI_MAJOR, ABI_MINOR};

use crate::support::{Clshost, FIRST_PARTY_PLUGINS, stdout_ok};

const KINDS: [&str; 7] = [
    "backbone",
    "sample_augment",
    "batch_augment",
    "loss",
    "metric",
    "exporter",
    "logger",
];

#[test]
fn json_lists_every_kind_from_the_executable_directory() {
    let out = Clshost::new().run(["plugins", "--json"]);
    let listing: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("valid JSON");
    let components = listing["components"].as_array().unwrap();
    for kind in KINDS {
        assert!(
            components.iter().any(|c| c["kind"] == kind),
            "no {kind} in {listing:#}"
        );
    }
    let plugins = listing["plugins"].as_array().unwrap();
    let mut names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "clshost-plugin-augment",
            "clshost-plugin-export",
            "clshost-plugin-loggers",
            "clshost-plugin-losses",
            "clshost-plugin-metrics",
            "clshost-plugin-resnet",
        ]
    );
    for p in plugins {
        assert_eq!(p["abi"], format!("{ABI_MAJOR}.{ABI_MINOR}"));
        assert_eq!(p["found_in"], "executable directory");
    }
    assert!(
        listing["failures"].as_array().unwrap().is_empty(),
        "{listing:#}"
    );
    assert!(listing["load_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_table_has_a_row_per_component_and_a_footer() {
    let clshost = Clshost::new();
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&clshost.run(["plugins", "--json"]))).unwrap();
    let count = json["components"].as_array().unwrap().len();
    let text = stdout_ok(&clshost.run(["plugins"]));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["KIND", "NAME", "PLUGIN", "VERSION", "DESCRIPTION"]);
    let rows = lines
        .clone()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| KINDS.contains(&l.split_whitespace().next().unwrap_or("")))
        .count();
    assert_eq!(rows, count, "{text}");
    let footer = format!(
        "{count} components from {} plugins, loaded in ",
        FIRST_PARTY_PLUGINS.len()
    );
    assert!(text.contains(&footer), "{text}");
}

#[test]
fn every_component_documents_every_parameter() {
    let clshost = Clshost::new();
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&clshost.run(["plugins", "--json"]))).unwrap();
    for c in json["components"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(!c["description"].as_str().unwrap().is_empty(), "{name}");
        for p in c["params"].as_array().unwrap() {
            assert!(
                !p["doc"].as_str().unwrap().is_empty(),
                "{name}.{}",
                p["name"]
            );
            assert!(
                !p["default"].as_str().unwrap().is_empty(),
                "{name}.{}",
                p["name"]
            );
        }
        let detail: serde_json::Value =
            serde_json::from_str(&stdout_ok(&clshost.run(["plugins", name, "--json"]))).unwrap();
        assert_eq!(&detail, c);
    }
}

#[test]
fn an_unknown_name_suggests_the_closest() {
    let clshost = Clshost::new();
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&clshost.run(["plugins", "--json"]))).unwrap();
    let name = json["components"][0]["name"].as_str().unwrap().to_string();
    let typo = format!("{}x", name);
    let out = clshost.run(["plugins", &typo]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: no component named `{typo}`; did you mean `{name}`? (run `clshost plugins` \
             for the list)\n"
        )
    );
}
