#!/usr/bin/env python3
"""clshost beside PyTorch on this machine: `clshost bench train` and `train_torch.py`, alternated.

On a shared machine, whose speed drifts by 20% within an hour, a figure means something only
beside the reference measured at the same moment. For each model, each round runs

    clshost bench train --model M --device D --size S --batch B --json
    python3 scripts/bench/train_torch.py --model M --device D' --size S --batch B --json

one after the other (`D'` is PyTorch's name for the device: `cpu` for `cpu` and `libtorch:cpu`,
`cuda[:N]` for `cuda[:N]` and `libtorch:cuda[:N]`), and takes the ratios of the round's
training and evaluation images per second. Prints one JSON object on stdout: per model, every
round's figures and ratios, and the median ratio over the rounds. Progress goes to stderr.

Run it with the python that has torch and torchvision (the LibTorch backend's, for example):

    target/libtorch/venv/bin/python scripts/bench/compare.py --models resnet18 resnet50 \
        --size 64 --batch 32 --rounds 3

Options after `--` go to both benchmarks (`-- --steps 20 --precision bf16`).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torch_device(device: str) -> str:
    """PyTorch's name for a clshost device."""
    name = device.removeprefix("libtorch:")
    if name == "cpu" or name.startswith("cuda"):
        return name
    sys.exit(
        f"compare: no PyTorch device for `{device}` "
        "(cpu, cuda[:N], libtorch:cpu or libtorch:cuda[:N])"
    )


def run_json(command: list[str]) -> dict:
    """Runs `command` and returns the JSON object it prints last."""
    print("compare: " + " ".join(command), file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"compare: `{command[0]}` failed ({done.returncode}):\n{done.stderr.strip()}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"compare: `{command[0]}` printed no JSON:\n{done.stdout}{done.stderr}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clshost", default=str(ROOT / "target" / "release" / "clshost"))
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("rest", nargs="*", help="after `--`: options for both benchmarks")
    args = p.parse_args()
    if args.rounds < 1:
        sys.exit("compare: --rounds must be at least 1")
    common = ["--size", str(args.size), "--batch", str(args.batch), "--json", *args.rest]
    reference = [
        sys.executable,
        str(ROOT / "scripts" / "bench" / "train_torch.py"),
        "--device",
        torch_device(args.device),
    ]
    report = {
        "benchmark": "compare",
        "device": args.device,
        "size": args.size,
        "batch": args.batch,
        "models": {},
    }
    for model in args.models:
        rounds = []
        for _ in range(args.rounds):
            ours = run_json(
                [args.clshost, "bench", "train", "-q", "--model", model,
                 "--device", args.device, *common]
            )
            theirs = run_json([*reference, "--model", model, *common])
            figures = {}
            for kind in ("train", "eval"):
                key = f"{kind}_images_per_second"
                figures[kind] = {
                    "clshost": round(ours[key], 2),
                    "pytorch": round(theirs[key], 2),
                    "ratio": round(ours[key] / theirs[key], 3),
                }
            rounds.append(figures)
        report["models"][model] = {
            "implementations": [ours["device_name"], theirs["implementation"]],
            "rounds": rounds,
            "median_ratio": {
                kind: statistics.median(r[kind]["ratio"] for r in rounds)
                for kind in ("train", "eval")
            },
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
