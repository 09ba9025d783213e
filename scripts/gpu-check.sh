#!/usr/bin/env bash
# The GPU check: one run on a machine with an NVIDIA GPU records what the GPU path does.
#
#   (a) `clshost doctor --json`: what the build supports and which devices it sees;
#   (b) the ResNet parity tests (torchvision fixtures) on `cuda` and `wgpu` (and `libtorch:cuda`
#       when the plugin was built with the LibTorch backend), with TF32 off
#       (`NVIDIA_TF32_OVERRIDE=0`), and one training step of a small ResNet on each against the
#       CPU;
#   (c) `clshost bench train` for resnet18 and resnet50 at 224x224 on the same devices, and on
#       `libtorch:*` devices also in mixed precision (`--precision bf16`), whose parity tests
#       against `torch.autocast` run in (b) there;
#   (d) the same training-step benchmark in PyTorch (scripts/bench/train_torch.py) when python3
#       has torch with CUDA, in bf16 too when a libtorch device is checked;
#   (e) one JSON line on stdout (`{"gpu_check": ...}`), the record of the run; progress goes to
#       stderr, and every step's own output to the log directory.
#
# Nothing is compiled here. `scripts/gpu-pack.sh` builds everything this needs on any machine
# (no GPU or CUDA toolkit needed) and packs it small enough to carry to the GPU machine; by hand,
# build with
#
#   cargo build --release -p clshost -p clshost-plugin-resnet -p clshost-plugin-losses \
#       -p clshost-plugin-augment -p clshost-plugin-metrics -p clshost-plugin-export \
#       --features clshost-plugin-resnet/cuda,clshost-plugin-resnet/wgpu
#   cargo test --release -p clshost-plugin-resnet --features cuda,wgpu --no-run
#
# adding `clshost-plugin-resnet/libtorch` (and `libtorch` to the test's features) after
# `eval "$(scripts/setup-libtorch.sh)"` for the LibTorch backend. Its libtorch is found through
# the run path recorded at build time or, on another machine, in the torch of `python3`
# (LD_LIBRARY_PATH is set to its `torch/lib`).
#
# and pass the binaries: `--bin DIR` (clshost and libclshost_plugin_*.so; default
# target/release) and `--parity-test FILE` (the resnet plugin's `integration-*` test binary that
# the second command prints; default: the newest one under target/release/deps).
#
# Usage: scripts/gpu-check.sh [--dry-run] [--bin DIR] [--parity-test FILE] [--logs DIR]
#                             [--batch N] [--steps N] [--devices "cuda wgpu"]
#
# --dry-run checks the inputs and prints the plan, touching no GPU; it works on any machine.
# The whole check is sized to finish within 8 minutes: every step has its own time limit.

set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/target/release"
parity_test=""
logs="${TMPDIR:-/tmp}/clshost-gpu-check"
batch=64
steps=10
devices=""
dry_run=0

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --bin) bin="$2"; shift ;;
        --parity-test) parity_test="$2"; shift ;;
        --logs) logs="$2"; shift ;;
        --batch) batch="$2"; shift ;;
        --steps) steps="$2"; shift ;;
        --devices) devices="$2"; shift ;;  # default: cuda wgpu, and libtorch:cuda if built
        -h|--help) usage; exit 0 ;;
        *) echo "gpu-check: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "gpu-check: $*" >&2; }

# A JSON string literal of $1.
json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\r'/}
    s=${s//$'\n'/\\n}
    printf '"%s"' "$s"
}

if [ -z "$parity_test" ]; then
    parity_test="$(ls -t "$root"/target/release/deps/integration-* 2>/dev/null \
        | grep -v '\.d$' | head -n 1 || true)"
fi

# (0) inputs
problems=()
[ -x "$bin/clshost" ] || problems+=("no executable $bin/clshost (build it, or pass --bin DIR)")
for p in resnet losses; do
    [ -f "$bin/libclshost_plugin_$p.so" ] \
        || problems+=("no plugin $bin/libclshost_plugin_$p.so (build it, or pass --bin DIR)")
done
if [ -z "$parity_test" ] || [ ! -x "$parity_test" ]; then
    problems+=("no resnet parity test binary (cargo test --release -p clshost-plugin-resnet --features cuda,wgpu --no-run, then --parity-test FILE)")
fi
for f in resnet18.json resnet50.json resnet18_bf16.json resnet50_bf16.json; do
    [ -f "$root/plugins/resnet/tests/fixtures/$f" ] \
        || problems+=("missing fixture plugins/resnet/tests/fixtures/$f")
done
[ -f "$root/scripts/bench/train_torch.py" ] || problems+=("missing scripts/bench/train_torch.py")
# A plugin built with the LibTorch backend on another machine finds libtorch in python3's torch.
if [ -f "$bin/libclshost_plugin_resnet.so" ] \
    && ldd "$bin/libclshost_plugin_resnet.so" 2>/dev/null | grep -q 'libtorch.*not found'; then
    torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)"
    if [ -n "$torch_lib" ] && [ -f "$torch_lib/libtorch_cpu.so" ]; then
        export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
        problems+=("the resnet plugin was built with the LibTorch backend but no libtorch is found (install torch for python3)")
    fi
fi
# What the plugins were built with, from `clshost doctor` (it reports compiled-in backends even
# where no device is present).
if [ -x "$bin/clshost" ] && [ -f "$bin/libclshost_plugin_resnet.so" ]; then
    backends="$(CLSHOST_PLUGIN_PATH="$bin" "$bin/clshost" doctor --json 2>/dev/null | tr -d ' \n')"
    for b in cuda wgpu; do
        case "$backends" in
            *"\"backend\":\"$b\",\"plugins\":[{"*) ;;
            *) problems+=("the plugins in $bin were built without the $b backend (--features clshost-plugin-resnet/cuda,clshost-plugin-resnet/wgpu)") ;;
        esac
    done
    case "$backends" in
        *'"backend":"libtorch","plugins":[{'*) libtorch_built=1 ;;
        *) libtorch_built=0 ;;
    esac
fi
if [ -z "$devices" ]; then
    devices="cuda wgpu"
    [ "${libtorch_built:-0}" = 1 ] && devices="$devices libtorch:cuda"
fi
torch_ok=0
if command -v python3 >/dev/null \
    && python3 -c "import torch, torchvision, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    torch_ok=1
fi

say "binaries:    $bin"
say "parity test: ${parity_test:-none}"
say "devices:     $devices; batch $batch, $steps timed steps"
say "pytorch:     $([ $torch_ok = 1 ] && echo 'torch with CUDA found' || echo 'not available (step d skipped)')"
say "logs:        $logs"
if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do say "problem: $p"; done
    exit 1
fi
if [ $dry_run = 1 ]; then
    say "dry run: inputs ok; would run doctor, parity on [$devices], bench train resnet18/resnet50 at 224 on [$devices] (bf16 too on libtorch)$([ $torch_ok = 1 ] && echo ', and PyTorch')"
    exit 0
fi

mkdir -p "$logs"
export CLSHOST_PLUGIN_PATH="$bin"
started=$(date +%s)
gpu_name="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"

# (a) doctor
say "doctor"
if timeout 60 "$bin/clshost" doctor --json >"$logs/doctor.json" 2>"$logs/doctor.err"; then
    doctor="$(tr -d '\n' <"$logs/doctor.json")"
else
    doctor="{\"error\": $(json_str "$(tail -n 5 "$logs/doctor.err")")}"
fi

# (b) parity, one device at a time
parity=""
for dev in $devices; do
    say "parity on $dev"
    log="$logs/parity-$dev.log"
    t0=$(date +%s)
    filters=(parity accelerator)
    case "$dev" in libtorch*) filters+=(precision) ;; esac
    CLSHOST_TEST_DEVICE="$dev" CARGO_MANIFEST_DIR="$root/plugins/resnet" NVIDIA_TF32_OVERRIDE=0 \
        timeout 150 "$parity_test" --include-ignored --test-threads 1 "${filters[@]}" >"$log" 2>&1
    rc=$?
    passed=$(grep -c '^test .* ok$' "$log")
    failed=$(grep -c '^test .* FAILED$' "$log")
    failures="$(grep -E "differ|panicked|cannot create" "$log" | head -n 12)"
    entry="{\"device\": \"$dev\", \"exit\": $rc, \"passed\": $passed, \"failed\": $failed, \"seconds\": $(( $(date +%s) - t0 )), \"failures\": $(json_str "$failures")}"
    parity="${parity:+$parity, }$entry"
done

# (c) clshost bench train, (d) PyTorch; mixed precision on the libtorch devices
runs=""
torch_precisions="fp32"
for dev in $devices; do
    runs="$runs $dev/fp32"
    case "$dev" in libtorch*) runs="$runs $dev/bf16"; torch_precisions="fp32 bf16" ;; esac
done
bench=""
for model in resnet18 resnet50; do
    for run in $runs; do
        dev="${run%/*}" precision="${run##*/}"
        say "bench train $model on $dev in $precision"
        name="$model-$dev-$precision"
        if timeout 120 "$bin/clshost" bench train --model "$model" --device "$dev" --size 224 \
            --batch "$batch" --steps "$steps" --precision "$precision" --json \
            >"$logs/bench-$name.json" 2>"$logs/bench-$name.err"; then
            entry="$(cat "$logs/bench-$name.json")"
        else
            entry="{\"model\": \"$model\", \"device\": \"$dev\", \"precision\": \"$precision\", \"error\": $(json_str "$(tail -n 5 "$logs/bench-$name.err")")}"
        fi
        bench="${bench:+$bench, }$entry"
    done
    [ $torch_ok = 1 ] || continue
    for precision in $torch_precisions; do
        say "bench train $model in PyTorch in $precision"
        name="$model-$precision"
        if timeout 120 python3 "$root/scripts/bench/train_torch.py" --model "$model" --device cuda \
            --size 224 --batch "$batch" --steps "$steps" --precision "$precision" --json \
            >"$logs/torch-$name.json" 2>"$logs/torch-$name.err"; then
            entry="$(cat "$logs/torch-$name.json")"
        else
            entry="{\"model\": \"$model\", \"implementation\": \"pytorch\", \"precision\": \"$precision\", \"error\": $(json_str "$(tail -n 5 "$logs/torch-$name.err")")}"
        fi
        bench="${bench:+$bench, }$entry"
    done
done

# (e) the record
printf '{"gpu_check": {"gpu": %s, "seconds": %d, "doctor": %s, "parity": [%s], "bench": [%s]}}\n' \
    "$(json_str "$gpu_name")" $(( $(date +%s) - started )) "$doctor" "$parity" "$bench"
