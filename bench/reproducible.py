"""How far results move when Intel's MKL takes its CPU-specific kernels instead of its reproducible path.

``pip_model`` sets ``MKL_CBWR=COMPATIBLE`` (MKL's generic path, the same on every x86 CPU, and what it takes on
AMD ones). This benchmark reruns the ``degrade`` stage and a short training under ``COMPATIBLE`` and under
``AUTO`` (the kernels MKL picks for this CPU: what a run on an Intel machine got before), and prints how the two
differ: on an Intel machine that is the difference between it and an AMD one without the setting.

    python bench/reproducible.py [--steps 200] [--model pip_restormer_tiny]

Needs ``data/prepared`` (``dvc repro prepare``). Prints, for the benchmark: the files and pixels that differ and
by how much; for training: the largest weight difference and the PSNR per task of both models on the
``COMPATIBLE`` benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = """
import json, sys
from pathlib import Path
import dataclasses
from pip_model.config import load_section
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.loop import train
from pip_model.engine.recipes import TrainConfig, load_train_config
config = dataclasses.replace(load_train_config("params.yaml"), model=sys.argv[1], steps=int(sys.argv[2]),
                             checkpoint_every=10**9)
out = Path(sys.argv[3])
train(config, seed=0, device="cpu", prepared_dir=Path("data/prepared"), pairs_dir=None, model_path=out / "model.pt",
      curve_path=out / "curve.csv", checkpoint_path=out / "checkpoint.pt",
      ranges=load_section(DegradeConfig, "degrade", "params.yaml").ranges, progress=False)
"""


def run(mode: str, *command: str) -> None:
    env = {**os.environ, "MKL_CBWR": mode}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def compare_benchmarks(first: Path, second: Path) -> dict[str, float]:
    from pip_model.image_files import read_image

    files = sorted(path.relative_to(first) for path in first.rglob("*.png"))
    differing, pixels, changed, largest = 0, 0, 0, 0.0
    for name in files:
        a, b = read_image(first / name).rgb, read_image(second / name).rgb
        pixels += a.size
        if (first / name).read_bytes() != (second / name).read_bytes():
            differing += 1
            delta = np.abs(a - b)
            changed += int((delta > 0).sum())
            largest = max(largest, float(delta.max()))
    return {"files": len(files), "files_differing": differing, "values_differing_share": changed / max(pixels, 1),
            "largest_difference_in_255ths": round(largest * 255, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default="pip_restormer_tiny")
    args = parser.parse_args()
    if not (ROOT / "data" / "prepared" / "manifest.csv").is_file():
        sys.exit("reproducible: run `dvc repro prepare` first (data/prepared is missing)")
    modes = ("COMPATIBLE", "AUTO")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for mode in modes:
            run(mode, sys.executable, "stages/degrade.py", "--params", "params.yaml", "--prepared", "data/prepared",
                "--benchmark", str(work / mode / "benchmark"), "--train-pairs", str(work / mode / "pairs"))
        figures = {"benchmark": compare_benchmarks(work / modes[0] / "benchmark", work / modes[1] / "benchmark")}
        print(f"degrade, MKL_CBWR COMPATIBLE against AUTO: {json.dumps(figures['benchmark'])}", flush=True)
        for mode in modes:
            run(mode, sys.executable, "-c", TRAIN, args.model, str(args.steps), str(work / mode / "train"))

        import torch

        from pip_model.evaluation.benchmark import EvaluateConfig, evaluate, load_benchmark, model_contender
        from pip_model.networks.checkpoints import load_model_file

        models = {mode: load_model_file(work / mode / "train" / "model.pt")[0] for mode in modes}
        weights = max(float((models[modes[0]].state_dict()[key] - value).abs().max())
                      for key, value in models[modes[1]].state_dict().items())
        pairs = load_benchmark(work / modes[0] / "benchmark")
        config = EvaluateConfig(classical=False)
        scores = {mode: evaluate(pairs, [model_contender(mode, model, config)], config, progress=lambda _: None)
                  .metrics[mode] for mode, model in models.items()}
        gaps = {task: round(scores[modes[1]][task]["psnr"] - scores[modes[0]][task]["psnr"], 4)
                for task in scores[modes[0]]}
        figures["training"] = {"steps": args.steps, "largest_weight_difference": weights,
                               "psnr_auto_minus_compatible": gaps, "largest_psnr_gap": max(map(abs, gaps.values()))}
        torch.set_printoptions(precision=6)
        print(f"train {args.model} for {args.steps} steps, AUTO minus COMPATIBLE: largest weight difference "
              f"{weights:.3g}; PSNR per task (dB) {json.dumps(gaps)}")


if __name__ == "__main__":
    main()
