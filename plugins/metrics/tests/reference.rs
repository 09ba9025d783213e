//! Every metric against scikit-learn / numpy (fixtures from `scripts/fixtures/metrics.py`),
//! accumulated over several batches (one of them empty), within 1e-9.

use std::collections::BTreeMap;

use clshost_plugin_api::authoring::{Component, Metric};
use clshost_plugin_api::{MetricContext, MetricReport, PluginError, TensorRef, parse_config};
use clshost_plugin_metrics::{
    Accuracy, Auroc, ConfusionMatrix, Ece, F1, PerClassAccuracy, Precision, Recall,
};
use serde::Deserialize;

/// One batch of rows.
#[derive(Deserialize)]
struct Batch {
    logits: Vec<Vec<f64>>,
    labels: Vec<u32>,
}

/// What one metric config must report; `None` stands for NaN.
#[derive(Deserialize)]
struct Expect {
    metric: String,
    config: String,
    scalars: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    vectors: BTreeMap<String, Vec<Option<f64>>>,
    #[serde(default)]
    matrices: BTreeMap<String, Vec<Vec<Option<f64>>>>,
}

/// One fixture case.
#[derive(Deserialize)]
struct Case {
    name: String,
    num_classes: u32,
    batches: Vec<Batch>,
    expect: Vec<Expect>,
}

/// The fixture file.
#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

/// A metric behind one interface, so every component runs through the same checks.
trait Dyn {
    fn outputs(&self) -> Vec<String>;
    fn reset(&mut self);
    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError>;
    fn compute(&self) -> Result<MetricReport, PluginError>;
}

impl<T: Metric> Dyn for T {
    fn outputs(&self) -> Vec<String> {
        Metric::outputs(self)
            .into_iter()
            .map(|o| o.name.into_string())
            .collect()
    }
    fn reset(&mut self) {
        Metric::reset(self);
    }
    fn update(&mut self, logits: TensorRef<'_>, labels: &[u32]) -> Result<(), PluginError> {
        Metric::update(self, logits, labels)
    }
    fn compute(&self) -> Result<MetricReport, PluginError> {
        Metric::compute(self)
    }
}

fn build<T: Metric>(config: &str, classes: u32) -> Box<dyn Dyn> {
    let config = parse_config::<T::Config>(config).unwrap();
    T::check(&config).unwrap();
    let ctx = MetricContext {
        num_classes: classes,
        class_names: (0..classes).map(|c| format!("class{c}").into()).collect(),
    };
    Box::new(T::new(config, &ctx).unwrap())
}

fn metric(name: &str, config: &str, classes: u32) -> Box<dyn Dyn> {
    match name {
        "accuracy" => build::<Accuracy>(config, classes),
        "precision" => build::<Precision>(config, classes),
        "recall" => build::<Recall>(config, classes),
        "f1" => build::<F1>(config, classes),
        "auroc" => build::<Auroc>(config, classes),
        "confusion_matrix" => build::<ConfusionMatrix>(config, classes),
        "per_class_accuracy" => build::<PerClassAccuracy>(config, classes),
        "ece" => build::<Ece>(config, classes),
        other => panic!("unknown metric {other}"),
    }
}

/// Equal within 1e-9 (relative above 1), NaN only where the reference has NaN (null).
fn same(actual: f64, expected: Option<f64>) -> bool {
    match expected {
        None => actual.is_nan(),
        Some(e) => (actual - e).abs() <= 1e-9 * e.abs().max(1.0),
    }
}

fn feed(metric: &mut dyn Dyn, case: &Case) {
    for batch in &case.batches {
        let logits: Vec<f32> = batch.logits.iter().flatten().map(|&v| v as f32).collect();
        let shape = [batch.labels.len(), case.num_classes as usize];
        metric
            .update(TensorRef::new(&shape, &logits).unwrap(), &batch.labels)
            .unwrap();
    }
}

fn check(report: &MetricReport, expect: &Expect, context: &str) {
    let scalars: BTreeMap<&str, f64> = report
        .scalars
        .iter()
        .map(|s| (s.name.as_str(), s.value))
        .collect();
    assert_eq!(
        scalars.keys().copied().collect::<Vec<_>>(),
        expect
            .scalars
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "{context}: scalar names"
    );
    for (name, &e) in &expect.scalars {
        let a = scalars[name.as_str()];
        assert!(same(a, e), "{context}: {name} = {a}, reference {e:?}");
    }
    let vectors: BTreeMap<&str, &[f64]> = report
        .vectors
        .iter()
        .map(|v| (v.name.as_str(), v.values.as_slice()))
        .collect();
    assert_eq!(
        vectors.len(),
        expect.vectors.len(),
        "{context}: vector names"
    );
    for (name, e) in &expect.vectors {
        let a = vectors[name.as_str()];
        assert_eq!(a.len(), e.len(), "{context}: {name} length");
        for (c, (&a, &e)) in a.iter().zip(e).enumerate() {
            assert!(same(a, e), "{context}: {name}[{c}] = {a}, reference {e:?}");
        }
    }
    assert_eq!(
        report.matrices.len(),
        expect.matrices.len(),
        "{context}: matrix names"
    );
    for m in report.matrices.iter() {
        let e = &expect.matrices[m.name.as_str()];
        assert_eq!(m.rows as usize, e.len(), "{context}: {} rows", m.name);
        assert_eq!(m.cols as usize, e[0].len(), "{context}: {} columns", m.name);
        for (k, (&a, &e)) in m.values.iter().zip(e.iter().flatten()).enumerate() {
            assert!(
                same(a, e),
                "{context}: {}[{}, {}] = {a}, reference {e:?}",
                m.name,
                k / m.cols as usize,
                k % m.cols as usize
            );
        }
    }
}

#[test]
fn every_metric_matches_scikit_learn() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/metrics.json")).unwrap();
    assert!(fixture.cases.len() >= 8);
    let mut checked = 0;
    for case in &fixture.cases {
        for expect in &case.expect {
            let context = format!("{} / {} {}", case.name, expect.metric, expect.config);
            let mut m = metric(&expect.metric, &expect.config, case.num_classes);
            let declared = m.outputs();
            assert_eq!(
                declared,
                expect.scalars.keys().cloned().collect::<Vec<_>>(),
                "{context}: declared outputs"
            );
            feed(m.as_mut(), case);
            check(&m.compute().unwrap(), expect, &context);
            // After a reset, the same epoch gives the same report.
            m.reset();
            feed(m.as_mut(), case);
            check(
                &m.compute().unwrap(),
                expect,
                &format!("{context} after reset"),
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} configurations checked");
}

#[test]
fn no_rows_report_nan_scalars() {
    let names = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auroc",
        "per_class_accuracy",
        "ece",
    ];
    for name in names {
        let mut m = metric(name, "()", 4);
        let shape = [0, 4];
        m.update(TensorRef::new(&shape, &[]).unwrap(), &[]).unwrap();
        let report = m.compute().unwrap();
        assert!(!report.scalars.is_empty(), "{name}");
        for s in report.scalars.iter() {
            assert!(s.value.is_nan(), "{name}: {} = {}", s.name, s.value);
        }
    }
}

#[test]
fn bad_batches_are_input_errors() {
    let mut m = metric("accuracy", "()", 3);
    let shape = [2, 3];
    let logits = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    let wrong = [
        (
            TensorRef::new(&shape, &logits).unwrap(),
            &[0u32][..],
            "2 rows of logits but 1 labels",
        ),
        (
            TensorRef::new(&shape, &logits).unwrap(),
            &[0, 3][..],
            "label 3 of row 1",
        ),
        (
            TensorRef::new(&[3, 2], &logits).unwrap(),
            &[0, 1, 1][..],
            "created for 3 classes",
        ),
    ];
    for (t, labels, expected) in wrong {
        let err = m.update(t, labels).unwrap_err();
        assert_eq!(err.kind, clshost_plugin_api::ErrorKind::Input);
        assert!(err.message.contains(expected), "{err}");
    }
    let nan = [0.0, f32::NAN, 2.0, 3.0, 4.0, 5.0];
    let err = m
        .update(TensorRef::new(&shape, &nan).unwrap(), &[0, 1])
        .unwrap_err();
    assert!(err.message.contains("logit [0, 1] is NaN"), "{err}");
    let mut no_classes = metric("f1", "()", 0);
    let err = no_classes
        .update(TensorRef::new(&[1, 0], &[]).unwrap(), &[0])
        .unwrap_err();
    assert!(err.message.contains("no classes"), "{err}");
}

#[test]
fn configs_are_validated() {
    let cases: [(&str, Result<(), PluginError>); 5] = [
        (
            "top_k",
            Accuracy::check(&parse_config("(top_k: [])").unwrap()),
        ),
        (
            "top_k",
            Accuracy::check(&parse_config("(top_k: [1, 0])").unwrap()),
        ),
        (
            "top_k",
            Accuracy::check(&parse_config("(top_k: [5, 5])").unwrap()),
        ),
        (
            "zero_division",
            F1::check(&parse_config("(zero_division: 0.5)").unwrap()),
        ),
        ("bins", Ece::check(&parse_config("(bins: 0)").unwrap())),
    ];
    for (field, result) in cases {
        assert_eq!(result.unwrap_err().field_path.as_str(), field);
    }
    let err = parse_config::<<F1 as Component>::Config>("(average: mean)").unwrap_err();
    assert!(err.message.contains("macro"), "{err}");
    assert!(PerClassAccuracy::check(&parse_config("(zero_division: NaN)").unwrap()).is_ok());
}

#[test]
fn confusion_matrix_counts_thousands_of_classes() {
    let classes = 2000;
    let mut m = metric("confusion_matrix", "()", classes);
    let shape = [3, classes as usize];
    let mut logits = vec![0.0; 3 * classes as usize];
    logits[1999] = 1.0;
    for _ in 0..10 {
        m.update(TensorRef::new(&shape, &logits).unwrap(), &[1999, 5, 0])
            .unwrap();
    }
    let report = m.compute().unwrap();
    let counts = &report.matrices[0].values;
    assert_eq!(counts[1999 * 2000 + 1999], 10.0);
    assert_eq!(counts[5 * 2000], 10.0);
    assert_eq!(counts[0], 10.0);
    assert_eq!(counts.iter().sum::<f64>(), 30.0);
}
