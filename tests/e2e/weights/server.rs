//! What the weights tests share: a web server on 127.0.0.1 that counts its requests, and an
//! isolated `clshost` whose caches (`CLSHOST_CACHE_DIR`, `TORCH_HOME`) are in a temporary folder.

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
        format!("http://127.0.0.1:{}/{name}", self.port)
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
fn serve(stream: TcpStream, files: &[(String, Vec<u8>)], count: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    count.fetch_add(1, Ordering::SeqCst);
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let file = files
        .iter()
        .find(|(name, _)| path.strip_prefix('/') == Some(name.as_str()));
    let mut stream = stream;
    let _ = match file {
        Some((_, bytes)) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(bytes)),
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// An isolated `clshost` with its cache and `TORCH_HOME` in a temporary folder.
pub struct Scratch {
    /// The isolated `clshost`.
    pub clshost: Clshost,
    /// The folder holding both caches.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh scratch folder.
    pub fn new() -> Scratch {
        Scratch {
            clshost: Clshost::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// clshost's weights folder (`$CLSHOST_CACHE_DIR/weights`).
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache").join("weights")
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
            .env("TORCH_HOME", self.dir.path().join("torch"));
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
