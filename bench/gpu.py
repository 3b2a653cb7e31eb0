"""GPU check in one script (under 5 minutes on a CUDA machine).

Prints the device, trains `pip_restormer` for a few bf16 steps at batch 8, 128x128, with
and without torch.compile (patches/s and peak GPU memory), and the GPU throughput of
every degradation at batch 64, 128x128.

    python bench/gpu.py [--steps 20] [--model pip_restormer]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pip_model import build_model, degrade, prompt_regularization
from pip_model.tasks import TASKS


def train_throughput(name: str, *, steps: int, batch: int, size: int, compile_model: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_model(name).cuda().to(memory_format=torch.channels_last)
    network = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    images = torch.rand(batch, 3, size, size, device="cuda").to(memory_format=torch.channels_last)
    labels = torch.arange(batch, device="cuda") % 5

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.l1_loss(network(images, labels).float(), images) + 0.1 * prompt_regularization(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - start)
    return rate, torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pip_restormer")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py needs a CUDA device")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16 supported: {torch.cuda.is_bf16_supported()}")
    for compile_model in (False, True):
        rate, peak = train_throughput(args.model, steps=args.steps, batch=args.batch, size=args.size,
                                      compile_model=compile_model)
        print(f"{args.model} bf16 batch {args.batch} {args.size}x{args.size} compile={compile_model}: "
              f"{rate:.1f} patches/s, peak {peak:.2f} GiB", flush=True)
    images = torch.rand(64, 3, 128, 128, device="cuda")
    for task in TASKS:
        degrade(images, task, seed=0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for seed in range(10):
            degrade(images, task, seed=seed + 1)
        torch.cuda.synchronize()
        print(f"degrade {task}: {640 / (time.perf_counter() - start):,.0f} patches/s on the GPU", flush=True)


if __name__ == "__main__":
    main()
