#!/usr/bin/env bash
# Installs what data-parallel training needs, an MPI library and what the Rust binding is built
# with, and prints the path of `mpirun`.
#
#   CLSHOST_TEST_MPIRUN="$(scripts/setup-mpi.sh)" cargo build --release --features clshost/mpi
#
# An MPI that is already installed (Open MPI or MPICH: `mpicc` and `mpirun` on PATH) is used as
# is. Otherwise Open MPI and libclang (which rsmpi's bindings are generated with) come from the
# system's package manager: apt on Debian and Ubuntu, as root (once: later calls find them and
# install nothing). Progress goes to stderr; stdout holds only the path.
#
# Environment:
#   CLSHOST_MPIRUN  the launcher to report instead of the `mpirun` on PATH
set -euo pipefail

say() { echo "setup-mpi: $*" >&2; }

have_libclang() {
    ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' \
        || compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null \
        || [ -n "${LIBCLANG_PATH:-}" ]
}

if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null || ! have_libclang; then
    if ! command -v apt-get >/dev/null; then
        say "no MPI found and no apt-get to install one: install Open MPI or MPICH (with its"
        say "development files, \`mpicc\`) and libclang with your package manager"
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        sudo=(sudo)
    fi
    say "installing Open MPI and libclang with apt"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" apt-get install -y -qq openmpi-bin libopenmpi-dev libclang-dev >&2
fi
mpirun="${CLSHOST_MPIRUN:-$(command -v mpirun)}"
say "$("$mpirun" --version 2>/dev/null | head -n 1)"
echo "$mpirun"
