"""Parameter count, training-step time and inference time of registered models.

Training step: forward + L1 loss + backward + AdamW step, batch 2 at 128x128.
Inference: one 256x256 image under torch.no_grad(). Times are medians after warm-up.

    python bench/model_step.py pip_restormer_tiny pip_restormer
    python bench/model_step.py pip_restormer --published ../shared/reference/pip_universal

With ``--published``, the published PIP-Restormer (longzilicart/pip_universal, read from that
folder, never copied into the project) is timed in the same run, in the paper configuration,
and each model's times are printed as ratios of its times (ours / published).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from pip_model import build_model, list_models

PUBLISHED = "published PIP-Restormer"


def published_model(folder: Path) -> nn.Module:
    """The published network in the paper configuration (see ../shared/reference/README.md), called like ours."""
    sys.path.insert(0, str(folder))
    from net.PIP_Net import PIPNet_Restormer_onskip_inter

    network = PIPNet_Restormer_onskip_inter(prompt_interaction_mode="pip_cross_topm", degradation_num=5,
                                            low_prompt_dims=[64, 128, 256], low_prompt_sizes=[64, 32, 16],
                                            high_prompt_dim=1, use_detask_label=True)

    class Published(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.network(images, degradation_class=labels)[0]

    return Published()


def _median_seconds(run, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, *, repeats: int, warmup: int, device: str, published: Path | None = None) -> dict[str, float]:
    torch.manual_seed(0)
    model = (published_model(published) if name == PUBLISHED else build_model(name)).to(device)
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
    parser.add_argument("--published", type=Path, metavar="DIR",
                        help="folder holding the published net/ package (../shared/reference/pip_universal)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print(f"{'model':<26}{'parameters':>14}{'train step (s)':>16}{'inference (s)':>15}{'ratios':>16}")
    names = ([PUBLISHED] if args.published else []) + list(args.models)
    baseline = None
    for name in names:
        figures = bench(name, repeats=args.repeats, warmup=args.warmup, device=args.device, published=args.published)
        baseline = baseline or (figures if name == PUBLISHED else None)
        ratios = (f"{figures['train_step_s'] / baseline['train_step_s']:>8.2f}"
                  f"{figures['inference_s'] / baseline['inference_s']:>8.2f}" if baseline else "")
        print(f"{name:<26}{figures['parameters']:>14,}{figures['train_step_s']:>16.3f}{figures['inference_s']:>15.3f}"
              f"{ratios}", flush=True)


if __name__ == "__main__":
    main()
