#!/usr/bin/env bash
# Sets up PyTorch's libtorch for the LibTorch backend and prints the environment its build needs.
#
#   eval "$(scripts/setup-libtorch.sh)" && cargo build --release --features clshost-plugin-resnet/libtorch
#
# Without arguments it installs the PyTorch wheel from the Python package index into a venv under
# target/libtorch/ (once: later calls find it and install nothing), then prints `export` lines for
# tch's build script (torch-sys): LIBTORCH and LIBTORCH_INCLUDE (the wheel's torch/ directory,
# which holds include/ and lib/), LIBTORCH_CXX11_ABI and LIBTORCH_BYPASS_VERSION_CHECK; and
# CLSHOST_TORCH_PYTHON, the python that torch belongs to. Progress
# goes to stderr; stdout holds only the export lines, so `eval` takes them.
#
# The plugin built this way runs with no environment set: its build script records the libtorch
# directory as the library's run path.
#
# Environment:
#   CLSHOST_TORCH_PYTHON   a python3 whose `torch` to use instead of installing one (for example
#                          a conda environment's, or the GPU machine's system Python)
#   CLSHOST_TORCH_VERSION  the wheel to install (default 2.11.0: the version the project's GPU
#                          machine has; tch 0.22's bindings compile against its headers)
#   CLSHOST_LIBTORCH_DIR   where the venv goes (default target/libtorch/venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${CLSHOST_TORCH_VERSION:-2.11.0}"
venv="${CLSHOST_LIBTORCH_DIR:-$root/target/libtorch/venv}"

say() { echo "setup-libtorch: $*" >&2; }

# Prints torch's version, its directory and its C++ ABI flag, one per line.
describe() {
    "$1" -W ignore - <<'PY'
import os, torch
print(torch.__version__)
print(os.path.dirname(torch.__file__))
print(1 if torch._C._GLIBCXX_USE_CXX11_ABI else 0)
PY
}

if [ -n "${CLSHOST_TORCH_PYTHON:-}" ]; then
    python="$CLSHOST_TORCH_PYTHON"
    if ! info="$(describe "$python" 2>/dev/null)"; then
        say "$python cannot import torch; install it there or unset CLSHOST_TORCH_PYTHON"
        exit 1
    fi
else
    python="$venv/bin/python3"
    if ! info="$(describe "$python" 2>/dev/null)" \
        || [ "$(head -n 1 <<<"$info" | cut -d+ -f1)" != "$version" ]; then
        say "installing torch $version into $venv (about 4.6 GB with its NVIDIA packages)"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$version" >&2
        info="$(describe "$python")"
    fi
fi

{ read -r found; read -r dir; read -r abi; } <<<"$info"
if [ ! -f "$dir/lib/libtorch_cpu.so" ] || [ ! -d "$dir/include/torch" ]; then
    say "torch $found in $dir has no libtorch_cpu.so or C++ headers: it cannot be linked against"
    exit 1
fi
say "torch $found at $dir"
printf 'export LIBTORCH=%q\n' "$dir"
# burn-tch's build script looks for headers here rather than under LIBTORCH.
printf 'export LIBTORCH_INCLUDE=%q\n' "$dir"
printf 'export LIBTORCH_CXX11_ABI=%q\n' "$abi"
# tch 0.22 names PyTorch 2.9.0; its bindings build and run against the newer headers used here.
printf 'export LIBTORCH_BYPASS_VERSION_CHECK=1\n'
# The python whose torch this is (for scripts that need torch itself; later calls reuse it).
printf 'export CLSHOST_TORCH_PYTHON=%q\n' "$python"
