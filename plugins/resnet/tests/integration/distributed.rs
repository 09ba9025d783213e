//! Data-parallel training (ABI 1.5) through an in-memory collective between two threads, each
//! holding a backbone: two ranks with one micro-batch each must end with the same trainable
//! weights, bit for bit, as one backbone accumulating the two micro-batches; a rank without a
//! batch (a zero-row gradient, no forward pass) must contribute nothing.

use std::sync::{Arc, Barrier, Mutex};

use abi_stable::sabi_trait::TD_Opaque;
use clshost_plugin_api::prelude::*;
use clshost_plugin_api::{AbiCollective, AbiCollective_TO, OptimizerSpec, RResult, RSliceMut};
use clshost_plugin_resnet::{ResNet, ResNetConfig};

use crate::common::{context, load_fixture_weights, momentum_sgd, uniform};

/// The ranks of one in-process job: each rank's buffer is left in its slot, and after the
/// barrier every rank sums the slots in rank order.
struct Threads {
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
}

/// One rank's view of [`Threads`].
struct ThreadRank {
    job: Arc<Threads>,
    rank: u32,
}

impl AbiCollective for ThreadRank {
    fn rank(&self) -> u32 {
        self.rank
    }

    fn size(&self) -> u32 {
        self.job.slots.lock().unwrap().len() as u32
    }

    fn all_reduce_sum(&self, mut data: RSliceMut<'_, f32>) -> RResult<(), PluginError> {
        self.job.slots.lock().unwrap()[self.rank as usize] = data.to_vec();
        self.job.barrier.wait();
        {
            let slots = self.job.slots.lock().unwrap();
            for (i, x) in data.iter_mut().enumerate() {
                *x = slots.iter().skip(1).fold(slots[0][i], |sum, s| sum + s[i]);
            }
        }
        self.job.barrier.wait();
        RResult::ROk(())
    }

    fn broadcast(&self, _data: RSliceMut<'_, u8>, _root: u32) -> RResult<(), PluginError> {
        RResult::RErr(PluginError::unsupported("not needed by these tests"))
    }
}

const CLASSES: u32 = 10;

fn spec() -> OptimizerSpec {
    OptimizerSpec {
        clip_grad_norm: Some(1.0).into(),
        ..momentum_sgd(1e-4)
    }
}

fn model() -> ResNet<18> {
    let config = ResNetConfig {
        small_input: true,
        ..ResNetConfig::default()
    };
    let mut model = ResNet::<18>::new(config, &context(CLASSES, "cpu", spec())).unwrap();
    load_fixture_weights(&mut model);
    model
}

/// Micro-batch `i` of 2 images of 16x16 pixels.
fn images(i: usize) -> Tensor {
    let shape = vec![2, 3, 16, 16];
    let data = uniform(&format!("images.{i}"), 2 * 3 * 16 * 16);
    Tensor::new(shape, data.into_iter().map(|v| v as f32).collect()).unwrap()
}

/// The logit gradient of micro-batch `i`, halved as the host halves it for a window of two.
fn grad(i: usize) -> Tensor {
    let n = 2 * CLASSES as usize;
    let data = uniform(&format!("grad.{i}"), n);
    Tensor::new(
        vec![2, CLASSES as usize],
        data.into_iter().map(|v| v as f32 * 0.5).collect(),
    )
    .unwrap()
}

/// One training step on micro-batch `i`, applying the update when `apply`.
fn step(model: &mut ResNet<18>, i: usize, apply: bool) {
    model.forward(images(i).view()).unwrap();
    let report = model
        .backward_step(
            grad(i).view(),
            StepParams {
                lr: 0.1,
                apply_update: apply,
            },
        )
        .unwrap();
    assert_eq!(report.applied, apply);
}

/// A step without a batch, as a rank sitting a window out takes it: a zero-row gradient and no
/// forward pass.
fn idle_step(model: &mut ResNet<18>) -> Result<StepReport, PluginError> {
    let empty = Tensor::new(vec![0, CLASSES as usize], Vec::new())?;
    let params = StepParams {
        lr: 0.1,
        apply_update: true,
    };
    model.backward_step(empty.view(), params)
}

/// The trainable weights (normalization statistics differ per rank, as in PyTorch's DDP).
fn trainable(model: &ResNet<18>) -> Vec<(String, Vec<f32>)> {
    model
        .named_weights(WeightSet::Raw)
        .unwrap()
        .into_iter()
        .filter(|w| !w.name.contains("running_") && !w.name.ends_with("num_batches_tracked"))
        .map(|w| (w.name.into_string(), w.tensor.data.into_vec()))
        .collect()
}

/// Trains two ranks in two threads, rank `r` taking micro-batch `2 * window + r` of each
/// window, or sitting a window out when `batches` has no such micro-batch.
fn two_ranks(windows: usize, batches: usize) -> Vec<Vec<(String, Vec<f32>)>> {
    let job = Arc::new(Threads {
        slots: Mutex::new(vec![Vec::new(); 2]),
        barrier: Barrier::new(2),
    });
    let handles: Vec<_> = (0..2u32)
        .map(|rank| {
            let job = Arc::clone(&job);
            std::thread::spawn(move || {
                let mut model = model();
                let collective = AbiCollective_TO::from_value(ThreadRank { job, rank }, TD_Opaque);
                model.distribute(collective).unwrap();
                for window in 0..windows {
                    let i = 2 * window + rank as usize;
                    if i < batches {
                        step(&mut model, i, true);
                    } else {
                        assert!(idle_step(&mut model).unwrap().applied);
                    }
                }
                trainable(&model)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// One backbone accumulating windows of two micro-batches (the last one may hold one).
fn one_process(batches: usize) -> Vec<(String, Vec<f32>)> {
    let mut model = model();
    for i in 0..batches {
        step(&mut model, i, i % 2 == 1 || i + 1 == batches);
    }
    trainable(&model)
}

#[test]
fn two_ranks_train_exactly_as_one_process_accumulating_two_micro_batches() {
    let ranks = two_ranks(2, 4);
    let single = one_process(4);
    assert_eq!(ranks[0], ranks[1], "the ranks' weights agree");
    assert_eq!(ranks[0], single, "two ranks equal accumulate: 2");
}

#[test]
fn a_rank_without_a_batch_contributes_nothing_to_the_step() {
    let ranks = two_ranks(2, 3);
    let single = one_process(3);
    assert_eq!(ranks[0], ranks[1], "the ranks' weights agree");
    assert_eq!(ranks[0], single, "the idle rank adds nothing");
}

#[test]
fn a_backbone_without_a_collective_refuses_a_zero_row_gradient_without_a_forward_pass() {
    let err = idle_step(&mut model()).unwrap_err();
    assert!(
        err.to_string().contains("without a training forward pass"),
        "{err}"
    );
}
