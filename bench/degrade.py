"""Throughput of every synthetic degradation: patches/s at batch 64, 128x128.

    python bench/degrade.py [--batch 64] [--size 128] [--repeats 5]

Runs on the CPU, and on CUDA too when a GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pip_model.data.degradations import degrade
from pip_model.tasks import TASKS


def patches_per_second(task: str, *, batch: int, size: int, repeats: int, device: str) -> float:
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    degrade(images, task, seed=0)  # warm-up
    times = []
    for seed in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        degrade(images, task, seed=seed + 1)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch} at {args.size}x{args.size}")
    print(f"{'task':<12}" + "".join(f"{device + ' patches/s':>20}" for device in devices))
    for task in TASKS:
        rates = [patches_per_second(task, batch=args.batch, size=args.size, repeats=args.repeats, device=d) for d in devices]
        print(f"{task:<12}" + "".join(f"{rate:>20,.0f}" for rate in rates), flush=True)


if __name__ == "__main__":
    main()
