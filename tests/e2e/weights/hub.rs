//! `hf:` sources against a Hub-layout model repository served from 127.0.0.1 through
//! `HF_ENDPOINT`: the Hub's resolve URLs, its range requests and headers (`X-Repo-Commit`,
//! `X-Linked-Etag`), files kept in the Hub's cache layout under `HF_HOME` and checked against
//! the SHA-256 the Hub names them by, a cache that Python's huggingface_hub filled, and the
//! errors offline, unreachable and missing files give.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use super::server::{HUB_COMMIT, Scratch, Server, hub_file};
use super::{bytes, listing, sha256};
use crate::support::{stderr, stdout_ok};

/// `clshost weights fetch --json SOURCE` with `scratch`'s caches and `HF_HUB_OFFLINE=1` when
/// `offline`.
fn fetch(scratch: &Scratch, source: &str, offline: bool) -> Output {
    let mut command = scratch.command(None, ["weights", "fetch", "--json", source]);
    if offline {
        command.env("HF_HUB_OFFLINE", "1");
    }
    command.output().expect("clshost runs")
}

/// `fetch`'s JSON.
fn fetched(out: &Output) -> Value {
    serde_json::from_str(&stdout_ok(out)).expect("one JSON object")
}

/// The folder of the repository `org/tiny` in `scratch`'s Hub cache.
fn repo_dir(scratch: &Scratch) -> PathBuf {
    scratch.hub().join("models--org--tiny")
}

/// Where `name` of `org/tiny` at [`HUB_COMMIT`] is in `scratch`'s Hub cache.
fn snapshot(scratch: &Scratch, name: &str) -> PathBuf {
    repo_dir(scratch)
        .join("snapshots")
        .join(HUB_COMMIT)
        .join(name)
}

#[test]
fn a_hub_file_downloads_into_the_hub_cache_layout_and_is_then_used_from_it() {
    let content = bytes(7, 300_000);
    let sha = sha256(&content);
    // Only pytorch_model.bin: model.safetensors, tried first, is a 404.
    let server = Server::serving(vec![hub_file("pytorch_model.bin", content.clone(), &sha)]);
    let scratch = Scratch::new().with_hub(server.base());
    let link = snapshot(&scratch, "pytorch_model.bin");

    let first = fetched(&fetch(&scratch, "hf:org/tiny", false));
    assert_eq!(first["origin"], "downloaded");
    assert_eq!(first["source"], "hf:org/tiny");
    assert_eq!(first["path"], link.to_str().unwrap());
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../../blobs").join(&sha)
    );
    assert_eq!(fs::read(&link).unwrap(), content);
    assert_eq!(
        fs::read_to_string(repo_dir(&scratch).join("refs/main")).unwrap(),
        HUB_COMMIT
    );
    // A 404 for model.safetensors, the range request for the metadata, the download, and a
    // 404 for config.json (which `weights fetch` gets too).
    assert_eq!(server.requests(), 4);

    for offline in [false, true] {
        let again = fetched(&fetch(&scratch, "hf-hub:org/tiny", offline));
        assert_eq!(again["origin"], "hub_cache");
        assert_eq!(again["path"], link.to_str().unwrap());
    }
    let named = fetched(&fetch(
        &scratch,
        "hf:org/tiny@main/pytorch_model.bin",
        false,
    ));
    assert_eq!(named["origin"], "hub_cache");
    // One more 404 for config.json, online; nothing else.
    assert_eq!(server.requests(), 5, "the cache answers without the Hub");

    let list: Value =
        serde_json::from_str(&stdout_ok(&scratch.weights(None, &["list", "--json"]))).unwrap();
    assert_eq!(list["hub_cache"], scratch.hub().to_str().unwrap());
    assert_eq!(list["hub_endpoint"], server.base().as_str());
}

#[test]
fn a_corrupted_hub_download_is_refused_and_not_cached() {
    let content = bytes(8, 200_000);
    let promised = sha256(&bytes(9, 200_000));
    let server = Server::serving(vec![hub_file(
        "model.safetensors",
        content.clone(),
        &promised,
    )]);
    let scratch = Scratch::new().with_hub(server.base());

    for attempt in 1..=2 {
        let out = fetch(&scratch, "hf:org/tiny", false);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{} arrived with SHA-256 {}, but the Hub names it {promised}: the download was \
                 discarded and nothing was cached",
                server.url("org/tiny/resolve/main/model.safetensors"),
                sha256(&content)
            )),
            "{err}"
        );
        assert!(!snapshot(&scratch, "model.safetensors").exists());
        let blobs = listing(&repo_dir(&scratch).join("blobs"));
        assert!(
            !blobs.contains(&promised) && !blobs.iter().any(|b| b.ends_with(".part")),
            "{blobs:?}"
        );
        assert_eq!(server.requests(), 2 * attempt, "downloaded again each time");
    }
}

#[test]
fn a_cache_python_filled_is_used_and_a_damaged_blob_in_it_is_named() {
    // The layout huggingface_hub writes: the blob named by its SHA-256, a relative link to it
    // from the commit's snapshot, and the branch's commit in refs/.
    let scratch = Scratch::new().with_hub("http://127.0.0.1:9".to_string());
    let content = bytes(10, 50_000);
    let sha = sha256(&content);
    let blobs = repo_dir(&scratch).join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(blobs.join(&sha), &content).unwrap();
    let link = snapshot(&scratch, "model.safetensors");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(Path::new("../../blobs").join(&sha), &link).unwrap();
    fs::create_dir_all(repo_dir(&scratch).join("refs")).unwrap();
    fs::write(repo_dir(&scratch).join("refs/main"), HUB_COMMIT).unwrap();

    let found = fetched(&fetch(&scratch, "hf:org/tiny", false));
    assert_eq!(found["origin"], "hub_cache");
    assert_eq!(found["path"], link.to_str().unwrap());

    let mut damaged = content.clone();
    damaged[100] ^= 1;
    fs::write(blobs.join(&sha), &damaged).unwrap();
    let out = fetch(&scratch, "hf:org/tiny", false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let blob = fs::canonicalize(blobs.join(&sha)).unwrap();
    assert!(
        err.contains(&format!(
            "{} has SHA-256 {}, but the Hugging Face cache names it by {sha}: delete it",
            blob.display(),
            sha256(&damaged)
        )),
        "{err}"
    );
}

#[test]
fn offline_unreachable_and_missing_hub_files_say_what_to_do() {
    let scratch = Scratch::new();
    let dir = repo_dir(&scratch);

    let out = fetch(&scratch, "hf:org/tiny", true);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "HF_HUB_OFFLINE is set and hf:org/tiny is not in the Hugging Face cache at {}: \
             fetch it on a machine with a network (`clshost weights fetch hf:org/tiny`)",
            dir.display()
        )),
        "{}",
        stderr(&out)
    );

    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = Scratch::new().with_hub(format!("http://127.0.0.1:{closed}"));
    let out = fetch(&unreachable, "hf:org/tiny/w.bin", false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot download http://127.0.0.1:{closed}/org/tiny/resolve/main/w.bin ("
        )) && err.contains(&format!(
            "copy the Hugging Face cache folder {} here",
            repo_dir(&unreachable).display()
        )),
        "{err}"
    );

    let empty = Server::serving(Vec::new());
    let scratch = Scratch::new().with_hub(empty.base());
    let out = fetch(&scratch, "hf:org/tiny", false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "{} does not exist (nor does pytorch_model.bin): name the file as \
             hf:org/tiny[@REVISION]/FILE",
            empty.url("org/tiny/resolve/main/model.safetensors")
        )),
        "{}",
        stderr(&out)
    );

    let out = fetch(&scratch, "hf:org", false);
    assert!(
        stderr(&out).contains(
            "`hf:org` is not a usable Hugging Face Hub source: write it as \
             hf:ORG/NAME[@REVISION][/FILE]"
        ),
        "{}",
        stderr(&out)
    );
}
