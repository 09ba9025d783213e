//! Loss values and gradients against PyTorch (fixtures from `scripts/fixtures/losses.py`), and
//! gradients against central finite differences.

use clshost_plugin_api::authoring::{Component, Loss};
use clshost_plugin_api::{LossContext, PluginError, TensorMut, TensorRef, parse_config};
use clshost_plugin_losses::{Bce, CrossEntropy, Focal};
use serde::Deserialize;

/// One fixture case.
#[derive(Deserialize)]
struct Case {
    name: String,
    loss: String,
    config: String,
    logits: Vec<Vec<f64>>,
    targets: Vec<Vec<f64>>,
    loss_value: f64,
    grad: Vec<Vec<f64>>,
}

/// The fixture file.
#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("fixtures/losses.json");
    serde_json::from_str::<Fixture>(text).unwrap().cases
}

/// A batch as flat `f32` buffers (fixture values are exactly representable in `f32`).
struct Batch {
    shape: [usize; 2],
    logits: Vec<f32>,
    targets: Vec<f32>,
}

impl Batch {
    fn of(case: &Case) -> Self {
        let flat = |m: &[Vec<f64>]| -> Vec<f32> {
            m.iter()
                .flatten()
                .map(|&v| {
                    let x = v as f32;
                    assert_eq!(f64::from(x), v, "fixture value {v} is not an f32");
                    x
                })
                .collect()
        };
        Batch {
            shape: [case.logits.len(), case.logits[0].len()],
            logits: flat(&case.logits),
            targets: flat(&case.targets),
        }
    }

    fn classes(&self) -> usize {
        self.shape[1]
    }
}

/// A loss created from its RON config, behind one signature.
type LossFn = Box<dyn Fn(&[f32], &[f32], &mut [f32]) -> Result<f64, PluginError>>;

fn build<T: Loss>(config: &str, shape: [usize; 2]) -> LossFn {
    let config = parse_config::<T::Config>(config).unwrap();
    T::check(&config).unwrap();
    let ctx = LossContext {
        num_classes: shape[1] as u32,
    };
    let loss = T::new(config, &ctx).unwrap();
    Box::new(move |logits, targets, grad| {
        loss.compute(
            TensorRef::new(&shape, logits).unwrap(),
            TensorRef::new(&shape, targets).unwrap(),
            TensorMut::new(&shape, grad).unwrap(),
        )
    })
}

fn loss_for(case: &Case, shape: [usize; 2]) -> LossFn {
    match case.loss.as_str() {
        "cross_entropy" => build::<CrossEntropy>(&case.config, shape),
        "bce" => build::<Bce>(&case.config, shape),
        "focal" => build::<Focal>(&case.config, shape),
        other => panic!("unknown loss {other}"),
    }
}

/// `|actual - expected| <= 1e-6 |expected| + abs`.
fn close(actual: f64, expected: f64, abs: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs() + abs
}

#[test]
fn values_and_gradients_match_pytorch() {
    let cases = cases();
    assert!(cases.len() >= 30);
    for case in &cases {
        let batch = Batch::of(case);
        let loss = loss_for(case, batch.shape);
        let mut grad = vec![f32::NAN; batch.logits.len()];
        let value = loss(&batch.logits, &batch.targets, &mut grad).unwrap();
        assert!(
            close(value, case.loss_value, 0.0),
            "{}: loss {value} != {} (PyTorch)",
            case.name,
            case.loss_value
        );
        // The absolute floor covers f32 storage of gradient entries that underflow.
        for (k, (&g, &e)) in grad.iter().zip(case.grad.iter().flatten()).enumerate() {
            assert!(
                close(f64::from(g), e, 1e-10),
                "{}: grad[{}, {}] = {g} != {e} (PyTorch)",
                case.name,
                k / batch.classes(),
                k % batch.classes()
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for case in cases().iter().filter(|c| !c.name.contains("extreme")) {
        let batch = Batch::of(case);
        let loss = loss_for(case, batch.shape);
        let mut grad = vec![0.0; batch.logits.len()];
        loss(&batch.logits, &batch.targets, &mut grad).unwrap();
        let scale = grad.iter().fold(0.0_f64, |m, g| m.max(f64::from(g.abs())));
        let mut scratch = vec![0.0; grad.len()];
        for k in 0..batch.logits.len() {
            let h = 1.0e-3_f32;
            let mut plus = batch.logits.clone();
            let mut minus = batch.logits.clone();
            plus[k] += h;
            minus[k] -= h;
            let up = loss(&plus, &batch.targets, &mut scratch).unwrap();
            let down = loss(&minus, &batch.targets, &mut scratch).unwrap();
            // The step actually taken after rounding to f32.
            let step = f64::from(plus[k]) - f64::from(minus[k]);
            let fd = (up - down) / step;
            let g = f64::from(grad[k]);
            assert!(
                (fd - g).abs() <= 1e-4 * scale + 1e-4 * g.abs(),
                "{}: d/dz[{k}] = {g} but finite difference gives {fd}",
                case.name
            );
        }
    }
}

#[test]
fn focal_rejects_soft_targets_clearly() {
    let shape = [2, 3];
    let loss = build::<Focal>("()", shape);
    let mut grad = vec![0.0; 6];
    let err = loss(
        &[0.1, 0.2, 0.3, 1.0, -1.0, 0.0],
        &[1.0, 0.0, 0.0, 0.7, 0.3, 0.0],
        &mut grad,
    )
    .unwrap_err();
    assert_eq!(err.kind, clshost_plugin_api::ErrorKind::Input);
    assert!(err.message.contains("row 1 is soft"), "{err}");
}

#[test]
fn soft_target_support_is_declared() {
    let ctx = LossContext { num_classes: 3 };
    assert!(
        CrossEntropy::new(Default::default(), &ctx)
            .unwrap()
            .accepts_soft_targets()
    );
    assert!(
        Bce::new(Default::default(), &ctx)
            .unwrap()
            .accepts_soft_targets()
    );
    assert!(
        !Focal::new(Default::default(), &ctx)
            .unwrap()
            .accepts_soft_targets()
    );
}

#[test]
fn bad_inputs_are_input_errors() {
    let shape = [1, 3];
    let loss = build::<CrossEntropy>("(class_weights: Some([0.0, 1.0, 1.0]))", shape);
    let mut grad = vec![0.0; 3];
    let cases: [(&[f32], &[f32], &str); 3] = [
        (
            &[f32::NAN, 0.0, 0.0],
            &[0.0, 1.0, 0.0],
            "logit [0, 0] is NaN",
        ),
        (&[0.0, 0.0, 0.0], &[0.0, 1.5, 0.0], "target [0, 1] is 1.5"),
        (&[0.0, 0.0, 0.0], &[1.0, 0.0, 0.0], "weight 0"),
    ];
    for (logits, targets, expected) in cases {
        let err = loss(logits, targets, &mut grad).unwrap_err();
        assert_eq!(err.kind, clshost_plugin_api::ErrorKind::Input);
        assert!(err.message.contains(expected), "{err}");
    }
    let ctx = LossContext { num_classes: 4 };
    let wrong_width = CrossEntropy::new(Default::default(), &ctx).unwrap();
    let err = wrong_width
        .compute(
            TensorRef::new(&shape, &[0.0; 3]).unwrap(),
            TensorRef::new(&shape, &[1.0, 0.0, 0.0]).unwrap(),
            TensorMut::new(&shape, &mut grad).unwrap(),
        )
        .unwrap_err();
    assert!(err.message.contains("created for 4 classes"), "{err}");
    let no_classes =
        CrossEntropy::new(Default::default(), &LossContext { num_classes: 0 }).unwrap();
    let empty = [1, 0];
    let err = no_classes
        .compute(
            TensorRef::new(&empty, &[]).unwrap(),
            TensorRef::new(&empty, &[]).unwrap(),
            TensorMut::new(&empty, &mut []).unwrap(),
        )
        .unwrap_err();
    assert!(err.message.contains("no classes"), "{err}");
}

#[test]
fn configs_are_validated() {
    let bad: [(&str, Result<(), PluginError>); 6] = [
        (
            "label_smoothing",
            CrossEntropy::check(&parse_config("(label_smoothing: 1.5)").unwrap()),
        ),
        (
            "class_weights",
            CrossEntropy::check(&parse_config("(class_weights: Some([1.0, -1.0]))").unwrap()),
        ),
        (
            "class_weights",
            CrossEntropy::check(&parse_config("(class_weights: Some([]))").unwrap()),
        ),
        (
            "target_thresh",
            Bce::check(&parse_config("(target_thresh: Some(2.0))").unwrap()),
        ),
        (
            "pos_weight",
            Bce::check(&parse_config("(pos_weight: Some([inf]))").unwrap()),
        ),
        (
            "gamma",
            Focal::check(&parse_config("(gamma: -1.0)").unwrap()),
        ),
    ];
    for (field, result) in bad {
        let err = result.unwrap_err();
        assert_eq!(err.field_path.as_str(), field, "{err}");
    }
    let ctx = LossContext { num_classes: 3 };
    let err = Focal::new(parse_config("(alpha: Some([1.0, 2.0]))").unwrap(), &ctx)
        .err()
        .unwrap();
    assert_eq!(err.field_path.as_str(), "alpha");
    assert!(err.message.contains("3 classes"), "{err}");
}
