//! What the weights tests share: a web server on 127.0.0.1 that counts its requests (and answers
//! range requests with extra headers, as the Hugging Face Hub does), and an isolated `clshost`
//! whose caches (`CLSHOST_CACHE_DIR`, `TORCH_HOME`, `HF_HOME`) are in a temporary folder.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use serde_json::Value;

use crate::support::{Clshost, stdout_ok};

/// A file a [`Server`] serves: its path (without the leading `/`), its bytes, and extra headers.
pub type Served = (String, Vec<u8>, Vec<(String, String)>);

/// The commit every file of [`hub_file`]'s repository is at.
pub const HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `name` in the Hub model repository `org/tiny` at `main`, as the Hub serves a Git LFS file:
/// its commit and, as `X-Linked-Etag`, the SHA-256 `etag` the Hub names it by.
pub fn hub_file(name: &str, content: Vec<u8>, etag: &str) -> Served {
    (
        format!("org/tiny/resolve/main/{name}"),
        content,
        vec![
            ("X-Repo-Commit".to_string(), HUB_COMMIT.to_string()),
            ("X-Linked-Etag".to_string(), format!("\"{etag}\"")),
            ("ETag".to_string(), "\"a-git-object-id\"".to_string()),
        ],
    )
}

/// A web server on 127.0.0.1 serving fixed files over HTTP/1.1, one connection at a time.
pub struct Server {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves each `(name, bytes)` at `/name`; anything else is a 404.
    pub fn start(files: Vec<(String, Vec<u8>)>) -> Server {
        Server::serving(files.into_iter().map(|(n, b)| (n, b, Vec::new())).collect())
    }

    /// Serves each file at its path with its headers (a `Range: bytes=A-[B]` request gets
    /// those bytes with `206 Partial Content`); anything else is a 404.
    pub fn serving(files: Vec<Served>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let port = listener.local_addr().expect("its address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &files, &count);
                }
            }
        });
        Server {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The URL of `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base())
    }

    /// The server's URL, without a trailing `/`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag; the port then closes.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`.
fn serve(stream: TcpStream, files: &[Served], count: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    let mut range: Option<(usize, Option<usize>)> = None;
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        if let Some((name, value)) = header.trim().split_once(':')
            && name.eq_ignore_ascii_case("range")
            && let Some((from, to)) = value.trim().trim_start_matches("bytes=").split_once('-')
        {
            range = from.parse().ok().map(|from| (from, to.parse().ok()));
        }
        header.clear();
    }
    count.fetch_add(1, Ordering::SeqCst);
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let file = files
        .iter()
        .find(|(name, _, _)| path.strip_prefix('/') == Some(name.as_str()));
    let mut stream = stream;
    let _ = match file {
        Some((_, bytes, headers)) => {
            let mut head = String::new();
            let body = match range {
                Some((from, to)) => {
                    let to = to.unwrap_or(bytes.len() - 1).min(bytes.len() - 1);
                    head.push_str(&format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{to}/{}\r\n",
                        bytes.len()
                    ));
                    &bytes[from..=to]
                }
                None => {
                    head.push_str("HTTP/1.1 200 OK\r\n");
                    &bytes[..]
                }
            };
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(body))
        }
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// An isolated `clshost` with its cache and `TORCH_HOME` in a temporary folder.
pub struct Scratch {
    /// The isolated `clshost`.
    pub clshost: Clshost,
    /// The folder holding the caches.
    pub dir: tempfile::TempDir,
    /// `HF_ENDPOINT`, when set.
    hub_endpoint: Option<String>,
}

impl Scratch {
    /// A fresh scratch folder.
    pub fn new() -> Scratch {
        Scratch {
            clshost: Clshost::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            hub_endpoint: None,
        }
    }

    /// This scratch folder with the Hugging Face Hub at `endpoint` (`HF_ENDPOINT`).
    pub fn with_hub(mut self, endpoint: String) -> Scratch {
        self.hub_endpoint = Some(endpoint);
        self
    }

    /// clshost's weights folder (`$CLSHOST_CACHE_DIR/weights`).
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache").join("weights")
    }

    /// The Hugging Face Hub cache (`$HF_HOME/hub`).
    pub fn hub(&self) -> PathBuf {
        self.dir.path().join("hf").join("hub")
    }

    /// PyTorch's checkpoint folder (`$TORCH_HOME/hub/checkpoints`).
    pub fn torch(&self) -> PathBuf {
        self.dir
            .path()
            .join("torch")
            .join("hub")
            .join("checkpoints")
    }

    /// Runs `clshost weights ARGS...`, with the zoo's mirror at the URL `mirror` when given.
    pub fn weights(&self, mirror: Option<&str>, args: &[&str]) -> Output {
        self.command(mirror, ["weights"].iter().chain(args))
            .output()
            .expect("clshost runs")
    }

    /// `clshost ARGS...` with this scratch folder's caches, and the zoo's mirror at the URL
    /// `mirror` when given.
    pub fn command<I, S>(&self, mirror: Option<&str>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.clshost.command(args);
        command
            .env("CLSHOST_CACHE_DIR", self.dir.path().join("cache"))
            .env("TORCH_HOME", self.dir.path().join("torch"))
            .env("HF_HOME", self.dir.path().join("hf"));
        for hub in [
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_ENDPOINT",
            "HF_HUB_OFFLINE",
            "HF_TOKEN",
        ] {
            command.env_remove(hub);
        }
        if let Some(endpoint) = &self.hub_endpoint {
            command.env("HF_ENDPOINT", endpoint);
        }
        // The server is local: no proxy may stand in between.
        for proxy in [
            "ALL_PROXY",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "all_proxy",
            "http_proxy",
            "https_proxy",
        ] {
            command.env_remove(proxy);
        }
        if let Some(mirror) = mirror {
            command.env("CLSHOST_WEIGHTS_MIRROR", mirror);
        }
        command
    }

    /// `weights fetch --json ARGS...` as JSON.
    pub fn fetch_json(&self, mirror: Option<&str>, source: &str) -> Value {
        let out = self.weights(mirror, &["fetch", "--json", source]);
        serde_json::from_str(&stdout_ok(&out)).expect("one JSON object")
    }
}
