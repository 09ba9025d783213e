//! An example of a third-party clshost plugin, built outside the clshost workspace.
//!
//! It offers one loss, one metric, one exporter and one logger:
//!
//! - `poly1`: PolyLoss (Leng et al., ICLR 2022), cross-entropy plus `epsilon * (1 - p_t)`, where
//!   `p_t` is the probability the model gives the target (for soft targets, `sum_j t_j p_j`);
//! - `balanced_accuracy`: the mean of per-class recall over the classes present in the labels,
//!   as scikit-learn's `balanced_accuracy_score`, optionally adjusted for chance;
//! - `weights_summary`: a CSV with one row per weight tensor of the trained model (name, shape,
//!   element count, mean, standard deviation, mean absolute value), for diffing runs or spotting
//!   dead layers ([`WeightsSummary`]);
//! - `events_file`: every event of a run (start with the recipe's parameters, logged steps,
//!   epochs, files, end) appended as one JSON object per line to a file in the run directory,
//!   for a team that feeds runs into its own store ([`EventsFile`]).
//!
//! Build it with `cargo build --release` in this directory, then point clshost at
//! `target/release/` with `--plugin-dir` or `CLSHOST_PLUGIN_PATH`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use clshost_plugin_api::prelude::*;

/// PolyLoss: cross-entropy plus `epsilon * (1 - p_t)`.
pub struct Poly1 {
    epsilon: f64,
}

/// Config of [`Poly1`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct Poly1Config {
    /// Weight of the (1 - p_t) term; 0 is plain cross-entropy, the paper uses 1 or -1.
    pub epsilon: f64,
}

impl Default for Poly1Config {
    fn default() -> Self {
        Poly1Config { epsilon: 1.0 }
    }
}

impl Component for Poly1 {
    const NAME: &'static str = "poly1";
    const DESCRIPTION: &'static str = "PolyLoss: cross-entropy + epsilon * (1 - p_target)";
    type Config = Poly1Config;

    fn check(config: &Poly1Config) -> Result<(), PluginError> {
        if config.epsilon.is_finite() && config.epsilon >= -1.0 {
            Ok(())
        } else {
            Err(PluginError::config(
                "epsilon",
                "must be a finite number >= -1",
            ))
        }
    }
}

impl Loss for Poly1 {
    fn new(config: Poly1Config, _ctx: &LossContext) -> Result<Self, PluginError> {
        Ok(Poly1 {
            epsilon: config.epsilon,
        })
    }

    fn accepts_soft_targets(&self) -> bool {
        true
    }

    fn compute(
        &self,
        logits: TensorRef<'_>,
        targets: TensorRef<'_>,
        mut grad: TensorMut<'_>,
    ) -> Result<f64, PluginError> {
        let (n, c) = logits.dims2()?;
        if targets.dims2()? != (n, c) || grad.dims2()? != (n, c) {
            return Err(PluginError::input(
                "logits, targets and grad must have one shape",
            ));
        }
        let mut total = 0.0;
        for i in 0..n {
            let z = &logits.data[i * c..(i + 1) * c];
            let t = &targets.data[i * c..(i + 1) * c];
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum_exp: f64 = z.iter().map(|&v| (v as f64 - max).exp()).sum();
            let log_sum = max + sum_exp.ln();
            let p: Vec<f64> = z.iter().map(|&v| (v as f64 - log_sum).exp()).collect();
            let ce: f64 = t
                .iter()
                .zip(z)
                .map(|(&t, &z)| -(t as f64) * (z as f64 - log_sum))
                .sum();
            let p_t: f64 = t.iter().zip(&p).map(|(&t, p)| t as f64 * p).sum();
            total += ce + self.epsilon * (1.0 - p_t);
            for k in 0..c {
                let t_k = t[k] as f64;
                let g = (p[k] - t_k) - self.epsilon * p[k] * (t_k - p_t);
                grad.data[i * c + k] = (g / n as f64) as f32;
            }
        }
        Ok(total / n as f64)
    }
}

/// Balanced accuracy: mean recall over the classes present in the labels.
///
/// Memory is two counters per class; each update is O(N x C) for the argmax.
pub struct BalancedAccuracy {
    adjusted: bool,
    correct: Vec<u64>,
    support: Vec<u64>,
}

/// Config of [`BalancedAccuracy`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct BalancedAccuracyConfig {
    /// Rescale as (score - 1/k) / (1 - 1/k) for k present classes, so chance is 0 and perfect is 1.
    pub adjusted: bool,
}

impl Component for BalancedAccuracy {
    const NAME: &'static str = "balanced_accuracy";
    const DESCRIPTION: &'static str =
        "Mean per-class recall, as scikit-learn's balanced_accuracy_score";
    type Config = BalancedAccuracyConfig;
}

impl Metric for BalancedAccuracy {
    fn new(config: BalancedAccuracyConfig, ctx: &MetricContext) -> Result<Self, PluginError> {
        let c = ctx.num_classes as usize;
        Ok(BalancedAccuracy {
            adjusted: config.adjusted,
            correct: vec![0; c],
            support: vec![0; c],
        })
    }

    fn outputs(&self) -> Vec<MetricOutput> {
        vec![MetricOutput {
            name: "balanced_accuracy".into(),
            higher_is_better: true,
        }]
    }

    fn reset(&mut self) {
        self.correct.fill(0);
        self.support.fill(0);
    }

    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        let (n, c) = logits.dims2()?;
        if labels.len() != n || c != self.support.len() {
            return Err(PluginError::input(format!(
                "expected {} labels and {} classes, got {} and {c}",
                n,
                self.support.len(),
                labels.len()
            )));
        }
        for (row, &label) in logits.data.chunks(c).zip(labels) {
            let label = label as usize;
            if label >= c {
                return Err(PluginError::input(format!(
                    "label {label} is not below {c}"
                )));
            }
            let predicted = row
                .iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
            self.support[label] += 1;
            self.correct[label] += u64::from(predicted == label);
        }
        Ok(())
    }

    fn compute(&self) -> Result<MetricReport, PluginError> {
        let recalls: Vec<f64> = self
            .correct
            .iter()
            .zip(&self.support)
            .map(|(&hit, &n)| {
                if n == 0 {
                    f64::NAN
                } else {
                    hit as f64 / n as f64
                }
            })
            .collect();
        let present: Vec<f64> = recalls.iter().copied().filter(|r| !r.is_nan()).collect();
        let mut score = if present.is_empty() {
            f64::NAN
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        };
        if self.adjusted && !present.is_empty() {
            let chance = 1.0 / present.len() as f64;
            score = (score - chance) / (1.0 - chance);
        }
        Ok(MetricReport {
            scalars: vec![MetricScalar {
                name: "balanced_accuracy".into(),
                value: score,
                higher_is_better: true,
            }]
            .into(),
            vectors: vec![MetricVector {
                name: "recall_per_class".into(),
                values: recalls.into(),
            }]
            .into(),
            matrices: Vec::new().into(),
        })
    }
}

/// Writes a CSV summary of the model's weights: one row per tensor of the graph's initializers,
/// `tensor,shape,elements,mean,std,mean_abs`, after a `#` comment line naming the backbone,
/// recipe, classes and input size from the export metadata.
///
/// The file holds statistics, not a runnable model, so `verify` cannot compare logits: it reads
/// the file back and checks that it lists exactly the graph's tensors, in order, with their
/// shapes and statistics (to the printed precision).
pub struct WeightsSummary {
    file_name: String,
}

/// Config of [`WeightsSummary`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct WeightsSummaryConfig {
    /// Name of the CSV file written into the run's export directory.
    pub file_name: String,
}

impl Default for WeightsSummaryConfig {
    fn default() -> Self {
        WeightsSummaryConfig {
            file_name: "weights_summary.csv".to_string(),
        }
    }
}

impl Component for WeightsSummary {
    const NAME: &'static str = "weights_summary";
    const DESCRIPTION: &'static str =
        "CSV of every weight tensor: shape, element count, mean, std, mean |w|";
    type Config = WeightsSummaryConfig;

    fn check(config: &WeightsSummaryConfig) -> Result<(), PluginError> {
        check_file_name("file_name", &config.file_name, "csv")
    }
}

/// The CSV header of [`WeightsSummary`].
const SUMMARY_HEADER: &str = "tensor,shape,elements,mean,std,mean_abs";

/// One tensor's row: name, shape (`64x3x7x7`), element count, then mean, population standard
/// deviation and mean absolute value, each printed with 9 significant digits.
fn summary_row(weight: &NamedTensor) -> String {
    let data = weight.tensor.data.as_slice();
    let n = data.len().max(1) as f64;
    let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = data
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let mean_abs = data.iter().map(|&v| f64::from(v).abs()).sum::<f64>() / n;
    let shape: Vec<String> = weight.tensor.shape.iter().map(|d| d.to_string()).collect();
    format!(
        "{},{},{},{:.8e},{:.8e},{:.8e}",
        weight.name,
        shape.join("x"),
        data.len(),
        mean,
        var.sqrt(),
        mean_abs
    )
}

impl Exporter for WeightsSummary {
    fn new(config: WeightsSummaryConfig) -> Result<Self, PluginError> {
        Ok(WeightsSummary {
            file_name: config.file_name,
        })
    }

    fn export(
        &self,
        graph: &ModelGraph,
        meta: &ExportMeta,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, PluginError> {
        let classes: Vec<&str> = meta.class_names.iter().map(|c| c.as_str()).collect();
        let mut text = format!(
            "# {} (recipe {}), classes [{}], input 3x{}x{}\n{SUMMARY_HEADER}\n",
            meta.backbone,
            meta.recipe_name,
            classes.join(" "),
            meta.input_height,
            meta.input_width
        );
        for weight in graph.initializers.iter() {
            let _ = writeln!(text, "{}", summary_row(weight));
        }
        let path = out_dir.join(&self.file_name);
        fs::write(&path, text).map_err(|e| PluginError::io_at(&path, e))?;
        Ok(vec![path])
    }

    fn verify(
        &self,
        files: &[PathBuf],
        graph: &ModelGraph,
        _inputs: TensorRef<'_>,
        _expected: TensorRef<'_>,
    ) -> Result<VerifyReport, PluginError> {
        let [path] = files else {
            return Err(PluginError::input(format!(
                "expected the one CSV file, got {} files",
                files.len()
            )));
        };
        let text = fs::read_to_string(path).map_err(|e| PluginError::io_at(path, e))?;
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        if lines.next() != Some(SUMMARY_HEADER) {
            return Err(PluginError::input(format!(
                "{}: the header is not `{SUMMARY_HEADER}`",
                path.display()
            )));
        }
        let rows: Vec<&str> = lines.collect();
        if rows.len() != graph.initializers.len() {
            return Err(PluginError::input(format!(
                "{}: {} rows for {} tensors",
                path.display(),
                rows.len(),
                graph.initializers.len()
            )));
        }
        for (row, weight) in rows.iter().zip(graph.initializers.iter()) {
            if *row != summary_row(weight) {
                return Err(PluginError::input(format!(
                    "{}: the row of `{}` does not match the model: {row}",
                    path.display(),
                    weight.name
                )));
            }
        }
        Ok(VerifyReport {
            max_abs_diff: ROption::RNone,
            detail: format!("read back: {} tensors match the model", rows.len()).into(),
        })
    }
}

/// Appends every event of a run to a JSON Lines file: a logger (ABI 1.4) for teams that feed
/// runs into their own store. A resumed run appends to the same file, so the file holds the
/// whole run, each invocation opened by a `start` line.
pub struct EventsFile {
    file: fs::File,
    path: PathBuf,
}

/// Config of [`EventsFile`].
#[derive(Debug, Clone, Serialize, Deserialize, ConfigDoc)]
#[serde(deny_unknown_fields, default)]
pub struct EventsFileConfig {
    /// The file's name, in the logger's folder of the run directory (`loggers/events_file/`).
    pub file: String,
}

impl Default for EventsFileConfig {
    fn default() -> Self {
        EventsFileConfig {
            file: "events.jsonl".into(),
        }
    }
}

impl Component for EventsFile {
    const NAME: &'static str = "events_file";
    const DESCRIPTION: &'static str = "Every event of a run as JSON Lines in the run directory";
    type Config = EventsFileConfig;

    fn check(config: &EventsFileConfig) -> Result<(), PluginError> {
        check_file_name("file", &config.file, "jsonl")
    }
}

/// `{name: value}` of named scalars.
fn scalars(values: &[Scalar]) -> serde_json::Value {
    values
        .iter()
        .map(|s| (s.name.to_string(), serde_json::json!(s.value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl EventsFile {
    fn write(&mut self, event: serde_json::Value) -> Result<(), PluginError> {
        use std::io::Write as _;
        writeln!(self.file, "{event}").map_err(|e| PluginError::io_at(&self.path, e))
    }
}

impl Logger for EventsFile {
    fn new(config: EventsFileConfig, ctx: &LoggerContext) -> Result<Self, PluginError> {
        let path = Path::new(ctx.state_dir.as_str()).join(&config.file);
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| PluginError::io_at(&path, e))?;
        Ok(EventsFile { file, path })
    }

    fn start(&mut self, run: &RunStart) -> Result<(), PluginError> {
        let params: serde_json::Map<_, _> = run
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.value.as_str().into()))
            .collect();
        let environment: serde_json::Map<_, _> = run
            .environment
            .iter()
            .map(|p| (p.name.to_string(), p.value.as_str().into()))
            .collect();
        self.write(serde_json::json!({
            "event": "start",
            "name": run.name.as_str(),
            "resumed": run.resumed,
            "next_step": run.next_step,
            "epochs": run.epochs,
            "classes": run.classes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "params": params,
            "environment": environment,
        }))
    }

    fn step(&mut self, step: &StepLog) -> Result<(), PluginError> {
        self.write(serde_json::json!({
            "event": "step",
            "step": step.step,
            "scalars": scalars(&step.scalars),
        }))
    }

    fn epoch(&mut self, epoch: &EpochLog) -> Result<(), PluginError> {
        self.write(serde_json::json!({
            "event": "epoch",
            "epoch": epoch.epoch,
            "step": epoch.step,
            "scalars": scalars(&epoch.scalars),
            "best": epoch.best.into_option(),
            "improved": epoch.improved,
        }))
    }

    fn file(&mut self, file: &FileLog) -> Result<(), PluginError> {
        self.write(serde_json::json!({
            "event": "file",
            "kind": file.kind.as_str(),
            "relative": file.relative.as_str(),
            "epoch": file.epoch.into_option(),
        }))
    }

    fn end(&mut self, end: &RunEnd) -> Result<(), PluginError> {
        self.write(serde_json::json!({
            "event": "end",
            "status": end.status.as_str(),
            "message": end.message.as_str(),
            "epochs": end.epochs,
            "step": end.step,
            "summary": scalars(&end.summary),
        }))?;
        self.file
            .sync_all()
            .map_err(|e| PluginError::io_at(&self.path, e))
    }
}

register!(
    Loss: Poly1,
    Metric: BalancedAccuracy,
    Exporter: WeightsSummary,
    Logger: EventsFile
);
export_plugin!(
    description: "Example third-party plugin: PolyLoss, balanced accuracy, a weights summary, \
                  a JSON Lines logger"
);

#[cfg(test)]
mod tests {
    use super::*;
    use clshost_plugin_api::authoring::root_module;

    /// `#[derive(ConfigDoc)]` names each parameter as serde does, so `clshost plugins` shows a
    /// default next to every one.
    #[test]
    fn every_parameter_is_listed_with_its_default() {
        let root = root_module("clshost-plugin-acme", "0.3.0", "test", None);
        let info = root.info()().unwrap();
        let params: Vec<(&str, &str, &str)> = info
            .components
            .iter()
            .flat_map(|c| {
                c.params
                    .iter()
                    .map(move |p| (c.name.as_str(), p.name.as_str(), p.default.as_str()))
            })
            .collect();
        assert_eq!(
            params,
            [
                ("poly1", "epsilon", "1.0"),
                ("balanced_accuracy", "adjusted", "false"),
                ("weights_summary", "file_name", "\"weights_summary.csv\""),
            ]
        );
        let list = root
            .loggers()
            .expect("an ABI 1.4 root module lists loggers");
        let loggers = list().unwrap();
        let logger = &loggers[0];
        assert_eq!(logger.name.as_str(), "events_file");
        assert_eq!(logger.params[0].default.as_str(), "\"events.jsonl\"");
    }

    /// The summary of a known tensor, and `verify` accepting the file `export` wrote and
    /// rejecting one whose numbers were edited.
    #[test]
    fn weights_summary_rows_and_verification() {
        let weight = NamedTensor {
            name: "fc.weight".into(),
            tensor: Tensor::new(vec![2, 2], vec![1.0, -1.0, 3.0, -3.0]).unwrap(),
        };
        // mean 0, std sqrt((1 + 1 + 9 + 9) / 4) = sqrt(5), mean |w| 2.
        assert_eq!(
            summary_row(&weight),
            "fc.weight,2x2,4,0.00000000e0,2.23606798e0,2.00000000e0"
        );
        let graph = ModelGraph {
            inputs: Vec::new().into(),
            outputs: Vec::new().into(),
            nodes: Vec::new().into(),
            initializers: vec![weight].into(),
        };
        let meta = ExportMeta {
            recipe_name: "demo".into(),
            recipe: "()".into(),
            backbone: "tiny".into(),
            class_names: vec!["a".into(), "b".into()].into(),
            input_height: 8,
            input_width: 8,
            mean: [0.5; 3],
            std: [0.25; 3],
            extra: Vec::new().into(),
        };
        let dir = std::env::temp_dir().join(format!("acme-summary-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let exporter = WeightsSummary::new(WeightsSummaryConfig::default()).unwrap();
        let files = exporter.export(&graph, &meta, &dir).unwrap();
        let none = TensorRef::new(&[0], &[]).unwrap();
        let report = exporter.verify(&files, &graph, none, none).unwrap();
        assert_eq!(
            report.detail.as_str(),
            "read back: 1 tensors match the model"
        );
        let text = fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.starts_with("# tiny (recipe demo), classes [a b], input 3x8x8\n"),
            "{text}"
        );
        fs::write(&files[0], text.replace("2.23606798e0", "2.2e0")).unwrap();
        assert!(exporter.verify(&files, &graph, none, none).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The analytic gradient agrees with central finite differences of the loss.
    #[test]
    fn poly1_gradient_matches_finite_differences() {
        let loss = Poly1::new(
            Poly1Config { epsilon: 0.7 },
            &LossContext { num_classes: 3 },
        )
        .unwrap();
        let shape = [2usize, 3];
        let logits = vec![0.3f32, -1.2, 2.0, 0.1, 0.4, -0.5];
        let targets = vec![0.0f32, 0.25, 0.75, 1.0, 0.0, 0.0];
        let value = |z: &[f32]| {
            let mut g = vec![0.0f32; 6];
            loss.compute(
                TensorRef::new(&shape, z).unwrap(),
                TensorRef::new(&shape, &targets).unwrap(),
                TensorMut::new(&shape, &mut g).unwrap(),
            )
            .unwrap()
        };
        let mut grad = vec![0.0f32; 6];
        loss.compute(
            TensorRef::new(&shape, &logits).unwrap(),
            TensorRef::new(&shape, &targets).unwrap(),
            TensorMut::new(&shape, &mut grad).unwrap(),
        )
        .unwrap();
        for k in 0..6 {
            let h = 1e-3f32;
            let mut up = logits.clone();
            up[k] += h;
            let mut down = logits.clone();
            down[k] -= h;
            let numeric = (value(&up) - value(&down)) / (2.0 * h as f64);
            assert!(
                (numeric - grad[k] as f64).abs() < 1e-4,
                "{k}: {numeric} vs {}",
                grad[k]
            );
        }
    }

    /// Matches `sklearn.metrics.balanced_accuracy_score([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])`
    /// = mean(1/2, 1/1, 2/3) = 0.722222...
    #[test]
    fn balanced_accuracy_matches_scikit_learn() {
        let ctx = MetricContext {
            num_classes: 3,
            class_names: Vec::new().into(),
        };
        let mut metric = BalancedAccuracy::new(BalancedAccuracyConfig::default(), &ctx).unwrap();
        let predicted = [0usize, 1, 1, 2, 0, 2];
        let mut logits = vec![0.0f32; 18];
        for (i, &p) in predicted.iter().enumerate() {
            logits[i * 3 + p] = 1.0;
        }
        let shape = [6usize, 3];
        metric
            .update(
                TensorRef::new(&shape, &logits).unwrap(),
                &[0, 0, 1, 2, 2, 2],
            )
            .unwrap();
        let report = metric.compute().unwrap();
        assert!((report.scalars[0].value - 0.722_222_222_222_222_2).abs() < 1e-12);
    }
}
