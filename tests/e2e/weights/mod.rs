//! `clshost weights`: sources resolved against a local HTTP server on 127.0.0.1 that counts its
//! requests, with clshost's cache, `TORCH_HOME` and the zoo's mirror in a temporary folder.
//! Downloads are hash-checked (a corrupted one is refused and not cached), reused from the
//! cache, taken from PyTorch's cache without a request, and an unreachable server gives an
//! error naming the URL and where to put the file.

mod hub;
mod pretrained;
mod server;

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{stderr, stdout_ok};
use server::{Scratch, Server};

/// `len` bytes of a fixed pseudo-random sequence starting from `seed`: a stand-in checkpoint
/// larger than one read.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file name torch.hub's rule checks `bytes` against: `tiny-<first 12 hex of SHA-256>.pth`.
fn named(bytes: &[u8]) -> String {
    format!("tiny-{}.pth", &sha256(bytes)[..12])
}

/// The names of the files in `dir`, sorted; none when it does not exist.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_download_is_hash_checked_cached_atomically_and_then_served_from_the_cache() {
    let content = bytes(1, 300_000);
    let name = named(&content);
    let server = Server::start(vec![(name.clone(), content.clone())]);
    let scratch = Scratch::new();

    let out = scratch.weights(None, &["fetch", &server.url(&name)]);
    let cached = scratch.cache().join(&name);
    assert_eq!(stdout_ok(&out), format!("{}\n", cached.display()));
    assert_eq!(std::fs::read(&cached).unwrap(), content);
    assert_eq!(
        listing(&scratch.cache()),
        std::slice::from_ref(&name),
        "no temporary file is left"
    );
    assert_eq!(server.requests(), 1);

    let again = scratch.fetch_json(None, &server.url(&name));
    assert_eq!(again["path"], cached.display().to_string());
    assert_eq!(again["origin"], "cache");
    assert_eq!(again["source"], server.url(&name));
    assert_eq!(
        server.requests(),
        1,
        "the second fetch is served from the cache"
    );
}

#[test]
fn a_corrupted_download_is_refused_and_nothing_is_cached() {
    let promised = bytes(2, 1000);
    let sent = bytes(3, 1000);
    let name = named(&promised);
    let server = Server::start(vec![(name.clone(), sent.clone())]);
    let scratch = Scratch::new();

    let out = scratch.weights(None, &["fetch", &server.url(&name)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "error: {} arrived with SHA-256 {}, but its name promises one starting with {}: the \
             download was discarded and nothing was cached\n",
            server.url(&name),
            sha256(&sent),
            &sha256(&promised)[..12]
        )
    );
    assert_eq!(listing(&scratch.cache()), Vec::<String>::new());
    assert!(out.stdout.is_empty());
}

#[test]
fn the_zoo_downloads_from_the_mirror_and_checks_the_published_hash() {
    // The real file's hash is fixed; any other bytes under its name must be refused.
    let server = Server::start(vec![("resnet18-f37072fd.pth".into(), bytes(4, 5000))]);
    let scratch = Scratch::new();

    let out = scratch.weights(Some(&server.url("")), &["fetch", "resnet18.DEFAULT"]);
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: {} arrived with SHA-256 ",
            server.url("resnet18-f37072fd.pth")
        )),
        "{err}"
    );
    assert!(err.contains("promises one starting with f37072fd: the download was discarded"));
    assert_eq!(server.requests(), 1);
    assert_eq!(listing(&scratch.cache()), Vec::<String>::new());
}

#[test]
fn a_file_in_torch_home_is_used_without_a_request_and_still_checked() {
    let content = bytes(5, 70_000);
    let name = named(&content);
    let server = Server::start(vec![(name.clone(), content.clone())]);
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.torch()).unwrap();
    std::fs::write(scratch.torch().join(&name), &content).unwrap();

    let fetched = scratch.fetch_json(None, &server.url(&name));
    assert_eq!(
        fetched["path"],
        scratch.torch().join(&name).display().to_string()
    );
    assert_eq!(fetched["origin"], "torch_hub");
    assert_eq!(server.requests(), 0);
    assert_eq!(listing(&scratch.cache()), Vec::<String>::new());

    // A zoo file in PyTorch's cache is hash-checked too.
    std::fs::write(scratch.torch().join("resnet34-b627a593.pth"), b"not it").unwrap();
    let out = scratch.weights(
        Some(&server.url("")),
        &["fetch", "torchvision:resnet34.IMAGENET1K_V1"],
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: {} has SHA-256 {}, but its name promises one starting with b627a593: delete \
             it to download it again\n",
            scratch.torch().join("resnet34-b627a593.pth").display(),
            sha256(b"not it")
        )
    );
    assert_eq!(server.requests(), 0);
}

#[test]
fn offline_the_error_names_the_url_and_the_path_to_put_the_file_at() {
    let server = Server::start(Vec::new());
    let url = server.url("resnet50-11ad3fa6.pth");
    let scratch = Scratch::new();
    // The mirror's URL, with the server gone.
    let mirror = server.url("");
    drop(server);
    let out = scratch.weights(Some(&mirror), &["fetch", "resnet50.IMAGENET1K_V2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: cannot download {url} (")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "): download it elsewhere and put it at {} (or in {}/)\n",
            scratch.cache().join("resnet50-11ad3fa6.pth").display(),
            scratch.torch().display()
        )),
        "{err}"
    );
    assert_eq!(listing(&scratch.cache()), Vec::<String>::new());
}

#[test]
fn list_and_info_show_the_zoo_and_where_each_file_is_cached() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.torch()).unwrap();
    let in_torch = scratch.torch().join("resnet18-f37072fd.pth");
    std::fs::write(&in_torch, b"listing does not hash").unwrap();

    let text = stdout_ok(&scratch.weights(None, &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].ends_with("CACHED"),
        "{text}"
    );
    assert!(lines[1].starts_with("torchvision:resnet18.IMAGENET1K_V1  resnet18  69.758"));
    assert!(
        lines[1].ends_with(&in_torch.display().to_string()),
        "{text}"
    );
    assert!(
        lines[4].starts_with("torchvision:resnet50.IMAGENET1K_V2"),
        "{text}"
    );
    assert!(lines[4].contains("80.858  resize 232, crop 224  resnet50-11ad3fa6.pth  no"));
    assert!(text.contains(&format!(
        "clshost cache: {} (CLSHOST_CACHE_DIR)",
        scratch.cache().display()
    )));
    assert!(text.contains("downloads from: https://download.pytorch.org/models/"));

    let json: Value =
        serde_json::from_str(&stdout_ok(&scratch.weights(None, &["list", "--json"]))).unwrap();
    let weights = json["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 4);
    assert_eq!(weights[0]["cached"]["path"], in_torch.display().to_string());
    assert_eq!(weights[0]["cached"]["origin"], "torch_hub");
    assert_eq!(weights[3]["cached"], Value::Null);
    assert_eq!(weights[3]["default"], true);
    assert_eq!(weights[3]["preprocessing"]["resize"], 232);

    let info = stdout_ok(&scratch.weights(None, &["info", "resnet50.DEFAULT"]));
    assert!(
        info.starts_with(
            "torchvision:resnet50.IMAGENET1K_V2 (also torchvision:resnet50.DEFAULT)\n"
        ),
        "{info}"
    );
    assert!(info.contains(
        "  classes       1000: tench, goldfish, great white shark, tiger shark, hammerhead, ...\n"
    ));
    assert!(
        info.contains("  file          resnet50-11ad3fa6.pth (SHA-256 starting with 11ad3fa6)")
    );
    let json: Value = serde_json::from_str(&stdout_ok(&scratch.weights(
        None,
        &["info", "--json", "torchvision:resnet18.IMAGENET1K_V1"],
    )))
    .unwrap();
    assert_eq!(json["class_names"].as_array().unwrap().len(), 1000);
    assert_eq!(json["class_names"][999], "toilet tissue");
    assert_eq!(json["sha256_prefix"], "f37072fd");

    let unknown = scratch.weights(None, &["info", "resnet50.IMAGENET1K_V3"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).starts_with(
            "error: unknown torchvision weights `resnet50.IMAGENET1K_V3` (did you mean `resnet50.IMAGENET1K_V"
        ),
        "{}",
        stderr(&unknown)
    );
}
