//! Mixed precision (`trainer.precision: bf16`) against `torch.autocast`: the fixtures
//! `resnet{18,50}_bf16.json` of `scripts/fixtures/resnet.py` hold the eval logits and two SGD
//! steps under `torch.autocast("cpu", dtype=torch.bfloat16)` for the same weights and inputs as
//! the float32 parity tests. With the LibTorch backend built in, they run on `libtorch:cpu` (or
//! the libtorch device `CLSHOST_TEST_DEVICE` names); the other backends must refuse `bf16`.

use clshost_plugin_api::prelude::*;
use clshost_plugin_resnet::ResNet;

use crate::common::{context, momentum_sgd};

#[test]
fn bf16_is_refused_by_the_other_backends() {
    let mut model =
        ResNet::<18>::new(Default::default(), &context(3, "cpu", momentum_sgd(0.0))).unwrap();
    let error = model.set_precision("bf16").unwrap_err().to_string();
    assert!(
        error.contains("LibTorch backend only") && error.contains("cpu (flex"),
        "{error}"
    );
    model.set_precision("fp32").unwrap();
    let error = model.set_precision("fp16").unwrap_err().to_string();
    assert!(error.contains("loss scaling"), "{error}");
}

#[cfg(feature = "libtorch")]
mod libtorch {
    use clshost_plugin_resnet::ResNet;

    use crate::common::test_device;
    use crate::parity::{Case, Tolerance, check_eval, check_sgd};

    /// The case of `fixture` in `precision` on the libtorch device `CLSHOST_TEST_DEVICE` names,
    /// else on `libtorch:cpu`.
    fn case<'a>(fixture: &'a str, precision: &'a str) -> Case<'a> {
        let device = Some(test_device())
            .filter(|d| d.starts_with("libtorch"))
            .unwrap_or_else(|| "libtorch:cpu".into());
        Case {
            fixture,
            device,
            precision,
        }
    }

    /// bfloat16 against `torch.autocast` on the same ATen kernels. The logits leave the last
    /// layer rounded to bfloat16 (8 significant bits), so they may differ by a unit or two of
    /// its last place: on `libtorch:cpu`, up to 2.0e-3 (eval) and 4.1e-3 (training) of the
    /// largest logit, and the float32 weights after two steps up to 2.4e-5. The same steps in
    /// float32 land 3.5e-2 to 5.5e-2 (logits) and 2.7e-3 (weights) from autocast.
    const BF16: Tolerance = Tolerance {
        eval: 4e-3,
        logits: 1e-2,
        weights: 1e-4,
    };

    #[test]
    fn resnet18_bf16_eval_matches_torch_autocast() {
        check_eval::<ResNet<18>>(&case("resnet18_bf16", "bf16"), &BF16).unwrap();
    }

    #[test]
    fn resnet50_bf16_eval_matches_torch_autocast() {
        check_eval::<ResNet<50>>(&case("resnet50_bf16", "bf16"), &BF16).unwrap();
    }

    #[test]
    fn resnet18_bf16_sgd_steps_match_torch_autocast_and_fp32_does_not() {
        check_sgd::<ResNet<18>>(&case("resnet18_bf16", "bf16"), &BF16).unwrap();
        // The tolerance tells the two apart: the casts really happen.
        let fp32 = check_sgd::<ResNet<18>>(&case("resnet18_bf16", "fp32"), &BF16);
        assert!(fp32.is_err(), "float32 passes the bf16 check too");
    }

    #[test]
    fn resnet50_bf16_sgd_steps_match_torch_autocast() {
        check_sgd::<ResNet<50>>(&case("resnet50_bf16", "bf16"), &BF16).unwrap();
    }
}
