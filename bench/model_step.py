"""Parameter count, training-step time and inference time of registered models.

Training step: forward + L1 loss + backward + AdamW step, batch 2 at 128x128.
Inference: one 256x256 image under torch.no_grad(). Times are medians after warm-up.

    python bench/model_step.py pip_restormer_tiny pip_restormer
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pip_model import build_model, list_models


def _median_seconds(run, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, *, repeats: int, warmup: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(name).to(device)
    images = torch.rand(2, 3, 128, 128, device=device)
    labels = torch.tensor([0, 3], device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = (model(images, labels) - images).abs().mean()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    big = torch.rand(1, 3, 256, 256, device=device)

    @torch.no_grad()
    def infer() -> None:
        model(big, labels[:1])
        if device == "cuda":
            torch.cuda.synchronize()

    model.train()
    step = _median_seconds(train_step, repeats, warmup)
    model.eval()
    inference = _median_seconds(infer, repeats, warmup)
    return {"parameters": sum(p.numel() for p in model.parameters()), "train_step_s": step, "inference_s": inference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["pip_restormer_tiny", "pip_restormer"],
                        choices=list_models("restorer"), metavar="MODEL")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print(f"{'model':<22}{'parameters':>14}{'train step (s)':>16}{'inference (s)':>15}")
    for name in args.models:
        figures = bench(name, repeats=args.repeats, warmup=args.warmup, device=args.device)
        print(f"{name:<22}{figures['parameters']:>14,}{figures['train_step_s']:>16.3f}{figures['inference_s']:>15.3f}",
              flush=True)


if __name__ == "__main__":
    main()
