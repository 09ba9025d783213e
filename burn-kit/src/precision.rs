//! Mixed precision (`trainer.precision`, plugin ABI 1.6): `bf16` runs convolutions and linear
//! layers in bfloat16 and everything downstream of them in the dtype they produce, as
//! `torch.autocast(dtype=torch.bfloat16)` does, while the weights, their gradients, the optimizer
//! state and the EMA stay in float32.
//!
//! The semantics are autocast's: [`conv2d`](crate::nn::conv2d) and [`Linear`](crate::nn::Linear)
//! cast their input, weight and bias to bfloat16 (an autodiff cast, whose backward casts the
//! gradient back to float32 for the weights); batch normalization takes the bfloat16 activations
//! with float32 parameters and statistics (ATen's mixed-type kernels), ReLU, pooling and the
//! residual additions stay in bfloat16, and the session casts the logits to float32 before the
//! loss. Only the LibTorch backend runs it: [`Precision::Bf16`] is refused on the others.
//!
//! Like autocast, the switch is per thread: a [`Scope`] turns it on around one forward pass,
//! and the layers read it with [`active`].

use std::cell::Cell;

use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use clshost_plugin_api::PluginError;

/// The precision a backbone computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in float32 (the default).
    #[default]
    Fp32,
    /// Convolutions and linear layers in bfloat16, weights and optimizer in float32.
    Bf16,
}

impl Precision {
    /// The precision called `name` (`fp32` or `bf16`).
    pub fn parse(name: &str) -> Result<Self, PluginError> {
        match name {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Err(PluginError::unsupported(
                "precision `fp16` needs loss scaling, which the Burn kit does not do; use `bf16`, \
                 which has float32's range",
            )),
            other => Err(PluginError::config(
                "precision",
                format!("unknown precision `{other}`: expected `fp32` or `bf16`"),
            )),
        }
    }
}

thread_local! {
    /// Whether this thread is inside a bf16 [`Scope`].
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Mixed precision switched on (or off) for this thread until the scope is dropped.
#[must_use = "the precision applies only while the scope lives"]
pub struct Scope {
    previous: bool,
}

impl Scope {
    /// Enters `precision` for this thread.
    pub fn enter(precision: Precision) -> Scope {
        let previous = ACTIVE.with(|a| a.replace(precision == Precision::Bf16));
        Scope { previous }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(self.previous));
    }
}

/// Whether the layers run in bfloat16 on this thread now.
pub fn active() -> bool {
    ACTIVE.with(Cell::get)
}

/// `t` in bfloat16 inside a bf16 [`Scope`] (through an autodiff cast), unchanged otherwise: what
/// autocast does to the inputs of a convolution or a matrix product.
pub fn lower<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    if active() {
        t.cast(FloatDType::BF16)
    } else {
        t
    }
}

/// `t` in float32 (through an autodiff cast, so its gradient comes back in its own dtype).
pub fn full<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    t.cast(FloatDType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_fp16_says_why_not() {
        assert_eq!(Precision::parse("fp32").unwrap(), Precision::Fp32);
        assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
        let fp16 = Precision::parse("fp16").unwrap_err().to_string();
        assert!(fp16.contains("loss scaling"), "{fp16}");
        let other = Precision::parse("f32").unwrap_err().to_string();
        assert!(other.contains("`fp32` or `bf16`"), "{other}");
    }

    #[test]
    fn scopes_nest_and_restore() {
        assert!(!active());
        {
            let _outer = Scope::enter(Precision::Bf16);
            assert!(active());
            {
                let _inner = Scope::enter(Precision::Fp32);
                assert!(!active());
            }
            assert!(active());
        }
        assert!(!active());
    }
}
