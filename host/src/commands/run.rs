//! `clshost run RECIPE [--set PATH=VALUE]... [--init-from CKPT] [--output DIR]` and
//! `clshost run --resume RUN_DIR`: train a recipe end to end.
//!
//! The recipe is loaded and validated exactly as `clshost check` does; any problem fails the
//! run before data is read or a model is built. Then the loaders, the backbone and every other
//! component are built, the run directory is created (locked, and probed for writability; a
//! resumed run's is locked first), and the [`Trainer`] runs the epochs. At the end the best weights are loaded back, evaluated for the
//! per-class table, exported and verified, and `summary.json` is written.
//!
//! Exit status: 0 when the run finished (all epochs, early stopping or time limit), 130 when it
//! was interrupted (Ctrl-C, SIGTERM, `--stop-after-epoch`) after saving `last`, 1 on any error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use clshost_plugin_api::{ABI_VERSION_STRING, BackboneSummary, WeightSet};

use crate::assemble::{self, parts};
use crate::distributed::{DistributedError, World};
use crate::exit::Exit;
use crate::export;
use crate::output;
use crate::recipe::schema::Precision;
use crate::recipe::{Recipe, Resolved};
use crate::registry::{Registry, SearchPath};
use crate::report::pipeline::{EndEvent, Event, FileEvent, FileKind, StartEvent};
use crate::report::summary::Summary;
use crate::report::{console, loggers, provenance};
use crate::rundir::{self, RunDir};
use crate::train::{
    BestWeights, Checkpoint, Control, Ending, Parts, StopFlag, Trainer, signal, tuning,
};

/// Arguments of `clshost run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The recipe file.
    #[arg(required_unless_present = "resume")]
    pub recipe: Option<PathBuf>,

    /// Override a recipe field with a RON value, after `base:` composition (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,

    /// Continue the run in RUN_DIR from its `checkpoints/last.ckpt`, with its `recipe.ron`.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["recipe", "overrides", "init_from", "output"])]
    pub resume: Option<PathBuf>,

    /// Start from the weights (not the optimizer state) of a clshost checkpoint or a state
    /// dict: any weight source, as `model.weights` takes (a path, a URL,
    /// `torchvision:<arch>.<TAG>`), loaded after `model.weights`.
    #[arg(long, value_name = "SOURCE")]
    pub init_from: Option<String>,

    /// The runs directory, instead of the recipe's `output`.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Stop as if interrupted once epoch N (from 1) is saved: writes `last` and exits 130.
    /// For tests and scripted pauses; `--resume` continues exactly.
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_epoch: Option<u32>,
}

/// Gives the backbone the recipe's fine-tuning controls for `epoch`, and says what they
/// selected when `say`.
fn tune(parts: &mut Parts, epoch: u32, say: bool) -> Result<()> {
    if let Some(tuning) = parts.tuning.as_mut()
        && let Some(report) = tuning.apply(&mut parts.backbone, epoch)?
        && say
    {
        output::print(&format!("fine-tuning: {}\n", tuning::describe(&report)))?;
    }
    Ok(())
}

/// Runs `clshost run`, as a job of one or as one rank of a data-parallel job (see
/// [`crate::distributed`]). In a job, an error the other ranks cannot know about ends the whole
/// job at once after its message, so that no rank waits forever on the failed one.
pub fn run(search: &SearchPath, args: &RunArgs, quiet: bool) -> Result<()> {
    let world = Rc::new(World::join()?);
    let result = run_ranked(search, args, quiet, &world);
    match result {
        Err(e) if world.is_distributed() && !agreed(&e) => {
            eprintln!("error: rank {}: {e:#}", world.rank());
            world.abort(1)
        }
        Err(e) if world.is_distributed() => Err(e.context(format!("rank {}", world.rank()))),
        other => other,
    }
}

/// Whether every rank of a job stops with this error at the same point (an interrupt, a
/// divergence, another rank's failure, a start from different inputs), so each can end on its
/// own.
fn agreed(e: &anyhow::Error) -> bool {
    use crate::train::TrainError;
    if e.downcast_ref::<Exit>()
        .is_some_and(|exit| exit.code == 130)
        || e.downcast_ref::<DistributedError>().is_some()
    {
        return true;
    }
    matches!(
        e.downcast_ref::<TrainError>(),
        Some(
            TrainError::Rank { .. }
                | TrainError::NonFinite { .. }
                | TrainError::NonFiniteLogits { .. }
        )
    )
}

/// `clshost run` on rank `world.rank()`: rank 0 does everything a single process does, the
/// other ranks train their share and write nothing.
fn run_ranked(search: &SearchPath, args: &RunArgs, quiet: bool, world: &Rc<World>) -> Result<()> {
    let wall = Instant::now();
    let leader = world.is_leader();
    let quiet = quiet || !leader;
    if let Some(advice) = world.oversubscription().filter(|_| leader) {
        tracing::warn!("{advice}");
    }
    let (recipe_path, overrides) = match (&args.resume, &args.recipe) {
        (Some(dir), _) => (dir.join("recipe.ron"), Vec::new()),
        (None, Some(path)) => (path.clone(), args.overrides.clone()),
        (None, None) => bail!("give a recipe, or --resume RUN_DIR"),
    };
    let (mut resolved, registry) = assemble::load_valid(search, &recipe_path, &overrides)?;
    assemble::anchor_paths(&mut resolved)?;
    let recipe = resolved.recipe.clone();
    // A resumed run's directory is locked before anything else; a new run's is created only
    // once its data and components are built, so a refused run leaves no empty directory.
    let resumed = match &args.resume {
        Some(dir) if leader => Some(RunDir::open(dir)?),
        _ => None,
    };
    let mut run_parts = parts::run_parts(&recipe, &registry)?;
    if world.is_distributed() {
        run_parts.backbone.distribute(world.collective())?;
    }
    let resumed_state = match &args.resume {
        Some(dir) => {
            let ckpt = resume_checkpoint(world, resumed.as_ref(), dir)?;
            if ckpt.host.world_size != world.size() {
                return Err(DistributedError::WorldSize {
                    run: dir.display().to_string(),
                    trained: ckpt.host.world_size,
                    job: world.size(),
                }
                .into());
            }
            run_parts.backbone.load_state(&ckpt.backbone)?;
            tune(&mut run_parts, ckpt.host.epoch, leader)?;
            Some(ckpt.host)
        }
        None => {
            let sources = [
                (recipe.model.weights.as_deref(), "model.weights"),
                (args.init_from.as_deref(), "--init-from"),
            ];
            let progress = !quiet && std::io::stderr().is_terminal();
            parts::load_initial_weights(&registry, &recipe, &mut run_parts, &sources, progress)?;
            tune(&mut run_parts, 0, leader)?;
            None
        }
    };
    let used = provenance::plugins_used(&recipe, &registry)?;
    check_same_start(world, &resolved, &used, &run_parts)?;
    let (run, state) = match resumed_state {
        Some(state) => (resumed, state),
        None => {
            let run = if leader {
                let run = RunDir::create(
                    args.output.as_deref().unwrap_or(&recipe.output),
                    &recipe.name,
                )?;
                rundir::atomic_write(&run.file("recipe.ron"), resolved.to_ron().as_bytes())?;
                Some(run)
            } else {
                None
            };
            let mut state = parts::fresh_state(&recipe, run_parts.direction, &run_parts.classes);
            state.world_size = world.size();
            (run, state)
        }
    };
    if let Some(run) = &run {
        rundir::atomic_write(
            &run.file("plugins.json"),
            (serde_json::to_string_pretty(&used)? + "\n").as_bytes(),
        )?;
    }
    let stop = StopFlag::new();
    signal::on_interrupt(&stop)?;
    let summary = run_parts.backbone.summary()?;
    if let Some(run) = &run {
        output::print(&format!(
            "{} {}: {} ({} parameters) on {}{}{}, {} train / {} val images in {} classes\nrun directory: {}\n",
            if args.resume.is_some() {
                "resuming"
            } else {
                "training"
            },
            recipe.name,
            recipe.model.name,
            summary.num_parameters,
            summary.device,
            world
                .describe()
                .map_or(String::new(), |job| format!(" x {job}")),
            match recipe.trainer.precision {
                Precision::Fp32 => String::new(),
                mixed => format!(" in {} mixed precision", mixed.name()),
            },
            run_parts.train.len(),
            run_parts.val.len(),
            run_parts.classes.len(),
            run.path().display()
        ))?;
    }
    let control = Control {
        stop,
        stop_after_epoch: args.stop_after_epoch,
        quiet,
        started: wall,
    };
    let fresh = args.resume.is_none();
    let loggers = match &run {
        Some(run) => loggers::create(&registry, &recipe.loggers, run.path(), !fresh),
        None => Vec::new(),
    };
    let environment = environment(&summary, &used, world);
    let classes = run_parts.classes.clone();
    let mut trainer = Trainer::new(run_parts, run, Rc::clone(world), state, control, loggers);
    if !leader {
        return follow(&mut trainer);
    }
    let run_dir = trainer.run_dir()?.path().to_path_buf();
    trainer.report(&Event::Start(StartEvent {
        name: &recipe.name,
        run_dir: &run_dir,
        recipe: &resolved.to_ron(),
        params: &resolved.params(),
        environment: &environment,
        classes: &classes,
        resumed: !fresh,
        next_step: trainer.state.global_step + 1,
        epochs: recipe.trainer.epochs,
    }))?;
    let result = train_to_end(&mut trainer, fresh, &recipe, &registry, &resolved);
    let (status, message) = match &result {
        Ok(ending) => (ending.as_str(), String::new()),
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(exit) if exit.code == 130 => (Ending::Interrupted.as_str(), exit.message.clone()),
            _ => ("failed", format!("{e:#}")),
        },
    };
    end(&mut trainer, status, &message);
    result.map(drop)
}

/// The checkpoint a resumed run continues from: rank 0 reads the file `checkpoints/last.ckpt`
/// of its locked `run` and sends its bytes to the other ranks, which need no access to it; every
/// rank checks and decodes them.
fn resume_checkpoint(world: &World, run: Option<&RunDir>, dir: &Path) -> Result<Checkpoint> {
    let path = dir.join("checkpoints/last.ckpt");
    let mut bytes = match run {
        Some(_) => Checkpoint::read(&path)?,
        None => Vec::new(),
    };
    world.broadcast_bytes(&mut bytes);
    Ok(Checkpoint::from_bytes(&path, &bytes)?)
}

/// Checks that every rank runs the same recipe, plugins, dataset and initial weights.
fn check_same_start(
    world: &World,
    resolved: &Resolved,
    used: &[provenance::PluginUse],
    parts: &Parts,
) -> Result<()> {
    if !world.is_distributed() {
        return Ok(());
    }
    let plugins: String = used
        .iter()
        .map(|p| format!("{} {} {}\n", p.name, p.version, p.sha256))
        .collect();
    let dataset = format!(
        "{:?} {} {}",
        parts.classes,
        parts.train.len(),
        parts.val.len()
    );
    let mut weights = Vec::new();
    for w in parts.backbone.named_weights(WeightSet::Raw)? {
        weights.extend_from_slice(w.name.as_bytes());
        weights.extend(w.tensor.to_le_bytes());
    }
    Ok(world.check_same(&[
        ("recipe", resolved.to_ron().as_bytes()),
        ("set of plugins", plugins.as_bytes()),
        ("dataset", dataset.as_bytes()),
        ("initial weights", &weights),
    ])?)
}

/// A rank other than 0: trains its share, and exits 130 with the others when interrupted.
fn follow(trainer: &mut Trainer) -> Result<()> {
    match trainer.train()? {
        Ending::Interrupted => Err(Exit {
            code: 130,
            message: format!("rank {}: stopped with rank 0", trainer.world().rank()),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Where a run runs, for loggers: clshost and its ABI, the OS, the backbone and its device, the
/// plugins used, and in a data-parallel run the ranks and the MPI library.
fn environment(
    summary: &BackboneSummary,
    used: &[provenance::PluginUse],
    world: &World,
) -> Vec<(String, String)> {
    let plugins: Vec<String> = used
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    [
        ("clshost_version", env!("CARGO_PKG_VERSION").to_string()),
        ("plugin_abi", ABI_VERSION_STRING.to_string()),
        (
            "os",
            format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        ),
        ("device", summary.device.to_string()),
        ("parameters", summary.num_parameters.to_string()),
        ("plugins", plugins.join(", ")),
    ]
    .into_iter()
    .chain(world.describe().map(|job| ("ranks", job)))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Trains, and finishes the run when training ended without an interrupt; the ending, or the
/// error (an [`Exit`] with code 130 for an interrupt).
fn train_to_end(
    trainer: &mut Trainer,
    fresh: bool,
    recipe: &Recipe,
    registry: &Registry,
    resolved: &Resolved,
) -> Result<Ending> {
    let recipe_file = trainer.run_dir()?.file("recipe.ron");
    if fresh {
        trainer.report(&Event::File(FileEvent {
            kind: FileKind::Recipe,
            path: &recipe_file,
            epoch: None,
        }))?;
        trainer.save_last()?;
    }
    let ending = trainer.train()?;
    if ending == Ending::Interrupted {
        let s = &trainer.state;
        let at = match s.batches_done {
            0 => format!("after epoch {}", s.epoch),
            n => format!("in epoch {} after step {n}", s.epoch + 1),
        };
        return Err(Exit {
            code: 130,
            message: format!(
                "stopped {at}; `last` is saved\nresume with: {}clshost run --resume {}",
                match trainer.world().size() {
                    1 => String::new(),
                    n => format!("mpirun -np {n} "),
                },
                trainer.run_dir()?.path().display()
            ),
        }
        .into());
    }
    finish(trainer, recipe, registry, resolved, ending)?;
    Ok(ending)
}

/// The end of an invocation, for the reporters: the plots as files, then how it ended. A
/// reporter's failure here is only a warning: the run's outcome is already decided.
fn end(trainer: &mut Trainer, status: &str, message: &str) {
    let plots = trainer.run_dir().map(|run| run.file("plots"));
    let mut files: Vec<PathBuf> = plots
        .ok()
        .and_then(|plots| std::fs::read_dir(plots).ok())
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let wall_seconds = trainer.wall_seconds();
    let s = &trainer.state;
    let mut summary = vec![
        ("wall_seconds".to_string(), wall_seconds),
        ("images_per_s".to_string(), s.images_per_s()),
    ];
    if let (Some(value), Some(epoch)) = (s.monitor.best, s.monitor.best_epoch) {
        summary.push(("best_value".to_string(), value));
        summary.push(("best_epoch".to_string(), f64::from(epoch)));
    }
    let (epochs, step) = (s.epoch, s.global_step);
    let events = files
        .iter()
        .map(|path| {
            Event::File(FileEvent {
                kind: FileKind::Plot,
                path,
                epoch: None,
            })
        })
        .chain(std::iter::once(Event::End(EndEvent {
            status,
            message,
            epochs,
            step,
            summary: &summary,
        })));
    for event in events {
        if let Err(e) = trainer.report(&event) {
            tracing::warn!("{e}");
        }
    }
}

/// The end of a finished run: best weights back, per-class table, exports, summary.
fn finish(
    trainer: &mut Trainer,
    recipe: &Recipe,
    registry: &Registry,
    resolved: &Resolved,
    ending: Ending,
) -> Result<()> {
    let best_path = trainer.run_dir()?.file("checkpoints/best.ckpt");
    let which = if best_path.is_file() {
        // The backbone already holds the best state when the last epoch was the best.
        if trainer.state.monitor.best_epoch != Some(trainer.state.epoch) {
            let best = Checkpoint::load(&best_path)?;
            trainer.backbone().load_state(&best.backbone)?;
        }
        trainer.state.best_weights
    } else {
        BestWeights::Raw
    };
    let weights = WeightSet::from(which);
    let eval = trainer.evaluate_alone()?;
    output::print(&format!(
        "\nper class ({} weights of epoch {}):\n{}",
        which.name(),
        trainer
            .state
            .monitor
            .best_epoch
            .map_or_else(|| "-".to_string(), |e| e.to_string()),
        console::class_table(&trainer.class_lines(&eval, which))
    ))?;
    let exports = export::export_run(trainer, registry, resolved, weights)?;
    for file in exports.iter().flat_map(|e| &e.files) {
        trainer.report(&Event::File(FileEvent {
            kind: FileKind::Export,
            path: file,
            epoch: None,
        }))?;
    }
    let wall_seconds = trainer.wall_seconds();
    let parts = trainer.parts();
    let summary = Summary {
        recipe: recipe.name.clone(),
        run_dir: trainer.run_dir()?.path().display().to_string(),
        ending: ending.as_str().into(),
        epochs: trainer.state.epoch,
        monitor: recipe.trainer.monitor.clone(),
        best_value: trainer.state.monitor.best,
        best_epoch: trainer.state.monitor.best_epoch,
        best_weights: which,
        wall_seconds,
        images_per_s: trainer.state.images_per_s(),
        skipped_files: parts.train.skipped().len() + parts.val.skipped().len(),
        exports,
    };
    rundir::atomic_write(
        &trainer.run_dir()?.file("summary.json"),
        (serde_json::to_string_pretty(&summary)? + "\n").as_bytes(),
    )?;
    output::print(&format!("\n{}", summary.text()))?;
    Ok(())
}
