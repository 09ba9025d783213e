//! `clshost bench train`: training and evaluation speed of a backbone on a device.
//!
//! Creates the backbone plugin's component on the device (SGD with momentum 0.9 and weight decay
//! 1e-4, as torchvision's reference recipe), feeds it one synthetic batch over and over (so data
//! loading is not measured: `clshost bench data` does that), and times `--steps` training steps
//! (forward, the loss plugin, backward and optimizer update) after `--warmup` untimed ones, then
//! as many evaluation forwards. `--freeze` times a fine-tuning step with those parameters frozen
//! (`parameters` then counts the trainable ones). `scripts/bench/train_torch.py` runs the same steps in PyTorch and
//! prints the same JSON fields.
//!
//! `--logger NAME[=PARAMS]` (repeatable) measures what the loggers cost a step: after the timed
//! steps, four more blocks of `--steps` steps run without, with, with and without the loggers
//! (the ABBA order cancels a linear drift of the machine's speed). With them on, every step
//! gives its scalars to the loggers (a `log_interval` of 1, the most a recipe can log) and each
//! block ends with an epoch event that carries a confusion matrix of `--classes` classes (far more
//! epochs than a real run has), so the figure is an upper bound.
//!
//! Under an MPI launcher (`mpirun -np 2 clshost bench train ...`, a build with the `mpi`
//! feature) every rank trains its own copy on its own batch and the gradients are summed across
//! ranks before each update, as in a data-parallel run: the throughput counts every rank's
//! images, `allreduce_ms_per_step` is the time rank 0 spends in the all-reduce, and only rank 0
//! prints.
//!
//! Devices run asynchronously: a forward returns once its logits are read back, which also waits
//! for the previous step's backward. The per-phase times are therefore indicative; the throughput
//! is exact, because the timed span ends with a synchronizing read after the last update.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use clshost_plugin_api::{
    BackboneContext, LossContext, MetricMatrix, MetricReport, OptimizerKind, OptimizerSpec,
    StepParams, Tensor, TuneSpec, WeightSet,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::assemble::components::from_spec;
use crate::distributed::World;
use crate::output;
use crate::registry::{Backbone, Kind, Loss, Registry, SearchPath};
use crate::report::history::Row;
use crate::report::loggers;
use crate::report::pipeline::{EndEvent, EpochEvent, Event, Reporter, StartEvent};

/// Arguments of `clshost bench train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// The backbone component.
    #[arg(long, default_value = "resnet50")]
    pub model: String,
    /// The backbone's params, as RON (`--params "(small_input: true)"`).
    #[arg(long, default_value = "()")]
    pub params: String,
    /// The device: `cpu`, `wgpu[:N]`, `cuda[:N]`, `libtorch:cpu` or `libtorch:cuda[:N]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The precision to train in, as the recipe's `trainer.precision`: `fp32`, or `bf16` (mixed
    /// precision; the LibTorch backend in the first-party plugins).
    #[arg(long, value_parser = ["fp32", "bf16"], default_value = "fp32")]
    pub precision: String,
    /// Side of the square input images, in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Number of classes of the head.
    #[arg(long, default_value_t = 1000)]
    pub classes: u32,
    /// Untimed steps first (kernel compilation, autotuning, allocator warm-up).
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Timed training steps, then as many timed evaluation forwards.
    #[arg(long, default_value_t = 10)]
    pub steps: u32,
    /// The loss component.
    #[arg(long, default_value = "cross_entropy")]
    pub loss: String,
    /// Seed of the weights and the synthetic batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Freeze the parameters matching these name patterns before timing (repeatable, in order,
    /// `!` to keep some trainable), as the recipe's `model.freeze`: `--freeze '*' --freeze
    /// '!fc.*'` times a step that trains only the head.
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    pub freeze: Vec<String>,

    /// Also measure what these loggers cost a step (repeatable): `NAME` or `NAME=PARAMS`, as
    /// a recipe's `loggers` (`--logger tensorboard --logger 'mlflow=(tracking_uri: "...")'`).
    #[arg(long, value_name = "NAME[=PARAMS]")]
    pub logger: Vec<String>,
}

/// The result of `clshost bench train`; the field names are shared with
/// `scripts/bench/train_torch.py`.
#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    implementation: &'static str,
    model: String,
    params: String,
    device: String,
    device_name: String,
    /// `fp32` or `bf16`.
    precision: String,
    parameters: u64,
    size: usize,
    batch: usize,
    classes: u32,
    warmup: u32,
    steps: u32,
    train_images_per_second: f64,
    train_ms_per_step: f64,
    forward_ms: f64,
    loss_ms: f64,
    backward_ms: f64,
    /// One call through the ABI that does almost no work (the loss on a single row, timed
    /// over many calls): an upper bound of what crossing the boundary adds to a call.
    abi_call_us: f64,
    /// The host's share of a step: `loss_ms` (everything the host does between the backbone's
    /// calls) plus the crossing of the backbone's two calls, in percent of the step.
    host_abi_percent: f64,
    eval_images_per_second: f64,
    eval_ms_per_batch: f64,
    first_loss: f64,
    last_loss: f64,
    /// The ranks training together (1 outside an MPI launcher).
    ranks: u32,
    /// Rank 0's time in the gradient all-reduce, per timed step (0 with one rank).
    allreduce_ms_per_step: f64,
    /// With `--logger`: what the loggers cost a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    loggers: Option<LoggerCost>,
}

/// What `--logger` measured.
#[derive(Debug, Serialize)]
struct LoggerCost {
    /// The loggers, as given.
    names: Vec<String>,
    /// A step without loggers, over the two blocks without.
    ms_per_step_without: f64,
    /// A step with the loggers on, over the two blocks with.
    ms_per_step_with: f64,
    /// How much longer a step is with the loggers on, in percent (noise can make it negative).
    overhead_percent: f64,
    /// The training thread's own time handing one step's events to the loggers.
    emit_us_per_step: f64,
}

/// Time spent in each phase of the timed steps.
#[derive(Debug, Default)]
struct Phases {
    forward: Duration,
    loss: Duration,
    backward: Duration,
}

/// The backbone, the loss and the synthetic batch being trained on.
struct Bench {
    model: Backbone,
    loss: Loss,
    images: Tensor,
    targets: Tensor,
    grad: Tensor,
}

impl Bench {
    /// One training step; returns the loss and adds each phase's time to `phases`.
    fn step(&mut self, phases: &mut Phases) -> Result<f64> {
        let t0 = Instant::now();
        let logits = self.model.forward(self.images.view())?;
        let t1 = Instant::now();
        let loss = self
            .loss
            .compute(logits.view(), self.targets.view(), self.grad.view_mut())?;
        if !loss.is_finite() {
            bail!("the loss is {loss}: the backbone diverged on the synthetic batch");
        }
        let t2 = Instant::now();
        self.model.backward_step(
            self.grad.view(),
            StepParams {
                lr: 0.01,
                apply_update: true,
            },
        )?;
        phases.forward += t1 - t0;
        phases.loss += t2 - t1;
        phases.backward += t2.elapsed();
        Ok(loss)
    }

    /// The mean time, in microseconds, of a call through the ABI that does almost no work: the
    /// loss of the batch's first row.
    fn abi_round_trip_us(&self) -> Result<f64> {
        const CALLS: u32 = 1000;
        let classes = self.targets.shape[1];
        let row = |t: &Tensor| Tensor::new(vec![1, classes], t.data[..classes].to_vec());
        let (logits, targets) = (row(&self.grad)?, row(&self.targets)?);
        let mut grad = Tensor::zeros(vec![1, classes]);
        let start = Instant::now();
        for _ in 0..CALLS {
            self.loss
                .compute(logits.view(), targets.view(), grad.view_mut())?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
    }

    /// A tiny evaluation forward whose read-back waits for everything queued before it.
    fn sync(&mut self) -> Result<()> {
        let one = self.images.data[..self.images.data.len() / self.images.shape[0]].to_vec();
        let mut shape = self.images.shape.to_vec();
        shape[0] = 1;
        self.model
            .eval_forward(Tensor::new(shape, one)?.view(), WeightSet::Raw)?;
        Ok(())
    }
}

/// Runs `clshost bench train`.
pub fn run(search: &SearchPath, args: &BenchTrainArgs) -> Result<()> {
    if args.batch == 0 || args.size == 0 || args.classes == 0 || args.steps == 0 {
        bail!("--batch, --size, --classes and --steps must be positive");
    }
    let world = World::join()?;
    if let Some(advice) = world.oversubscription().filter(|_| world.is_leader()) {
        tracing::warn!("{advice}");
    }
    if world.is_distributed() && !args.logger.is_empty() {
        bail!("--logger measures one process: run it without an MPI launcher");
    }
    let registry = Registry::load(search)?;
    let context = BackboneContext {
        num_classes: args.classes,
        device: args.device.as_str().into(),
        optimizer: sgd(),
        seed: args.seed,
    };
    let mut model = registry
        .new_backbone(&args.model, &args.params, &context)
        .with_context(|| format!("cannot create `{}` on `{}`", args.model, args.device))?;
    if !args.freeze.is_empty() {
        let spec = TuneSpec {
            freeze: args.freeze.iter().map(|p| p.as_str().into()).collect(),
            ..TuneSpec::default()
        };
        model.tune(&spec).context("--freeze")?;
    }
    model
        .set_precision(&args.precision)
        .context("--precision")?;
    if world.is_distributed() {
        model.distribute(world.collective())?;
    }
    let summary = model.summary()?;
    let loss = registry.new_loss(
        &args.loss,
        "()",
        &LossContext {
            num_classes: args.classes,
        },
    )?;
    let (images, targets) = synthetic_batch(args)?;
    let classes = args.classes as usize;
    let mut bench = Bench {
        model,
        loss,
        images,
        targets,
        grad: Tensor::zeros(vec![args.batch, classes]),
    };

    tracing::info!("{} warm-up steps on {}", args.warmup, summary.device);
    let mut ignored = Phases::default();
    let mut first_loss = f64::NAN;
    for _ in 0..args.warmup {
        first_loss = bench.step(&mut ignored)?;
    }
    bench.sync()?;
    let mut phases = Phases::default();
    let mut last_loss = f64::NAN;
    let reducing = world.reducing();
    let start = Instant::now();
    for _ in 0..args.steps {
        last_loss = bench.step(&mut phases)?;
    }
    bench.sync()?;
    let train = start.elapsed().as_secs_f64();
    let reducing = world.reducing() - reducing;
    if args.warmup == 0 {
        first_loss = last_loss;
    }

    bench
        .model
        .eval_forward(bench.images.view(), WeightSet::Raw)?;
    let start = Instant::now();
    for _ in 0..args.steps {
        bench
            .model
            .eval_forward(bench.images.view(), WeightSet::Raw)?;
    }
    let eval = start.elapsed().as_secs_f64();

    let abi_call_us = bench.abi_round_trip_us()?;
    let loggers = if args.logger.is_empty() {
        None
    } else {
        Some(logger_cost(&mut bench, &registry, args)?)
    };

    if !world.is_leader() {
        return Ok(());
    }
    let steps = f64::from(args.steps);
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps;
    let train_ms_per_step = train * 1e3 / steps;
    let ranks = world.size();
    let report = Report {
        benchmark: "train",
        implementation: "clshost",
        model: args.model.clone(),
        params: args.params.clone(),
        device: args.device.clone(),
        device_name: summary.device.to_string(),
        precision: args.precision.clone(),
        parameters: summary.num_parameters,
        size: args.size,
        batch: args.batch,
        classes: args.classes,
        warmup: args.warmup,
        steps: args.steps,
        train_images_per_second: f64::from(ranks) * steps * args.batch as f64 / train,
        train_ms_per_step,
        forward_ms: ms(phases.forward),
        loss_ms: ms(phases.loss),
        backward_ms: ms(phases.backward),
        abi_call_us,
        host_abi_percent: 100.0 * (ms(phases.loss) + 2.0 * abi_call_us / 1e3) / train_ms_per_step,
        eval_images_per_second: steps * args.batch as f64 / eval,
        eval_ms_per_batch: eval * 1e3 / steps,
        first_loss,
        last_loss,
        ranks,
        allreduce_ms_per_step: ms(reducing),
        loggers,
    };
    Ok(output::print_report(args.json, &report, text)?)
}

/// Times blocks of steps without, with, with and without the `--logger` loggers, which log
/// into a temporary run directory; see the module's documentation.
fn logger_cost(
    bench: &mut Bench,
    registry: &Registry,
    args: &BenchTrainArgs,
) -> Result<LoggerCost> {
    let dir = tempfile::tempdir().context("cannot create a temporary run directory")?;
    let components: Vec<_> = args.logger.iter().map(|s| from_spec(s)).collect();
    for c in &components {
        registry
            .validate(Kind::Logger, &c.name, &c.params)
            .with_context(|| format!("--logger {}", c.name))?;
    }
    let mut tracked = loggers::create(registry, &components, dir.path(), false);
    if tracked.len() < components.len() {
        bail!("a logger could not be created (see the warning above)");
    }
    let classes: Vec<String> = (0..args.classes).map(|k| format!("class_{k}")).collect();
    let mut emit = |event: &Event<'_>| -> Result<()> {
        for logger in &mut tracked {
            logger.report(event)?;
        }
        Ok(())
    };
    let params = [
        ("model.name".to_string(), format!("{:?}", args.model)),
        ("data.batch_size".to_string(), args.batch.to_string()),
    ];
    emit(&Event::Start(StartEvent {
        name: "bench",
        run_dir: dir.path(),
        recipe: "()",
        params: &params,
        environment: &[],
        classes: &classes,
        resumed: false,
        next_step: 1,
        epochs: 2,
    }))?;
    let n = args.classes as usize;
    let confusion = MetricReport {
        matrices: vec![MetricMatrix {
            name: "confusion_matrix".into(),
            rows: args.classes,
            cols: args.classes,
            values: (0..n * n)
                .map(|i| (i % (n + 1) == 0) as u8 as f64)
                .collect(),
        }]
        .into(),
        ..MetricReport::default()
    };
    let mut ignored = Phases::default();
    let (mut with, mut without, mut handing) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut step = 0;
    for (block, on) in [false, true, true, false].into_iter().enumerate() {
        bench.sync()?;
        let start = Instant::now();
        let mut loss_sum = 0.0;
        for k in 1..=args.steps {
            let loss = bench.step(&mut ignored)?;
            loss_sum += loss;
            if on {
                step += 1;
                let images_per_s = f64::from(k) * args.batch as f64 / start.elapsed().as_secs_f64();
                let scalars = [
                    ("train/loss".to_string(), loss),
                    ("train/lr".to_string(), 0.01),
                    ("train/images_per_s".to_string(), images_per_s),
                ];
                let t = Instant::now();
                emit(&Event::Step {
                    step,
                    scalars: &scalars,
                })?;
                handing += t.elapsed();
            }
        }
        if on {
            let t = Instant::now();
            let row = Row {
                epoch: block as u32,
                train_loss: loss_sum / f64::from(args.steps),
                lr: 0.01,
                values: vec![("top1".into(), Some(1.0 / f64::from(args.classes)))],
                seconds: start.elapsed().as_secs_f64(),
                images_per_s: 0.0,
            };
            emit(&Event::Epoch(EpochEvent {
                row: &row,
                history: std::slice::from_ref(&row),
                best: None,
                improved: false,
                global_step: step,
                reports: std::slice::from_ref(&confusion),
                ema_reports: &[],
            }))?;
            handing += t.elapsed();
        }
        bench.sync()?;
        *if on { &mut with } else { &mut without } += start.elapsed();
    }
    emit(&Event::End(EndEvent {
        status: "completed",
        message: "",
        epochs: 2,
        step,
        summary: &[],
    }))?;
    let per_step = |d: Duration| d.as_secs_f64() * 1e3 / (2.0 * f64::from(args.steps));
    let (ms_with, ms_without) = (per_step(with), per_step(without));
    Ok(LoggerCost {
        names: components.into_iter().map(|c| c.name).collect(),
        ms_per_step_without: ms_without,
        ms_per_step_with: ms_with,
        overhead_percent: 100.0 * (ms_with / ms_without - 1.0),
        emit_us_per_step: per_step(handing) * 1e3,
    })
}

/// SGD as torchvision's classification reference trains ResNets.
fn sgd() -> OptimizerSpec {
    OptimizerSpec {
        kind: OptimizerKind::Sgd,
        momentum: 0.9,
        nesterov: false,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-4,
        norm_bias_weight_decay: 1e-4,
        clip_grad_norm: None.into(),
        ema: None.into(),
    }
}

/// Uniform noise images in [-1, 1) and one-hot targets cycling through the classes.
fn synthetic_batch(args: &BenchTrainArgs) -> Result<(Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let n = args.batch * 3 * args.size * args.size;
    let pixels = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let images = Tensor::new(vec![args.batch, 3, args.size, args.size], pixels)?;
    let classes = args.classes as usize;
    let mut targets = Tensor::zeros(vec![args.batch, classes]);
    for i in 0..args.batch {
        targets.data[i * classes + i % classes] = 1.0;
    }
    Ok((images, targets))
}

fn text(r: &Report) -> String {
    let loggers = r.loggers.as_ref().map_or(String::new(), |l| {
        format!(
            "loggers ({}): {:.1} ms/step with, {:.1} ms/step without: {:+.2}% ({:.1} us per \
             step on the training thread)\n",
            l.names.join(", "),
            l.ms_per_step_with,
            l.ms_per_step_without,
            l.overhead_percent,
            l.emit_us_per_step
        )
    });
    let ranks = match r.ranks {
        1 => String::new(),
        n => format!(
            "{n} ranks, batch {} each: all-reduce {:.1} ms/step ({:.1}% of the step)\n",
            r.batch,
            r.allreduce_ms_per_step,
            100.0 * r.allreduce_ms_per_step / r.train_ms_per_step
        ),
    };
    format!(
        "{} ({} parameters) on {} ({}, {}), {}x{}, batch {}, {} classes\n{}\
         train: {:.1} images/s, {:.1} ms/step (forward {:.1} ms, loss {:.1} ms, backward + update \
         {:.1} ms) over {} steps after {} warm-up; loss {:.4} -> {:.4}\n\
         host + ABI: {:.2}% of the step (loss and host {:.2} ms, {:.1} us per ABI call)\n\
         eval:  {:.1} images/s, {:.1} ms/batch\n{}",
        r.model,
        r.parameters,
        r.device,
        r.device_name,
        r.precision,
        r.size,
        r.size,
        r.batch,
        r.classes,
        ranks,
        r.train_images_per_second,
        r.train_ms_per_step,
        r.forward_ms,
        r.loss_ms,
        r.backward_ms,
        r.steps,
        r.warmup,
        r.first_loss,
        r.last_loss,
        r.host_abi_percent,
        r.loss_ms,
        r.abi_call_us,
        r.eval_images_per_second,
        r.eval_ms_per_batch,
        loggers
    )
}
