#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine and packs it into one archive small
# enough to carry there: the device tool moves at most 64 MiB of build outputs, and the release
# binaries with the CUDA, wgpu and LibTorch backends are several times that before stripping.
#
#   scripts/gpu-pack.sh [--features cuda,wgpu,libtorch] [--out target/gpu-pack.tar.xz]
#                       [--limit-mib 60] [--no-build]
#
# 1. builds (release) clshost, the resnet and losses plugins with the resnet plugin's
#    `--features`, and the resnet plugin's integration-test binary (the parity tests) with the
#    same features; `libtorch` in them runs `scripts/setup-libtorch.sh` first;
# 2. copies the four files into a staging folder, strips their debug information
#    (`strip --strip-debug`: symbols stay, so panics still name functions), and packs them with
#    xz, which Python's standard library reads on a machine without xz;
# 3. fails when the archive is over `--limit-mib` (default 60, leaving room under the 64 MiB
#    carry for the working tree's own files), and prints the command that unpacks and runs the
#    check on the GPU machine:
#
#    python3 -m tarfile -e target/gpu-pack.tar.xz target/gpu-pack && \
#        scripts/gpu-check.sh --bin target/gpu-pack --parity-test target/gpu-pack/integration
#
# `--no-build` packs what the last build for the same `--out` left.
# Progress goes to stderr; stdout holds only the device command.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
features="cuda,wgpu,libtorch"
out="$root/target/gpu-pack.tar.xz"
limit_mib=60
build=1

say() { echo "gpu-pack: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --features) features="$2"; shift ;;
        --out) out="$2"; shift ;;
        --limit-mib) limit_mib="$2"; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,/^set -e/s/^# \{0,1\}//p' "$0" | sed '$d'; exit 0 ;;
        *) say "unknown argument \`$1\` (see --help)"; exit 2 ;;
    esac
    shift
done

cd "$root"
case ",$features," in
    *,libtorch,*) eval "$(scripts/setup-libtorch.sh)" ;;
esac
plugin_features="$(tr ',' '\n' <<<"$features" | sed '/^$/d; s|^|clshost-plugin-resnet/|' | paste -sd, -)"
release="$root/target/release"
# Where the build leaves the path of the parity-test binary, next to the archive.
test_list="${out%.tar.xz}.parity-test"

if [ $build = 1 ]; then
    say "building clshost and the resnet and losses plugins with [$features] (release)"
    cargo build --release -p clshost -p clshost-plugin-resnet -p clshost-plugin-losses \
        --features "$plugin_features" >&2
    say "building the resnet plugin's parity tests with [$features] (release)"
    cargo test --release -p clshost-plugin-resnet --features "$features" --test integration \
        --no-run --message-format=json \
        | python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and msg["target"]["name"] == "integration":
        print(msg["executable"])
' >"$test_list"
fi
parity_test="$(tail -n 1 "$test_list" 2>/dev/null || true)"
[ -x "$parity_test" ] || { say "no parity test binary (run without --no-build)"; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$release/clshost" "$release/libclshost_plugin_resnet.so" \
    "$release/libclshost_plugin_losses.so" "$stage/"
cp "$parity_test" "$stage/integration"
for f in "$stage"/*; do
    strip --strip-debug "$f"
done
say "packing $(du -sh "$stage" | cut -f1) of stripped binaries with xz"
tar -C "$stage" -cf - . | xz -T0 -6 >"$out"
size=$(stat -c %s "$out")
mib=$(( (size + 1048575) / 1048576 ))
say "$out: $mib MiB ($size bytes)"
if [ "$mib" -gt "$limit_mib" ]; then
    say "over the limit of $limit_mib MiB: the device tool cannot carry it"
    exit 1
fi
relative="${out#"$root"/}"
echo "python3 -m tarfile -e $relative target/gpu-pack && scripts/gpu-check.sh --bin target/gpu-pack --parity-test target/gpu-pack/integration"
