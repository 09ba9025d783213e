//! Shared support for the end-to-end tests: building the host, the first-party plugins and the
//! out-of-tree crates (fixtures, the third-party example) once per test process, and running the
//! `clshost` binary in an isolated environment.
//!
//! The tests build with the same `cargo` that runs them. The workspace's own binary and plugins
//! land in its target directory; the separate workspaces (fixtures, the example) build as a third
//! party's would, without the workspace's lint wrapper, into one target directory of their own
//! under it (`target/out-of-tree/`), so the dependencies they share (abi_stable, serde, the
//! plugin API) compile once.

use std::env;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use crate::nested_cargo::cargo_command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the root")
        .to_path_buf()
}

/// The profile directory this test binary was built into (`target/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf()
}

/// Runs cargo with `args` in `dir`, panicking with its output if it fails.
pub fn cargo<I, S>(dir: &Path, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cargo(dir, cargo_command().args(args));
}

/// Runs `command` in `dir`, panicking with its output if it fails.
fn run_cargo(dir: &Path, command: &mut Command) {
    let output = command.current_dir(dir).output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo failed in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `clshost` binary, with every first-party plugin built next to it; with the cargo
/// features `CLSHOST_TEST_FEATURES` names, when set (`clshost/mpi` for the distributed tests,
/// `clshost-plugin-resnet/libtorch` for the LibTorch one).
///
/// This is a plain `cargo build` of the workspace's default members: the build the README runs,
/// and one that `cargo test --workspace` (with the same features) has already compiled, unit for
/// unit, thanks to the workspace hack (`workspace-hack/Cargo.toml`), so it only links and copies.
pub fn clshost_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let features = env::var("CLSHOST_TEST_FEATURES").unwrap_or_default();
        let mut args = vec!["build", "--quiet"];
        for feature in features.split([',', ' ']).filter(|f| !f.is_empty()) {
            args.extend(["--features", feature]);
        }
        cargo(&repo_root(), &args);
        profile_dir().join(format!("clshost{}", env::consts::EXE_SUFFIX))
    })
}

/// The python3 with torch and torchvision that the `_with_torchvision` tests run: CI's
/// torchvision step names it in `CLSHOST_TEST_TORCHVISION_PYTHON` (the tests are ignored
/// otherwise).
pub fn torchvision_python() -> String {
    env::var("CLSHOST_TEST_TORCHVISION_PYTHON")
        .expect("CLSHOST_TEST_TORCHVISION_PYTHON names a python3 with torch and torchvision")
}

/// The first-party plugin crates.
pub const FIRST_PARTY_PLUGINS: [&str; 6] = [
    "clshost-plugin-resnet",
    "clshost-plugin-augment",
    "clshost-plugin-losses",
    "clshost-plugin-metrics",
    "clshost-plugin-export",
    "clshost-plugin-loggers",
];

/// Builds the separate Cargo workspace at `manifest_dir` (relative to the repository root) into
/// the out-of-tree target directory, and returns the directory holding its libraries.
pub fn build_workspace(manifest_dir: &str) -> PathBuf {
    let target = profile_dir()
        .parent()
        .expect("target dir")
        .join("out-of-tree");
    // `.ci/run` lints this workspace while building it, through clippy-driver as the workspace
    // wrapper; a separate workspace builds as a third party's would, without it.
    run_cargo(
        &repo_root().join(manifest_dir),
        cargo_command()
            .args(["build", "--quiet", "--target-dir"])
            .arg(&target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS"),
    );
    target.join("debug")
}

/// The file name of the plugin library `id` (`losses` -> `libclshost_plugin_losses.so`).
pub fn plugin_file(id: &str) -> String {
    format!(
        "{}clshost_plugin_{id}{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    )
}

/// A `clshost` command isolated from the user's plugins and caches: no `CLSHOST_PLUGIN_PATH`, and
/// a fresh home and data directory, so only the plugins next to the binary and those named by
/// flags load; no `CLSHOST_CACHE_DIR`, `TORCH_HOME` or `CLSHOST_WEIGHTS_MIRROR`, so weights are
/// cached under that home unless a test sets them. It also
/// gets a runtime directory, as a login session has: without `XDG_RUNTIME_DIR`, Mesa's Vulkan
/// device-select layer prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
/// on stderr whenever the wgpu device report opens Vulkan, which `check` and `doctor` do.
pub struct Clshost {
    data_home: tempfile::TempDir,
}

impl Clshost {
    /// Builds everything needed and prepares the isolated environment.
    pub fn new() -> Self {
        clshost_binary();
        Clshost {
            data_home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A command for `clshost` with `args`, ready to run.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(clshost_binary());
        cmd.args(args);
        self.isolate(cmd)
    }

    /// A command for `launcher` (`mpirun -np 2`, its program then its own arguments) starting
    /// `clshost` with `args`, in the same isolated environment, which a local launcher passes on
    /// to every process it starts.
    pub fn launched<I, S>(&self, launcher: &[&str], args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(launcher[0]);
        cmd.args(&launcher[1..]).arg(clshost_binary()).args(args);
        self.isolate(cmd)
    }

    /// `cmd` without the user's plugin path, log filter and caches, with a fresh home.
    pub fn isolate(&self, mut cmd: Command) -> Command {
        cmd.env_remove("CLSHOST_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .env_remove("CLSHOST_CACHE_DIR")
            .env_remove("CLSHOST_WEIGHTS_MIRROR")
            .env_remove("TORCH_HOME")
            .env("XDG_DATA_HOME", self.data_home.path())
            .env("XDG_RUNTIME_DIR", self.data_home.path())
            .env("HOME", self.data_home.path());
        cmd
    }

    /// Runs `clshost` with `args` and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().expect("clshost runs")
    }

    /// Runs `clshost ARGS...` in `dir` and returns its output.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(args)
            .current_dir(dir)
            .output()
            .expect("clshost runs")
    }

    /// Starts `clshost run tiny.ron` for 1000 epochs in `dir` (a [`tiny_scratch`]) and returns
    /// once its first evaluation is printed: training is well under way, with `last` on disk.
    pub fn live_run(&self, dir: &Path) -> Child {
        let command = self.command(["run", "tiny.ron", "--set", "trainer.epochs=1000"]);
        after_first_evaluation(command, dir)
    }
}

/// Starts `command` (a `clshost run`, or a launcher of one) in `dir` and returns once the first
/// evaluation is printed; the rest of its stdout is read and dropped.
pub fn after_first_evaluation(mut command: Command, dir: &Path) -> Child {
    let mut child = command
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clshost starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    // The table header comes after the first evaluation.
    for line in lines.by_ref() {
        if line.expect("utf-8 stdout").starts_with("epoch") {
            break;
        }
    }
    // Keep reading, so the run's later table lines never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Sends SIGINT (what Ctrl-C sends) to `child`.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

impl Default for Clshost {
    fn default() -> Self {
        Self::new()
    }
}

/// Stderr of a run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout of a successful run, or a panic showing stderr.
pub fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "clshost failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// Three epochs of ResNet-18 (small-input stem) at 16x16 on the dataset of [`tiny_scratch`],
/// keeping the two best epochs' checkpoints, exporting safetensors and logging to TensorBoard:
/// a whole run in seconds.
pub const TINY_RECIPE: &str = r#"(
    name: "tiny",
    seed: 3,
    data: (
        root: "data",
        image_size: (16, 16),
        eval_resize: 16,
        eval_crop: (16, 16),
        mean: (0.5, 0.5, 0.5),
        std: (0.25, 0.25, 0.25),
        batch_size: 4,
        workers: 2,
    ),
    model: (name: "resnet18", params: (small_input: true)),
    augment: [(name: "horizontal_flip")],
    loss: (name: "cross_entropy"),
    optimizer: (name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5e-4),
    schedule: (name: cosine, warmup_epochs: 1),
    trainer: (epochs: 3, monitor: "top1", log_interval: 1, checkpoints: (top_k: 2)),
    metrics: [
        (name: "accuracy", params: (top_k: [1])),
        (name: "f1"),
        (name: "confusion_matrix"),
    ],
    export: [(name: "safetensors")],
    loggers: [(name: "tensorboard")],
    output: "runs",
)"#;

/// `clshost bench train` of a tiny resnet18 on the CPU, a few seconds, as JSON.
pub const TINY_BENCH_TRAIN: [&str; 19] = [
    "bench",
    "train",
    "--model",
    "resnet18",
    "--params",
    "(small_input: true)",
    "--device",
    "cpu",
    "--size",
    "16",
    "--batch",
    "4",
    "--classes",
    "3",
    "--warmup",
    "2",
    "--steps",
    "3",
    "--json",
];

/// Writes a tiny generated dataset into `dir` (`data/{train,val}/{circle,square}/`, 6 training
/// and 3 validation images of 16x16 per class) and [`TINY_RECIPE`] as `tiny.ron`.
pub fn tiny_scratch(clshost: &Clshost, dir: &Path) {
    let synth = [
        "data",
        "synth",
        "data",
        "--classes",
        "2",
        "--train",
        "6",
        "--val",
        "3",
        "--size",
        "16",
    ];
    stdout_ok(
        &clshost
            .command(synth)
            .current_dir(dir)
            .output()
            .expect("clshost runs"),
    );
    std::fs::write(dir.join("tiny.ron"), TINY_RECIPE).expect("writing tiny.ron");
}

/// A temporary [`tiny_scratch`], removed when dropped.
pub fn tiny_tempdir(clshost: &Clshost) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    tiny_scratch(clshost, dir.path());
    dir
}

/// The run directory of the only run of [`TINY_RECIPE`] in `scratch` (a [`tiny_scratch`]).
pub fn tiny_run_dir(scratch: &Path) -> PathBuf {
    let mut runs = std::fs::read_dir(scratch.join("runs/tiny")).expect("a runs/tiny folder");
    runs.next()
        .expect("one run")
        .expect("a listable run")
        .path()
}

/// Runs [`TINY_RECIPE`] in `scratch` (a [`tiny_scratch`]) until epoch 1 is saved, as an
/// interrupted run, and returns its run directory.
pub fn paused_tiny_run(clshost: &Clshost, scratch: &Path) -> PathBuf {
    let out = clshost.run_in(scratch, &["run", "tiny.ron", "--stop-after-epoch", "1"]);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    tiny_run_dir(scratch)
}

/// A tiny run for the tests of one test process to share: [`tiny_scratch`] in
/// `target/tmp/<name>/`, then `clshost run tiny.ron` with `--set` overrides.
pub struct TrainedRun {
    /// The isolated `clshost` the run was trained with.
    pub clshost: Clshost,
    /// The scratch directory: `data/`, `tiny.ron`, `runs/`.
    pub dir: PathBuf,
    /// The run directory.
    pub run: PathBuf,
}

impl TrainedRun {
    /// The run in `cell`, trained there by the first caller: [`TINY_RECIPE`] with `overrides`
    /// in a fresh `target/tmp/<name>/` (the directory Cargo gives integration tests as
    /// `CARGO_TARGET_TMPDIR`).
    pub fn shared(
        cell: &'static OnceLock<TrainedRun>,
        name: &str,
        overrides: &[&str],
    ) -> &'static TrainedRun {
        cell.get_or_init(|| {
            let dir = profile_dir()
                .parent()
                .expect("target dir")
                .join("tmp")
                .join(name);
            Self::train(dir, overrides)
        })
    }

    /// Runs `clshost SUBCOMMAND ARGS...` in the scratch directory.
    pub fn output(&self, subcommand: &str, args: &[&str]) -> Output {
        self.clshost
            .command([subcommand].iter().chain(args))
            .current_dir(&self.dir)
            .output()
            .expect("clshost runs")
    }

    /// Trains [`TINY_RECIPE`] with `overrides` in `dir`, emptied first.
    fn train(dir: PathBuf, overrides: &[&str]) -> TrainedRun {
        let clshost = Clshost::new();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        tiny_scratch(&clshost, &dir);
        let mut args = vec!["run", "tiny.ron"];
        for o in overrides {
            args.extend(["--set", o]);
        }
        stdout_ok(
            &clshost
                .command(args)
                .current_dir(&dir)
                .output()
                .expect("clshost runs"),
        );
        let run = std::fs::read_dir(dir.join("runs/tiny"))
            .expect("the runs directory")
            .next()
            .expect("one run")
            .expect("a readable entry")
            .path();
        TrainedRun { clshost, dir, run }
    }
}
