//! The `mlflow` logger against a real MLflow tracking server (`mlflow server` on 127.0.0.1 with
//! a SQLite store, installed by `scripts/setup-mlflow.sh`): every metric of a tiny run read back
//! through MLflow's REST API equals `metrics.jsonl`, params, tags, artifacts and the run's
//! status are there, and a server stopped mid-run costs one warning while the run completes.
//!
//! Ignored unless run with `--ignored`, with `CLSHOST_TEST_MLFLOW` naming the `mlflow` command;
//! `.ci/run` does both.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Clshost, stderr, stdout_ok, tiny_run_dir, tiny_tempdir};

/// A tracking server in a temporary directory, stopped when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let mlflow = std::env::var("CLSHOST_TEST_MLFLOW")
            .expect("CLSHOST_TEST_MLFLOW names the mlflow command (scripts/setup-mlflow.sh)");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
        // A process group of its own: the server runs uvicorn and job runners as children,
        // which must stop with it.
        let child = Command::new(mlflow)
            .process_group(0)
            // No job runner (its worker pool is not needed to track runs).
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .args([
                "server",
                "--backend-store-uri",
                &store,
                "--artifacts-destination",
            ])
            .arg(dir.path().join("artifacts"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mlflow server starts");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(get(&format!("{}/health", server.url)), Some((200, _))) {
            assert!(Instant::now() < deadline, "mlflow server did not answer");
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    /// GETs `api/2.0/mlflow/<path>` with `query`.
    fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let mut url = format!("{}/api/2.0/mlflow/{path}?", self.url);
        for (k, v) in query {
            url.push_str(&format!("{k}={v}&"));
        }
        let (status, body) = get(&url).expect("the server answers");
        assert_eq!(status, 200, "{url}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The only MLflow run of `experiment`.
    fn only_run(&self, experiment: &str) -> Value {
        let exp = self.api(
            "experiments/get-by-name",
            &[("experiment_name", experiment)],
        );
        let id = exp["experiment"]["experiment_id"]
            .as_str()
            .unwrap()
            .to_string();
        let body = json!({"experiment_ids": [id]}).to_string();
        let mut answer = ureq::post(format!("{}/api/2.0/mlflow/runs/search", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let found: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        let runs = found["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1, "{found}");
        runs[0].clone()
    }

    /// Kills the server's whole process group, once.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status and body of a GET, `None` when nothing answers.
fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    Some((
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    ))
}

fn logger(server: &Server, experiment: &str) -> String {
    format!(
        "loggers=[(name: \"mlflow\", params: (tracking_uri: \"{}\", experiment: \"{experiment}\"))]",
        server.url
    )
}

#[test]
#[ignore = "needs an MLflow server: CLSHOST_TEST_MLFLOW=\"$(scripts/setup-mlflow.sh)\""]
fn mlflow_gets_every_metric_params_tags_and_artifacts_of_a_run() {
    let server = Server::start();
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let out = clshost
        .command(["run", "tiny.ron", "--set", &logger(&server, "tiny-e2e")])
        .current_dir(scratch.path())
        .output()
        .unwrap();
    stdout_ok(&out);
    assert!(!stderr(&out).contains("mlflow"), "{}", stderr(&out));
    let run = tiny_run_dir(scratch.path());
    let tracked = server.only_run("tiny-e2e");
    let info = &tracked["info"];
    assert_eq!(info["status"], "FINISHED", "{tracked}");
    let run_id = info["run_id"].as_str().unwrap();
    let kept: Value =
        serde_json::from_str(&fs::read_to_string(run.join("loggers/mlflow/mlflow.json")).unwrap())
            .unwrap();
    assert_eq!(kept["run_id"], run_id);

    let data = &tracked["data"];
    let find = |list: &str, key: &str| -> Option<String> {
        data[list]
            .as_array()?
            .iter()
            .find(|p| p["key"] == key)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };
    assert_eq!(find("params", "trainer.epochs").as_deref(), Some("3"));
    assert_eq!(
        find("params", "model.name").as_deref(),
        Some("\"resnet18\"")
    );
    assert_eq!(
        find("tags", "clshost.plugin_abi").as_deref(),
        Some(clshost_plugin_api::ABI_VERSION_STRING)
    );

    // Every value of every epoch row, at the epoch's global step.
    let rows: Vec<Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps_per_epoch = 3;
    for (name, _) in rows[0].as_object().unwrap() {
        if name == "epoch" || rows.iter().all(|r| r[name].is_null()) {
            continue;
        }
        let history = server.api(
            "metrics/get-history",
            &[("run_id", run_id), ("metric_key", name)],
        );
        let mut got: Vec<(u64, f64)> = history["metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("no {name}: {history}"))
            .iter()
            .map(|m| (m["step"].as_u64().unwrap(), m["value"].as_f64().unwrap()))
            .collect();
        got.sort_by_key(|g| g.0);
        let expected: Vec<(u64, f64)> = rows
            .iter()
            .filter(|r| !r[name].is_null())
            .map(|r| {
                let epoch = r["epoch"].as_u64().unwrap();
                (epoch * steps_per_epoch, r[name].as_f64().unwrap())
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "{name}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.0, e.0, "{name}");
            assert!(
                (g.1 - e.1).abs() <= 1e-12 * e.1.abs().max(1.0),
                "{name}: {g:?} {e:?}"
            );
        }
    }
    // Every logged step's training loss.
    let loss = server.api(
        "metrics/get-history",
        &[("run_id", run_id), ("metric_key", "train/loss")],
    );
    assert_eq!(loss["metrics"].as_array().unwrap().len(), 9, "{loss}");

    let listed = |path: &str| -> Vec<String> {
        server.api("artifacts/list", &[("run_id", run_id), ("path", path)])["files"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|f| f["path"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let root = listed("");
    assert!(root.contains(&"recipe.ron".to_string()), "{root:?}");
    assert!(listed("plots").contains(&"plots/loss.png".to_string()));
    assert!(!listed("export").is_empty());
}

#[test]
#[ignore = "needs an MLflow server: CLSHOST_TEST_MLFLOW=\"$(scripts/setup-mlflow.sh)\""]
fn a_server_stopped_mid_run_is_one_warning_and_the_run_completes() {
    let mut server = Server::start();
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let child = clshost
        .command([
            "run",
            "tiny.ron",
            "--set",
            "trainer.epochs=8",
            "--set",
            &logger(&server, "stopped"),
        ])
        .current_dir(scratch.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once the first epoch is evaluated.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let rows = fs::read_dir(scratch.path().join("runs/tiny"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| fs::read_to_string(e.ok()?.path().join("metrics.jsonl")).ok())
            .map_or(0, |t| t.lines().count());
        if rows >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no epoch evaluated");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
    let out = child.wait_with_output().unwrap();
    stdout_ok(&out);
    let err = stderr(&out);
    assert_eq!(
        err.matches("this logger's later errors are not shown")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("logger `mlflow`"), "{err}");
    assert!(tiny_run_dir(scratch.path()).join("summary.json").is_file());
}
