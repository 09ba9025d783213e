#!/usr/bin/env python3
"""torchvision v2 baseline for the `augment` plugin's benchmark (plugins/augment/benches/augment.rs).

Times, on ONE thread and on a uint8 CHW tensor, each op on a 224x224 and a 500x375 image, and the
pipeline RandomResizedCrop(224) + RandomHorizontalFlip + TrivialAugmentWide on 500x375, so the
numbers compare directly with `cargo bench -p clshost-plugin-augment`. Run:

    python3 scripts/bench/augment_torchvision.py
"""

import time

import torch
from torchvision.transforms import v2


def image(width, height):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g)


def timeit(fn, img, min_time=1.0):
    """Median per-call time in microseconds over batches of calls lasting at least min_time."""
    for _ in range(5):
        fn(img)
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(samples) < 10:
        t0 = time.perf_counter()
        for _ in range(10):
            fn(img)
        samples.append((time.perf_counter() - t0) / 10)
    samples.sort()
    return samples[len(samples) // 2] * 1e6


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ops = {
        "random_resized_crop": v2.RandomResizedCrop(224, antialias=True),
        "resize_to_256": v2.Resize(256, antialias=True),
        "center_crop": v2.CenterCrop(224),
        "random_crop_padded": v2.RandomCrop(200, padding=4, padding_mode="reflect"),
        "horizontal_flip": v2.RandomHorizontalFlip(p=1.0),
        "vertical_flip": v2.RandomVerticalFlip(p=1.0),
        "color_jitter": v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        "random_grayscale": v2.RandomGrayscale(p=1.0),
        "gaussian_blur": v2.GaussianBlur(9, sigma=(0.1, 2.0)),
        "trivial_augment_wide": v2.TrivialAugmentWide(),
        "rand_augment": v2.RandAugment(),
        "auto_augment": v2.AutoAugment(),
        "aug_mix": v2.AugMix(),
    }
    print(f"torch {torch.__version__}, one thread; median time per call")
    for name, op in ops.items():
        for (w, h) in [(224, 224), (500, 375)]:
            print(f"{name:24s} {w}x{h}: {timeit(op, image(w, h)):10.1f} us")
    erase = v2.RandomErasing(p=1.0, value="random")
    for (w, h) in [(224, 224), (500, 375)]:
        t = torch.zeros(3, h, w)
        print(f"{'random_erasing':24s} {w}x{h}: {timeit(erase, t):10.1f} us")
    pipeline = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                           v2.TrivialAugmentWide()])
    print(f"{'pipeline_rrc_flip_ta':24s} 500x375: {timeit(pipeline, image(500, 375), 3.0):10.1f} us")


if __name__ == "__main__":
    main()
