"""How far the pipeline's results move from one CPU to another, with the CPU kernels pinned and without.

Another CPU is emulated on this one through the math libraries' own switches (``pip_model.cpu_kernels.AVX2_CPU``:
what ATen, oneDNN, numpy and OpenBLAS find on a CPU whose widest vectors are AVX2's). For each kernel choice
(``reproducible``, the default pin; ``native``, each library's own path for the CPU it finds), the script runs, in
fresh processes on this CPU and on the emulated one: the ``degrade`` stage, a training of ``--model`` for ``--steps``
steps with the ``train`` recipe of params.yaml, and the evaluation of that model on the first benchmark. It prints,
per kernel choice, the benchmark files that differ between the two CPUs, the largest weight difference, and the
PSNR per task of the emulated CPU's model minus this one's: with the pin all zero, without it the tolerance a
result trained on another CPU must be read with.

    python bench/reproducible.py [--steps 1000] [--model pip_restormer_tiny] [--json FIGURES]

Needs ``data/prepared`` (``dvc repro prepare``). ``--steps 1000`` is the default pipeline's training; each
training takes what the train stage takes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pip_model import cpu_kernels  # after the checkout is importable

TRAIN_AND_EVALUATE = """
import dataclasses, json, sys
from pathlib import Path
from pip_model import cpu_kernels
from pip_model.config import load_section
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.loop import train
from pip_model.engine.recipes import load_train_config
from pip_model.evaluation.benchmark import EvaluateConfig, evaluate, load_benchmark, model_contender
model, steps, benchmark, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
config = dataclasses.replace(load_train_config("params.yaml"), model=model, steps=steps, checkpoint_every=10**9)
result = train(config, seed=0, device="cpu", prepared_dir=Path("data/prepared"), pairs_dir=None,
               model_path=out / "model.pt", curve_path=out / "curve.csv", checkpoint_path=out / "checkpoint.pt",
               ranges=load_section(DegradeConfig, "degrade", "params.yaml").ranges, progress=False)
evaluation = dataclasses.replace(load_section(EvaluateConfig, "evaluate", "params.yaml"), classical=False)
scores = evaluate(load_benchmark(benchmark), [model_contender(model, result.model, evaluation)], evaluation,
                  progress=lambda _: None).metrics[model]
(out / "scores.json").write_text(json.dumps({"scores": scores, "kernels": cpu_kernels.settings()}))
"""

CPUS = {"this CPU": {}, "an AVX2 CPU": cpu_kernels.AVX2_CPU}


def environment(kernels: str, cpu: dict[str, str]) -> dict[str, str]:
    """A fresh process's environment: this one's without the pin's variables, the kernel choice, the emulated CPU."""
    kept = {name: value for name, value in os.environ.items() if name not in cpu_kernels.REPRODUCIBLE}
    return {**kept, cpu_kernels.MODE_VARIABLE: kernels, **cpu}


def run(env: dict[str, str], *command: str) -> None:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"reproducible: {' '.join(command[:2])} failed:\n{done.stderr[-2000:]}")


def compare_benchmarks(first: Path, second: Path) -> dict[str, Any]:
    """How many files of two benchmark folders differ, and by how much (in 255ths)."""
    from pip_model.image_files import read_image

    files = sorted(path.relative_to(first) for path in first.rglob("*.png"))
    differing, largest = 0, 0.0
    for name in files:
        if (first / name).read_bytes() != (second / name).read_bytes():
            differing += 1
            largest = max(largest, float(np.abs(read_image(first / name).rgb - read_image(second / name).rgb).max()))
    return {"files": len(files), "files_differing": differing, "largest_difference_in_255ths": round(largest * 255, 3)}


def compare_models(first: Path, second: Path) -> dict[str, Any]:
    """Whether two trained models are the same bits, their largest weight difference, and the PSNR per task of the
    second minus the first on the same benchmark."""
    import torch

    weights = [torch.load(folder / "model.pt", weights_only=True)["state_dict"] for folder in (first, second)]
    largest = max(float((weights[0][key] - value).abs().max()) for key, value in weights[1].items())
    scores = [json.loads((folder / "scores.json").read_text())["scores"] for folder in (first, second)]
    gaps = {task: round(scores[1][task]["psnr"] - scores[0][task]["psnr"], 4) for task in scores[0]}
    return {"identical_weights": all(torch.equal(weights[0][key], value) for key, value in weights[1].items()),
            "largest_weight_difference": largest, "psnr_gap_per_task": gaps,
            "largest_psnr_gap": max(map(abs, gaps.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000, the pipeline's)")
    parser.add_argument("--model", default="pip_restormer_tiny")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if not (ROOT / "data" / "prepared" / "manifest.csv").is_file():
        sys.exit("reproducible: run `dvc repro prepare` first (data/prepared is missing)")
    figures: dict[str, Any] = {"machine": cpu_kernels.machine(), "steps": args.steps, "model": args.model}
    with tempfile.TemporaryDirectory() as scratch:
        for kernels in cpu_kernels.MODES:
            folders = {cpu: Path(scratch) / kernels / cpu.replace(" ", "_") for cpu in CPUS}
            for cpu, emulated in CPUS.items():
                print(f"reproducible: {kernels} kernels on {cpu}: degrade, train, evaluate", flush=True)
                env = environment(kernels, emulated)
                run(env, sys.executable, "stages/degrade.py", "--params", "params.yaml", "--prepared",
                    "data/prepared", "--benchmark", str(folders[cpu] / "benchmark"), "--train-pairs",
                    str(folders[cpu] / "pairs"))
                # Every model is scored on this CPU's benchmark: the gaps are the training's and evaluation's.
                run(env, sys.executable, "-c", TRAIN_AND_EVALUATE, args.model, str(args.steps),
                    str(folders["this CPU"] / "benchmark"), str(folders[cpu]))
            here, there = folders.values()
            figures[kernels] = {"benchmark": compare_benchmarks(here / "benchmark", there / "benchmark"),
                                "training": compare_models(here, there),
                                "kernels": {cpu: json.loads((folder / "scores.json").read_text())["kernels"]
                                            for cpu, folder in folders.items()}}
            training = figures[kernels]["training"]
            print(f"{kernels} kernels, an AVX2 CPU against this one: benchmark files differing "
                  f"{figures[kernels]['benchmark']['files_differing']}/{figures[kernels]['benchmark']['files']}; "
                  f"{args.steps} steps of {args.model}: identical weights {training['identical_weights']}, largest "
                  f"weight difference {training['largest_weight_difference']:.3g}, PSNR gap per task (dB) "
                  f"{json.dumps(training['psnr_gap_per_task'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
