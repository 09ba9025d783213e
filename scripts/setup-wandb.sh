#!/usr/bin/env bash
# Installs Weights & Biases' own client for the tests of the `wandb` logger, and prints the path
# of its `wandb` command (whose `wandb leet inspect` reads offline runs without a server).
#
#   CLSHOST_TEST_WANDB="$(scripts/setup-wandb.sh)" cargo test --test e2e -- --ignored wandb
#
# wandb (the version below) goes from the Python package index into a venv under target/wandb/
# (once: later calls find it and install nothing). Progress goes to stderr; stdout holds only
# the path.
#
# Environment:
#   CLSHOST_WANDB_VERSION  the version to install (default 0.31.0)
#   CLSHOST_WANDB_DIR      where the venv goes (default target/wandb/venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${CLSHOST_WANDB_VERSION:-0.31.0}"
venv="${CLSHOST_WANDB_DIR:-$root/target/wandb/venv}"

say() { echo "setup-wandb: $*" >&2; }

installed="$("$venv/bin/python" -c 'import wandb; print(wandb.__version__)' 2>/dev/null || true)"
if [ "$installed" != "$version" ]; then
    say "installing wandb $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "wandb==$version" >&2
fi
echo "$venv/bin/wandb"
