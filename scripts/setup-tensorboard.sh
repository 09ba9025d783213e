#!/usr/bin/env bash
# Installs TensorBoard's own Python reader for the tests of the `tensorboard` logger, and prints
# the path of the venv's `python`.
#
#   CLSHOST_TEST_TENSORBOARD_PYTHON="$(scripts/setup-tensorboard.sh)" \
#       cargo test --test e2e -- --ignored tensorboard
#
# TensorBoard (the version below) goes from the Python package index into a venv under
# target/tensorboard/ (once: later calls find it and install nothing). Progress goes to stderr;
# stdout holds only the path.
#
# Environment:
#   CLSHOST_TENSORBOARD_VERSION  the version to install (default 2.21.0)
#   CLSHOST_TENSORBOARD_DIR      where the venv goes (default target/tensorboard/venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${CLSHOST_TENSORBOARD_VERSION:-2.21.0}"
venv="${CLSHOST_TENSORBOARD_DIR:-$root/target/tensorboard/venv}"

say() { echo "setup-tensorboard: $*" >&2; }

installed="$("$venv/bin/python" -c 'import tensorboard; print(tensorboard.__version__)' \
    2>/dev/null || true)"
if [ "$installed" != "$version" ]; then
    say "installing tensorboard $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "tensorboard==$version" >&2
fi
echo "$venv/bin/python"
