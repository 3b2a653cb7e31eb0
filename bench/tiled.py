"""Tiled restoration of a 4000x3000 image on the CPU: wall time and peak memory.

    python bench/tiled.py [--model pip_restormer_tiny] [--tile 512] [--overlap 32]

Peak memory is the process's peak resident set size (the image, output buffers, the model
and the largest tile's activations).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from pip_model import build_model
from pip_model.evaluation.tiling import restore_tiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pip_restormer_tiny")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(args.model).eval()
    image = torch.rand(1, 3, args.height, args.width)
    degradation = torch.tensor([0]) if model.uses_prompts else None
    done = []
    start = time.perf_counter()
    restored = restore_tiled(model, image, degradation, tile=args.tile, overlap=args.overlap,
                             on_tile=lambda number, total: done.append(number) if number % 10 == 0 or number == total
                             else None)
    elapsed = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    print(f"{args.model}: {args.width}x{args.height}, tile {args.tile}, overlap {args.overlap}, "
          f"{len(done) and done[-1]} tiles, {torch.get_num_threads()} threads")
    print(f"time {elapsed:.1f} s, peak memory {peak_gib:.2f} GiB, output {tuple(restored.shape)}")


if __name__ == "__main__":
    main()
