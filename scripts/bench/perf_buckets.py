#!/usr/bin/env python3
"""Where a training step's CPU time goes, by kind of kernel, from a `perf` profile.

Reads the output of

    perf record -F 499 -g -o step.data -- clshost bench train --model resnet50 \
        --device libtorch:cpu --size 64 --batch 32
    perf report -i step.data --no-children --sort dso,symbol --stdio -g none > step.txt

and prints the share of samples per kind: convolution (oneDNN's JIT kernels and ATen's
convolution code), batch norm, ReLU (and the comparison, copy and masked fill Burn's generic
ReLU backward uses), other element-wise kernels (residual adds, gradient sums, the optimizer),
pooling, OpenMP's thread pool, memory management, and the rest. One JSON object on stdout.

Usage: python3 scripts/bench/perf_buckets.py step.txt
"""

import json
import re
import sys

BUCKETS = [
    ("convolution", r"\[JIT\]|dnnl|mkldnn|convolution|conv_"),
    ("batch_norm", r"batch_norm"),
    ("relu", r"clamp_min|threshold|masked_fill|le_kernel|relu"),
    ("elementwise", r"add_kernel|mul_kernel|sub_kernel|div_|copy_kernel|fill_kernel|sqrt|AVX2::VectorizedLoop2d"),
    ("pooling", r"max_pool|avg_pool|mean|sum_kernel|reduce"),
    ("openmp", r"libgomp|GOMP"),
    ("memory", r"malloc|free|memmove|memset|page_fault|clear_page"),
]


def main() -> None:
    shares = {name: 0.0 for name, _ in BUCKETS}
    shares["other"] = 0.0
    line = re.compile(r"^\s+([0-9.]+)%\s+(.*?)\s+\[.\]\s+(.*)$")
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        for text in f:
            m = line.match(text)
            if not m:
                continue
            percent, dso, symbol = float(m.group(1)), m.group(2), m.group(3)
            subject = f"{dso} {symbol}"
            for name, pattern in BUCKETS:
                if re.search(pattern, subject):
                    shares[name] += percent
                    break
            else:
                shares["other"] += percent
    print(json.dumps({k: round(v, 1) for k, v in shares.items()}))


if __name__ == "__main__":
    main()
