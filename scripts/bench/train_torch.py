#!/usr/bin/env python3
"""PyTorch baseline for `clshost bench train`: the same training and evaluation steps.

A torchvision ResNet with `--classes` outputs, SGD (lr 0.01, momentum 0.9, weight decay 1e-4),
cross-entropy, one synthetic batch of uniform noise fed over and over; `--warmup` untimed steps,
then `--steps` timed training steps and as many evaluation forwards (`torch.no_grad`, eval mode),
each timed span closed by a device synchronization. fp32, with PyTorch's default TF32 settings
(reported in the output) unless `--no-tf32`; `--precision bf16` runs the forward passes under
`torch.autocast(dtype=torch.bfloat16)`, as `clshost bench train --precision bf16`. `--freeze` freezes parameters by name pattern as
`clshost bench train --freeze` does (`parameters` then counts the trainable ones). `--fused`
steps the optimizer with `torch.optim.SGD(fused=True)`, the in-place kernel clshost's LibTorch
backend runs, instead of PyTorch's default (a per-tensor loop on the CPU, `foreach` on CUDA);
`implementation` in the output says so. Prints the same JSON fields as

    clshost bench train --model resnet50 --device cuda --size 224 --batch 64 --json
    python3 scripts/bench/train_torch.py --model resnet50 --device cuda --size 224 --batch 64 --json
"""

import argparse
import fnmatch
import json
import time

import torch
import torchvision


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tf32", action="store_true", help="disable TF32 in cuDNN and matmul")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--fused", action="store_true", help="torch.optim.SGD(fused=True) instead of the default"
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: forward passes under torch.autocast with bfloat16",
    )
    p.add_argument(
        "--freeze",
        action="append",
        default=[],
        metavar="PATTERN",
        help="freeze parameters matching these fnmatch patterns, in order, `!` to keep some "
        "trainable (as `clshost bench train --freeze`)",
    )
    a = p.parse_args()

    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    model = getattr(torchvision.models, a.model)(num_classes=a.classes).to(device)
    for name, param in model.named_parameters():
        frozen = False
        for pattern in a.freeze:
            if fnmatch.fnmatchcase(name, pattern.removeprefix("!")):
                frozen = not pattern.startswith("!")
        param.requires_grad_(not frozen)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        trainable, lr=0.01, momentum=0.9, weight_decay=1e-4, fused=True if a.fused else None
    )
    g = torch.Generator().manual_seed(a.seed)
    images = (torch.rand(a.batch, 3, a.size, a.size, generator=g) * 2 - 1).to(device)
    labels = (torch.arange(a.batch) % a.classes).to(device)

    phases = {"forward": 0.0, "loss": 0.0, "backward": 0.0}

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def step(timed):
        t0 = time.perf_counter()
        with autocast():
            logits = model(images)
        t1 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t3 = time.perf_counter()
        if timed:
            phases["forward"] += t1 - t0
            phases["loss"] += t2 - t1
            phases["backward"] += t3 - t2
        return loss

    model.train()
    first = None
    for _ in range(a.warmup):
        first = step(False)
    sync(device)
    start = time.perf_counter()
    for _ in range(a.steps):
        last = step(True)
    sync(device)
    train = time.perf_counter() - start

    model.eval()
    with torch.no_grad(), autocast():
        model(images)
        sync(device)
        start = time.perf_counter()
        for _ in range(a.steps):
            model(images)
        sync(device)
    evaluation = time.perf_counter() - start

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = {
        "benchmark": "train",
        "implementation": f"pytorch {torch.__version__}" + (", fused SGD" if a.fused else ""),
        "model": a.model,
        "params": "()",
        "device": a.device,
        "device_name": name,
        "precision": a.precision,
        "parameters": sum(p.numel() for p in trainable),
        "size": a.size,
        "batch": a.batch,
        "classes": a.classes,
        "warmup": a.warmup,
        "steps": a.steps,
        "train_images_per_second": a.steps * a.batch / train,
        "train_ms_per_step": train * 1e3 / a.steps,
        "forward_ms": phases["forward"] * 1e3 / a.steps,
        "loss_ms": phases["loss"] * 1e3 / a.steps,
        "backward_ms": phases["backward"] * 1e3 / a.steps,
        "eval_images_per_second": a.steps * a.batch / evaluation,
        "eval_ms_per_batch": evaluation * 1e3 / a.steps,
        "first_loss": (first if first is not None else last).item(),
        "last_loss": last.item(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    if a.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
