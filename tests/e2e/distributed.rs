//! Data-parallel training under MPI: `mpirun -np 2 clshost run` against one process with
//! `accumulate: 2` (the same trainable weights and optimizer state, bit for bit, through an
//! interruption and `--resume`; with frozen BatchNorm statistics, the whole state, the same
//! accuracy and F1 and the validation loss to 1e-12), a rank killed mid-run, ranks started with different recipes, a resume with another
//! number of ranks, `doctor` and `bench train` on two ranks; and a build without MPI started as
//! a rank.
//!
//! All but the last are ignored unless run with `--ignored`, with `CLSHOST_TEST_MPIRUN` naming
//! Open MPI's `mpirun` and `CLSHOST_TEST_FEATURES=clshost/mpi` so that the clshost under test is
//! built with MPI; `.ci/run` does all three (after `scripts/setup-mpi.sh`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use clshost::train::Checkpoint;
use serde_json::Value;

use crate::support::{
    Clshost, TINY_BENCH_TRAIN, after_first_evaluation, clshost_binary, paused_tiny_run, stderr,
    stdout_ok, tiny_run_dir, tiny_tempdir,
};

/// `mpirun -np N` with what it needs here: running as root (CI containers), more ranks than
/// cores if need be, and one thread per rank.
fn mpirun(np: usize) -> Vec<String> {
    let mpirun = std::env::var("CLSHOST_TEST_MPIRUN")
        .expect("CLSHOST_TEST_MPIRUN names Open MPI's mpirun (scripts/setup-mpi.sh)");
    [
        mpirun.as_str(),
        "-np",
        &np.to_string(),
        "--allow-run-as-root",
        "--oversubscribe",
        "-x",
        "RAYON_NUM_THREADS=1",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `clshost ARGS...` in `dir` under `mpirun -np N`.
fn run_ranks(clshost: &Clshost, dir: &Path, np: usize, args: &[&str]) -> Output {
    let launcher = mpirun(np);
    let launcher: Vec<&str> = launcher.iter().map(String::as_str).collect();
    clshost
        .launched(&launcher, args)
        .current_dir(dir)
        .output()
        .expect("mpirun runs")
}

/// The only run directory under `dir/<output>/tiny`.
fn run_dir(dir: &Path, output: &str) -> std::path::PathBuf {
    let runs: Vec<_> = std::fs::read_dir(dir.join(output).join("tiny"))
        .expect("a runs folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "one run directory, written by rank 0: {runs:?}"
    );
    runs[0].clone()
}

/// The backbone state of a checkpoint: every tensor of the Burn kit's safetensors state by
/// name, as bits.
fn state(ckpt: &Path) -> BTreeMap<String, Vec<u32>> {
    let ckpt = Checkpoint::load(ckpt).expect("a loadable checkpoint");
    let tensors = safetensors::SafeTensors::deserialize(&ckpt.backbone).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let bits = view
                .data()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, bits)
        })
        .collect()
}

/// Whether a state tensor is a BatchNorm running statistic, which each rank keeps from its own
/// batches (as in PyTorch's DDP).
fn running_statistic(name: &str) -> bool {
    name.contains("running_") || name.ends_with("num_batches_tracked")
}

/// The rows of a run's `metrics.jsonl`.
fn rows(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Trains the tiny recipe (3 batches an epoch, so the second rank sits the last round of each
/// epoch out) for 2 epochs: once in one process with `accumulate: 2`, once on two ranks
/// interrupted after epoch 1 and resumed. Returns the two run directories.
fn single_and_two_ranks(clshost: &Clshost, dir: &Path, extra: &[&str]) -> [std::path::PathBuf; 2] {
    let mut single = vec!["run", "tiny.ron", "--output", "single"];
    single.extend(["--set", "trainer.epochs=2", "--set", "trainer.accumulate=2"]);
    single.extend(extra);
    // One thread, as each rank has: the CPU backend's sums may split by thread count.
    let out = clshost
        .command(&single)
        .current_dir(dir)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    stdout_ok(&out);
    let mut ranks = vec!["run", "tiny.ron", "--output", "ranks"];
    ranks.extend(["--set", "trainer.epochs=2", "--stop-after-epoch", "1"]);
    ranks.extend(extra);
    let out = run_ranks(clshost, dir, 2, &ranks);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" x 2 ranks ("), "{text}");
    let two = run_dir(dir, "ranks");
    let resume = ["run", "--resume", two.to_str().unwrap()];
    let out = run_ranks(clshost, dir, 2, &resume);
    assert!(out.status.success(), "{}", stderr(&out));
    [run_dir(dir, "single"), two]
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn two_ranks_train_as_one_process_accumulating_two_batches() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let [single, two] = single_and_two_ranks(&clshost, scratch.path(), &[]);
    let (a, b) = (
        state(&single.join("checkpoints/last.ckpt")),
        state(&two.join("checkpoints/last.ckpt")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let compared: Vec<&String> = a.keys().filter(|k| !running_statistic(k)).collect();
    assert!(
        compared.iter().any(|k| k.starts_with("optim.")),
        "{compared:?}"
    );
    for name in compared {
        assert!(a[name] == b[name], "{name} differs");
    }
    for (x, y) in rows(&single).iter().zip(rows(&two)) {
        let loss = |r: &Value| r["train_loss"].as_f64().unwrap();
        assert!(
            (loss(x) - loss(&y)).abs() <= 1e-12 * loss(x).abs(),
            "{x} / {y}"
        );
        assert_eq!(x["lr"], y["lr"]);
    }
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn with_frozen_normalization_statistics_two_ranks_end_with_one_process_state_and_metrics() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let frozen = ["--set", "model.freeze_bn_stats=true"];
    let [single, two] = single_and_two_ranks(&clshost, scratch.path(), &frozen);
    let (a, b) = (
        state(&single.join("checkpoints/last.ckpt")),
        state(&two.join("checkpoints/last.ckpt")),
    );
    assert!(a == b, "the whole backbone state is the same");
    // The counts behind accuracy and F1 are exact. The validation loss is equal to float
    // rounding: with the same weights, Burn's CPU backend has given logits a last bit apart in
    // another process (seen once in a busy CI run: 1.1264487937785999 and 1.1264487937786).
    let (x, y) = (rows(&single), rows(&two));
    assert_eq!(x.len(), 2);
    for (x, y) in x.iter().zip(&y) {
        for column in ["top1", "f1_macro"] {
            assert!(x[column].is_f64(), "{column}: {x}");
            assert_eq!(x[column], y[column], "{column}: {x} / {y}");
        }
        let loss = |r: &Value| r["val_loss"].as_f64().unwrap();
        assert!((loss(x) - loss(y)).abs() <= 1e-12 * loss(x), "{x} / {y}");
    }
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn killing_a_rank_stops_the_job_naming_it_and_keeps_the_last_checkpoint() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let launcher = mpirun(2);
    let launcher: Vec<&str> = launcher.iter().map(String::as_str).collect();
    let args = ["run", "tiny.ron", "--set", "trainer.epochs=1000"];
    let mut job = after_first_evaluation(clshost.launched(&launcher, args), scratch.path());
    let rank1 = rank_pid(job.id(), 1).expect("rank 1 is a child of mpirun");
    let killed = Command::new("kill")
        .args(["-KILL", &rank1.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let since = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the other rank is still running 30 s after rank 1 was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut job.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("rank 1"), "{err}");
    let last = tiny_run_dir(scratch.path()).join("checkpoints/last.ckpt");
    Checkpoint::load(&last).expect("the last checkpoint stays loadable");
}

/// The process id of rank `rank` among the children of `mpirun`, by the rank Open MPI puts in
/// each one's environment.
fn rank_pid(mpirun: u32, rank: u32) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    let children =
        std::fs::read_to_string(format!("/proc/{mpirun}/task/{mpirun}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn ranks_started_with_different_recipes_are_refused_before_anything_is_written() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let recipe = std::fs::read_to_string(scratch.path().join("tiny.ron")).unwrap();
    std::fs::write(
        scratch.path().join("other.ron"),
        recipe.replace("lr: 0.05", "lr: 0.1"),
    )
    .unwrap();
    // One program per rank (MPMD): `mpirun -np 1 A : -np 1 B`.
    let one = mpirun(1);
    let mut job = Command::new(&one[0]);
    job.args(&one[1..])
        .arg(clshost_binary())
        .args(["run", "tiny.ron", ":"])
        .args(&one[1..])
        .arg(clshost_binary())
        .args(["run", "other.ron"]);
    let out = clshost
        .isolate(job)
        .current_dir(scratch.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("rank 1 runs with another recipe than rank 0"),
        "{err}"
    );
    ended_without_abort(&err);
    assert!(!scratch.path().join("runs").exists(), "no run directory");
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn a_run_resumes_only_with_the_number_of_ranks_it_was_trained_with() {
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let run = paused_tiny_run(&clshost, scratch.path());
    let out = run_ranks(
        &clshost,
        scratch.path(),
        2,
        &["run", "--resume", run.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("was trained with 1 rank(s) and this job has 2"),
        "{err}"
    );
    ended_without_abort(&err);
}

/// The ranks ended on their own with an error they agree on, each naming itself: none of them
/// had to end the job with `MPI_Abort`. (The launcher ends the others once one has exited with
/// an error, so the second rank's own line may not get out.)
fn ended_without_abort(err: &str) {
    assert!(err.contains("error: rank "), "{err}");
    assert!(!err.contains("MPI_ABORT"), "{err}");
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn doctor_reports_the_mpi_library_and_each_rank_of_the_job() {
    let clshost = Clshost::new();
    let dir = tempfile::tempdir().unwrap();
    // Each rank's stdout in a file of its own (`<dir>/1/rank.<N>/stdout`), not interleaved.
    let mut launcher = mpirun(2);
    launcher.extend(["--output-filename".into(), "out".into()]);
    let launcher: Vec<&str> = launcher.iter().map(String::as_str).collect();
    let out = clshost
        .launched(&launcher, ["doctor", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for rank in 0..2 {
        let path = dir.path().join(format!("out/1/rank.{rank}/stdout"));
        let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let d = &report["distributed"];
        assert_eq!((&d["rank"], &d["size"]), (&rank.into(), &2.into()), "{d}");
        assert_eq!(d["local_ranks"], 2, "{d}");
        assert!(d["mpi"].as_str().unwrap().starts_with("Open MPI v"), "{d}");
        assert!(d["launcher"].as_str().unwrap().contains("mpirun"), "{d}");
        // Open MPI binds each of two ranks to a core of its own.
        assert!(d["oversubscribed"].is_null(), "{d}");
    }
    // Unbound, each rank may use every CPU of the machine: twice as many threads as CPUs.
    let mut unbound = mpirun(2);
    unbound.retain(|a| a != "-x" && a != "RAYON_NUM_THREADS=1");
    unbound.extend(["--bind-to".into(), "none".into()]);
    let unbound: Vec<&str> = unbound.iter().map(String::as_str).collect();
    let out = clshost
        .launched(&unbound, ["doctor"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = stdout_ok(&out);
    assert!(
        text.contains("warning: 2 ranks share this machine's") && text.contains("--bind-to core"),
        "{text}"
    );
}

#[test]
#[ignore = "needs MPI: CLSHOST_TEST_MPIRUN=\"$(scripts/setup-mpi.sh)\" CLSHOST_TEST_FEATURES=clshost/mpi"]
fn bench_train_on_two_ranks_counts_both_and_times_the_all_reduce() {
    let clshost = Clshost::new();
    let dir = tempfile::tempdir().unwrap();
    let out = run_ranks(&clshost, dir.path(), 2, &TINY_BENCH_TRAIN);
    let report: Value = serde_json::from_str(&stdout_ok(&out)).expect("one JSON object, rank 0's");
    assert_eq!(report["ranks"], 2);
    let per_step = report["train_ms_per_step"].as_f64().unwrap();
    let images = report["train_images_per_second"].as_f64().unwrap();
    assert!(
        (images - 2.0 * 4.0 * 1e3 / per_step).abs() <= 1e-6 * images,
        "{report}"
    );
    let reduce = report["allreduce_ms_per_step"].as_f64().unwrap();
    assert!(reduce > 0.0 && reduce < per_step, "{report}");
}

/// Needs no MPI: a build without it, started as if by `mpirun -np 2` (Open MPI's variables in
/// its environment), says so and how to rebuild, instead of training the recipe once per rank.
#[test]
fn a_build_without_mpi_started_as_one_of_several_ranks_refuses_to_train() {
    if std::env::var("CLSHOST_TEST_FEATURES").is_ok_and(|f| f.contains("mpi")) {
        // This clshost has MPI, which would try to join the job the variables describe.
        return;
    }
    let clshost = Clshost::new();
    let scratch = tiny_tempdir(&clshost);
    let out = clshost
        .command(["run", "tiny.ron"])
        .current_dir(scratch.path())
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .env("OMPI_COMM_WORLD_RANK", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("started by Open MPI's mpirun as one of 2 ranks")
            && err.contains("--features clshost/mpi"),
        "{err}"
    );
    assert!(!scratch.path().join("runs").exists(), "nothing written");
}
