#!/usr/bin/env bash
# Installs an MLflow tracking server for the tests of the `mlflow` logger, and prints the path of
# its `mlflow` command.
#
#   CLSHOST_TEST_MLFLOW="$(scripts/setup-mlflow.sh)" cargo test --test e2e -- --ignored mlflow
#
# MLflow (the version below) goes from the Python package index into a venv under
# target/mlflow/ (once: later calls find it and install nothing). Progress goes to stderr; stdout
# holds only the path.
#
# Environment:
#   CLSHOST_MLFLOW_VERSION  the version to install (default 3.17.2)
#   CLSHOST_MLFLOW_DIR      where the venv goes (default target/mlflow/venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${CLSHOST_MLFLOW_VERSION:-3.17.2}"
venv="${CLSHOST_MLFLOW_DIR:-$root/target/mlflow/venv}"

say() { echo "setup-mlflow: $*" >&2; }

if [ "$("$venv/bin/mlflow" --version 2>/dev/null | awk '{print $NF}')" != "$version" ]; then
    say "installing mlflow $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow==$version" >&2
fi
echo "$venv/bin/mlflow"
