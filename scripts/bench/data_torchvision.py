#!/usr/bin/env python3
"""torchvision baseline for `clshost bench data`: the same training pipeline on the same folder.

Pipeline: datasets.ImageFolder (PIL loader) -> transforms.v2 RandomResizedCrop(size, antialias)
-> RandomHorizontalFlip -> PILToTensor -> ToDtype(float32, scale) -> Normalize(ImageNet)
-> DataLoader(batch_size, shuffle=True, num_workers=N), which is what torchvision's classification
reference recipe runs by default (`--backend pil`; `--backend tensor` converts to a tensor first).

    # a synthetic ImageNet-like folder (JPEG, about 500x375), if you have no dataset at hand
    python3 scripts/bench/data_torchvision.py make-folder /tmp/bench-folder
    # torchvision
    python3 scripts/bench/data_torchvision.py run --root /tmp/bench-folder --workers 2 --json
    # clshost, same folder, same settings
    clshost bench data --root /tmp/bench-folder --workers 2 --json

Both print one JSON object with `images_per_second` (all epochs, wall clock) and
`epoch_images_per_second`.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def make_folder(args):
    from PIL import Image

    rng = np.random.default_rng(args.seed)
    root = Path(args.dir)
    for c in range(args.classes):
        d = root / f"class_{c:03d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(args.per_class):
            w = int(rng.integers(args.width - 100, args.width + 101))
            h = int(rng.integers(args.height - 75, args.height + 76))
            # Smooth structure (upsampled coarse noise) plus fine noise, so the JPEGs are about
            # the size of real photos rather than flat colour.
            coarse = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
            arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 21, size=(h, w, 3))
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(
                d / f"{i:05d}.jpg", quality=90)
    print(f"wrote {args.classes * args.per_class} images under {root}")


def run(args):
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    steps = []
    if args.backend == "tensor":
        steps.append(v2.PILToTensor())
    steps += [v2.RandomResizedCrop(args.size, antialias=True), v2.RandomHorizontalFlip()]
    if args.backend == "pil":
        steps.append(v2.PILToTensor())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    dataset = ImageFolder(args.root, transform=v2.Compose(steps))
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    torch.manual_seed(args.seed)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=workers)
    rates = []
    images = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        seen = 0
        for x, _y in loader:
            seen += x.shape[0]
        rates.append(seen / (time.perf_counter() - t0))
        images += seen
    seconds = time.perf_counter() - start
    report = {
        "root": args.root,
        "images": len(dataset),
        "classes": len(dataset.classes),
        "size": args.size,
        "batch": args.batch,
        "workers": workers,
        "epochs": args.epochs,
        "backend": args.backend,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "epoch_images_per_second": rates,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    if args.json:
        print(json.dumps(report))
    else:
        per_epoch = ", ".join(f"{r:.1f}" for r in rates)
        print(f"torchvision {report['torchvision']} ({args.backend} backend), {workers} workers: "
              f"{report['images_per_second']:.1f} images/s overall; per epoch: {per_epoch}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-folder", help="write a synthetic ImageFolder of JPEGs")
    m.add_argument("dir")
    m.add_argument("--classes", type=int, default=10)
    m.add_argument("--per-class", type=int, default=100)
    m.add_argument("--width", type=int, default=500)
    m.add_argument("--height", type=int, default=375)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="time the torchvision pipeline over a folder")
    r.add_argument("--root", required=True)
    r.add_argument("--size", type=int, default=224)
    r.add_argument("--batch", type=int, default=64)
    r.add_argument("--workers", type=int, default=None)
    r.add_argument("--epochs", type=int, default=2)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--backend", choices=["pil", "tensor"], default="pil")
    r.add_argument("--json", action="store_true")
    args = p.parse_args()
    {"make-folder": make_folder, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
