//! The `mlflow` logger: a clshost run as an MLflow run, through MLflow's REST tracking API
//! (`/api/2.0/mlflow/...`).
//!
//! - **Where**: `params.tracking_uri`, else `MLFLOW_TRACKING_URI` (an `http://` or `https://`
//!   server; run `mlflow server` for a local store). `MLFLOW_TRACKING_TOKEN` (a bearer token) or
//!   `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` authenticate, as for MLflow's
//!   own client.
//! - **Experiment**: `params.experiment`, else `MLFLOW_EXPERIMENT_NAME`, else the recipe's name;
//!   created when missing.
//! - **Run**: created at the start, named after the run directory; its id is kept in
//!   `RUN_DIR/loggers/mlflow/mlflow.json`, so `clshost run --resume` continues the same MLflow
//!   run (status `RUNNING` again) instead of starting another. The end sets `FINISHED`
//!   (completed, early stopping, time limit), `KILLED` (interrupted) or `FAILED`.
//! - **Params**: every field of the resolved recipe, as a dotted path (`optimizer.lr`), logged
//!   once. **Tags**: the environment (`clshost.device`, `clshost.plugins`, ...), the run
//!   directory and `params.tags`.
//! - **Metrics**: step scalars (`train/loss`, `train/lr`, `train/images_per_s`) and every value
//!   of each evaluated epoch's row (`val_loss`, `top1`, a third-party metric's scalars, ...),
//!   at the global step. Step metrics are buffered and sent with the next epoch, or every
//!   10 s, in `runs/log-batch` requests within MLflow's limits (1000 metrics, 100 params,
//!   100 tags each). Values that are not finite are left out (JSON has no NaN).
//! - **Artifacts** (`params.artifacts`): the recipe, the sample sheet, the exports and the
//!   plots, uploaded to a server that serves artifacts (`mlflow-artifacts:` URIs) or copied
//!   into a local artifact directory. Checkpoints are not uploaded.
//!
//! A request that fails returns an error (which the host shows once); unsent metrics are kept,
//! up to [`MAX_PENDING`], and sent with the next request that succeeds, and a run that could
//! not be created is created at the next event, so a tracker that comes back gets the rest.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clshost_plugin_api::prelude::*;
use serde_json::{Value, json};

use crate::not_started;

/// MLflow's limit of metrics in one `runs/log-batch` request.
pub const MAX_METRICS: usize = 1000;
/// MLflow's limit of params in one `runs/log-batch` request.
pub const MAX_PARAMS: usize = 100;
/// MLflow's limit of tags in one `runs/log-batch` request.
pub const MAX_TAGS: usize = 100;
/// MLflow's longest param value (`MAX_PARAM_VAL_LENGTH`); longer values are cut.
pub const MAX_PARAM_VALUE: usize = 6000;
/// The most unsent metrics kept while the server does not answer; older ones are dropped.
pub const MAX_PENDING: usize = 100 * MAX_METRICS;
/// Buffered step metrics are sent at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// The `mlflow` logger.
pub struct Mlflow {
    client: Client,
    experiment: Option<String>,
    run_name: Option<String>,
    tags: Vec<(String, String)>,
    artifacts: bool,
    /// `RUN_DIR/loggers/mlflow/mlflow.json`.
    state_file: PathBuf,
    /// The run directory's name, the default run name.
    run_dir_name: String,
    resumed: bool,
    /// What `start` got, until the MLflow run exists.
    starting: Option<RunStart>,
    /// The MLflow run, once created.
    run: Option<TrackedRun>,
    /// Metrics not sent yet.
    pending: Vec<Value>,
    last_flush: Instant,
}

/// Config of [`Mlflow`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowConfig {
    /// The tracking server, `http://HOST:PORT` or `https://...`; `None` reads
    /// `MLFLOW_TRACKING_URI`.
    pub tracking_uri: Option<String>,
    /// The experiment's name, created when missing; `None` reads `MLFLOW_EXPERIMENT_NAME`, else
    /// takes the recipe's name.
    pub experiment: Option<String>,
    /// The MLflow run's name; `None` takes the run directory's name.
    pub run_name: Option<String>,
    /// Extra `(key, value)` tags set on the MLflow run.
    pub tags: Vec<(String, String)>,
    /// Upload the recipe, the sample sheet, the exports and the plots as artifacts.
    pub artifacts: bool,
    /// Seconds one request may take before it counts as failed.
    pub timeout_s: f64,
}

impl Default for MlflowConfig {
    fn default() -> Self {
        MlflowConfig {
            tracking_uri: None,
            experiment: None,
            run_name: None,
            tags: Vec::new(),
            artifacts: true,
            timeout_s: 10.0,
        }
    }
}

/// The MLflow run a clshost run logs to, as kept in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrackedRun {
    run_id: String,
    experiment_id: String,
    artifact_uri: String,
}

/// Checks a tracking URI: MLflow's REST API is served over HTTP.
fn check_uri(uri: &str) -> Result<(), String> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "`{uri}` is not an http:// or https:// tracking server; for a local store, run \
             `mlflow server --backend-store-uri sqlite:///mlflow.db` and use its address"
        ))
    }
}

impl Component for Mlflow {
    const NAME: &'static str = "mlflow";
    const DESCRIPTION: &'static str =
        "MLflow tracking server: params, metrics, tags and artifacts of the run (REST API)";
    type Config = MlflowConfig;

    fn check(config: &MlflowConfig) -> Result<(), PluginError> {
        if let Some(uri) = &config.tracking_uri {
            check_uri(uri).map_err(|m| PluginError::config("tracking_uri", m))?;
        }
        if !(config.timeout_s.is_finite() && config.timeout_s > 0.0) {
            return Err(PluginError::config(
                "timeout_s",
                "must be a positive number",
            ));
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, MLflow's timestamps.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// MLflow `{key, value}` pairs.
fn pairs<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>, max: usize) -> Vec<Value> {
    entries
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": cut(value, max)}))
        .collect()
}

impl Mlflow {
    /// The MLflow run, created on first need.
    fn ensure_run(&mut self) -> Result<&TrackedRun, PluginError> {
        if self.run.is_none() {
            let start = self.starting.clone().ok_or_else(not_started)?;
            let run = self.create_run(&start)?;
            self.starting = None;
            self.run = Some(run);
        }
        Ok(self.run.as_ref().expect("created above"))
    }

    /// Continues the run of the state file, or creates one and logs its params and tags.
    fn create_run(&self, start: &RunStart) -> Result<TrackedRun, PluginError> {
        if self.resumed
            && let Ok(text) = fs::read_to_string(&self.state_file)
        {
            let run: TrackedRun =
                serde_json::from_str(&text).map_err(|e| PluginError::io_at(&self.state_file, e))?;
            self.client.post(
                "runs/update",
                json!({"run_id": run.run_id, "status": "RUNNING"}),
            )?;
            return Ok(run);
        }
        let experiment = self
            .experiment
            .clone()
            .or_else(|| std::env::var("MLFLOW_EXPERIMENT_NAME").ok())
            .unwrap_or_else(|| start.name.to_string());
        let experiment_id = self.client.experiment_id(&experiment)?;
        let run_name = self.run_name.as_deref().unwrap_or(&self.run_dir_name);
        let created = self.client.post(
            "runs/create",
            json!({
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": now_ms(),
                "tags": [{"key": "mlflow.runName", "value": run_name}],
            }),
        )?;
        let info = &created["run"]["info"];
        let run = TrackedRun {
            run_id: text_field(info, "run_id")?,
            experiment_id,
            artifact_uri: text_field(info, "artifact_uri")?,
        };
        let state = serde_json::to_string_pretty(&run).expect("a run serializes");
        fs::write(&self.state_file, state).map_err(|e| PluginError::io_at(&self.state_file, e))?;

        let params = pairs(
            start
                .params
                .iter()
                .map(|p| (p.name.as_str(), p.value.as_str())),
            MAX_PARAM_VALUE,
        );
        let run_dir = ("clshost.run_dir".to_string(), start.run_dir.to_string());
        let environment = start
            .environment
            .iter()
            .map(|e| (format!("clshost.{}", e.name), e.value.to_string()));
        let tags: Vec<(String, String)> = environment
            .chain(std::iter::once(run_dir))
            .chain(self.tags.iter().cloned())
            .collect();
        let tags = pairs(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), 5000);
        for chunk in params.chunks(MAX_PARAMS) {
            self.client.log_batch(&run.run_id, "params", chunk)?;
        }
        for chunk in tags.chunks(MAX_TAGS) {
            self.client.log_batch(&run.run_id, "tags", chunk)?;
        }
        Ok(run)
    }

    /// Queues `scalars` as metrics at `step`, leaving out values that are not finite.
    fn queue(&mut self, scalars: &[Scalar], step: u64) {
        let timestamp = now_ms();
        self.pending
            .extend(scalars.iter().filter(|s| s.value.is_finite()).map(|s| {
                json!({"key": s.name.as_str(), "value": s.value, "timestamp": timestamp,
                           "step": step})
            }));
        if self.pending.len() > MAX_PENDING {
            let excess = self.pending.len() - MAX_PENDING;
            self.pending.drain(..excess);
        }
    }

    /// Sends the queued metrics.
    fn flush(&mut self) -> Result<(), PluginError> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let run_id = self.ensure_run()?.run_id.clone();
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_METRICS);
            self.client
                .log_batch(&run_id, "metrics", &self.pending[..n])?;
            self.pending.drain(..n);
        }
        Ok(())
    }

    /// Uploads `path` as the artifact `relative`.
    fn upload(&mut self, path: &Path, relative: &str) -> Result<(), PluginError> {
        let uri = self.ensure_run()?.artifact_uri.clone();
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            let bytes = fs::read(path).map_err(|e| PluginError::io_at(path, e))?;
            let target = format!("{}/{relative}", rest.trim_start_matches('/'));
            self.client.put_artifact(&target, &bytes)
        } else {
            let local = uri.strip_prefix("file://").unwrap_or(&uri);
            if local.contains("://") {
                return Err(PluginError::unsupported(format!(
                    "artifacts go to `{uri}`, a store this logger cannot write; start the \
                     server with `--serve-artifacts`, or set `params.artifacts: false`"
                )));
            }
            let target = Path::new(local).join(relative);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| PluginError::io_at(parent, e))?;
            }
            fs::copy(path, &target)
                .map(drop)
                .map_err(|e| PluginError::io_at(&target, e))
        }
    }
}

/// The string field `name` of an MLflow answer.
fn text_field(value: &Value, name: &str) -> Result<String, PluginError> {
    value[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| PluginError::io(format!("MLflow's answer has no `{name}`: {value}")))
}

impl Logger for Mlflow {
    fn new(config: MlflowConfig, ctx: &LoggerContext) -> Result<Self, PluginError> {
        let uri = config
            .tracking_uri
            .clone()
            .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok())
            .ok_or_else(|| {
                PluginError::config(
                    "tracking_uri",
                    "no tracking server: set `tracking_uri` or MLFLOW_TRACKING_URI",
                )
            })?;
        check_uri(&uri).map_err(|m| PluginError::config("tracking_uri", m))?;
        let run_dir = Path::new(ctx.run_dir.as_str());
        Ok(Mlflow {
            client: Client::new(&uri, Duration::from_secs_f64(config.timeout_s)),
            experiment: config.experiment,
            run_name: config.run_name,
            tags: config.tags,
            artifacts: config.artifacts,
            state_file: Path::new(ctx.state_dir.as_str()).join("mlflow.json"),
            run_dir_name: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            resumed: ctx.resumed,
            starting: None,
            run: None,
            pending: Vec::new(),
            last_flush: Instant::now(),
        })
    }

    fn start(&mut self, run: &RunStart) -> Result<(), PluginError> {
        self.starting = Some(run.clone());
        self.ensure_run().map(drop)
    }

    fn step(&mut self, step: &StepLog) -> Result<(), PluginError> {
        self.queue(&step.scalars, step.step);
        if self.pending.len() >= MAX_METRICS || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn epoch(&mut self, epoch: &EpochLog) -> Result<(), PluginError> {
        let mut scalars = epoch.scalars.to_vec();
        scalars.push(Scalar {
            name: "epoch".into(),
            value: f64::from(epoch.epoch),
        });
        self.queue(&scalars, epoch.step);
        self.flush()
    }

    fn file(&mut self, file: &FileLog) -> Result<(), PluginError> {
        match file.kind.as_str() {
            "recipe" | "samples" | "export" | "plot" if self.artifacts => {
                self.upload(Path::new(file.path.as_str()), file.relative.as_str())
            }
            _ => Ok(()),
        }
    }

    fn end(&mut self, end: &RunEnd) -> Result<(), PluginError> {
        self.flush()?;
        let status = match end.status.as_str() {
            "interrupted" => "KILLED",
            "failed" => "FAILED",
            _ => "FINISHED",
        };
        let run_id = self.ensure_run()?.run_id.clone();
        self.client
            .post(
                "runs/update",
                json!({"run_id": run_id, "status": status, "end_time": now_ms()}),
            )
            .map(drop)
    }
}

/// An HTTP client of one tracking server.
struct Client {
    agent: ureq::Agent,
    /// The server's address, without a trailing `/`.
    base: String,
    /// The `Authorization` header, from MLflow's environment variables.
    authorization: Option<String>,
}

impl Client {
    fn new(uri: &str, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("clshost-mlflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let token = std::env::var("MLFLOW_TRACKING_TOKEN").ok();
        let basic = match (
            std::env::var("MLFLOW_TRACKING_USERNAME"),
            std::env::var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => {
                use base64::Engine as _;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            _ => None,
        };
        Client {
            agent,
            base: uri.trim_end_matches('/').to_string(),
            authorization: token.map(|t| format!("Bearer {t}")).or(basic),
        }
    }

    /// Sends a request; the answer's status and JSON body (`null` when empty).
    fn send(
        &self,
        what: &str,
        request: impl FnOnce(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), PluginError> {
        let mut response = request(&self.agent)
            .map_err(|e| PluginError::io(format!("MLflow at {}: {what}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) || status == 404 {
            Ok((status, body))
        } else {
            let message = body["message"].as_str().unwrap_or(&text);
            Err(PluginError::io(format!(
                "MLflow at {}: {what}: HTTP {status}: {message}",
                self.base
            )))
        }
    }

    /// `request` with the `Authorization` header, when MLflow's environment gives one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    /// POSTs `body` to `api/2.0/mlflow/<path>`.
    fn post(&self, path: &str, body: Value) -> Result<Value, PluginError> {
        let (status, answer) = self.send(path, |agent| {
            let request = agent
                .post(self.url(path))
                .header("Content-Type", "application/json");
            self.authorized(request).send(body.to_string())
        })?;
        if status == 404 {
            return Err(PluginError::io(format!(
                "MLflow at {}: {path}: HTTP 404: {answer}",
                self.base
            )));
        }
        Ok(answer)
    }

    /// The id of the experiment `name`, created when missing.
    fn experiment_id(&self, name: &str) -> Result<String, PluginError> {
        let path = "experiments/get-by-name";
        let (status, answer) = self.send(path, |agent| {
            let request = agent.get(self.url(path)).query("experiment_name", name);
            self.authorized(request).call()
        })?;
        if status != 404 {
            return text_field(&answer["experiment"], "experiment_id");
        }
        let created = self.post("experiments/create", json!({"name": name}))?;
        text_field(&created, "experiment_id")
    }

    /// Logs `items` (metrics, params or tags) of one run in one `runs/log-batch` request.
    fn log_batch(&self, run_id: &str, field: &str, items: &[Value]) -> Result<(), PluginError> {
        self.post("runs/log-batch", json!({"run_id": run_id, field: items}))
            .map(drop)
    }

    /// Uploads `bytes` to the artifact path `target` of a server that serves artifacts.
    fn put_artifact(&self, target: &str, bytes: &[u8]) -> Result<(), PluginError> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{target}", self.base);
        let (status, answer) = self.send("artifact upload", |agent| {
            self.authorized(agent.put(&url)).send(bytes)
        })?;
        if status == 404 {
            return Err(PluginError::io(format!(
                "MLflow at {}: artifact upload: HTTP 404 (does the server serve artifacts?): \
                 {answer}",
                self.base
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_http_tracking_server_and_a_positive_timeout_are_accepted() {
        let with = |uri: &str, timeout_s: f64| MlflowConfig {
            tracking_uri: Some(uri.into()),
            timeout_s,
            ..MlflowConfig::default()
        };
        assert!(Mlflow::check(&with("http://127.0.0.1:5000", 10.0)).is_ok());
        assert!(Mlflow::check(&with("https://mlflow.example", 1.0)).is_ok());
        let err = Mlflow::check(&with("sqlite:///mlflow.db", 10.0)).unwrap_err();
        assert!(err.to_string().contains("mlflow server"), "{err}");
        assert!(Mlflow::check(&with("http://x", 0.0)).is_err());
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        assert_eq!(cut("abcdef", 4), "abcd");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("ab", 10), "ab");
    }
}
