"""How the data path scales with the datasets: prepare, degrade, a short train and evaluate at 1x, 4x, 16x.

    python bench/data_scale.py [--scales 1 4 16] [--count 4] [--size 128] [--patch 48] [--workers 2]

At each scale it writes stand-ins of every dataset the paper uses (``pip_model.data.datasets.standins``:
``count * scale`` images or pairs per dataset and split, in their published layouts), points
``prepare.datasets_root`` at them, and runs the real stage scripts one after the other, each
in its own process. It prints, per scale and stage, the wall time, the peak resident memory
of that stage's process and the disk its outputs add, and the throughput of the training
data path: patches/s that one DataLoader worker reads and cuts (``OnlinePairSampler.crops``,
real pairs mixed in) with the degradation on the CPU. Time should grow with the data, memory
stay flat, and the disk stay near the manifests' size (nothing is copied).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "degrade", "train", "evaluate")


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (0 if it does not exist)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def run_stage(command: list[str], cwd: Path) -> tuple[float, float]:
    """Runs one stage in its own process; returns (seconds, peak resident GiB of that process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}",
               MLFLOW_DISABLE_TELEMETRY="true")
    started = time.perf_counter()
    with (cwd / "stages.log").open("a") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command[:2])} failed; see {cwd / 'stages.log'}")
    return time.perf_counter() - started, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def loader_throughput(prepared: Path, patch: int, steps: int) -> float:
    """Patches/s that one worker produces: crops read and cut (real pairs mixed in) and degraded, on the CPU."""
    from pip_model.data.images import real_training_pairs, split_files
    from pip_model.data.sampling import OnlinePairSampler
    from pip_model.tasks import TASKS

    pairs = real_training_pairs(prepared)
    sampler = OnlinePairSampler(split_files(prepared, "train"), tasks=TASKS, patch=patch, batch_size=8, seed=0,
                                augment=True, real_pairs=pairs, real_share={task: 0.5 for task in pairs})
    sampler.batch(0)  # warm-up
    started = time.perf_counter()
    for step in range(1, steps + 1):
        sampler.batch(step)
    return steps * 8 / (time.perf_counter() - started)


def measure(scale: int, count: int, size: int, patch: int, workers: int, folder: Path) -> list[dict[str, object]]:
    from pip_model.data.datasets.standins import write_standins

    datasets = folder / "datasets"
    write_standins(datasets, count=count * scale, size=size, seed=scale)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(datasets_root=str(datasets), min_side=32)
    params["degrade"].update(benchmark_crop=min(64, size), crops_per_image=1)
    params["train"].update(steps=20, batch_size=8, patch=patch,
                           real_pairs={"derain": 0.5, "dehaze": 0.5, "deblur": 0.5, "lowlight": 0.5})
    params["train_run"].update(workers=workers, log_every=10, sample_every=1000, checkpoint_every=1000)
    params["evaluate"].update(classical=False, tile=256)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    python, stages = sys.executable, ROOT / "stages"
    commands = {
        "prepare": [python, str(stages / "prepare.py"), "--params", "params.yaml", "--out", "data/prepared"],
        "degrade": [python, str(stages / "degrade.py"), "--params", "params.yaml", "--prepared", "data/prepared",
                    "--benchmark", "data/benchmark", "--train-pairs", "data/train_pairs"],
        "train": [python, str(stages / "train.py"), "--params", "params.yaml", "--model", "pip_restormer_tiny",
                  "--prepared", "data/prepared", "--pairs", "data/train_pairs", "--out", "models/pip.pt",
                  "--curve", "results/curve.csv", "--checkpoint", "checkpoints/pip.ckpt"],
        "evaluate": [python, str(stages / "evaluate.py"), "--params", "params.yaml", "--benchmark", "data/benchmark",
                     "--models", "models/pip.pt", "--metrics", "results/metrics.json", "--per-image",
                     "results/per_image.csv", "--examples", "results/examples"],
    }
    rows = []
    dataset_bytes = folder_bytes(datasets)
    for stage in STAGES:
        before = folder_bytes(folder / "data") + folder_bytes(folder / "results")
        seconds, peak = run_stage(commands[stage], folder)
        added = folder_bytes(folder / "data") + folder_bytes(folder / "results") - before
        rows.append({"scale": scale, "stage": stage, "seconds": seconds, "peak_gib": peak, "added_mib": added / 2**20,
                     "datasets_mib": dataset_bytes / 2**20})
    rows.append({"scale": scale, "stage": "loader (1 worker)", "patches_per_s": loader_throughput(
        folder / "data" / "prepared", patch=patch, steps=10)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--count", type=int, default=4, help="images or pairs per dataset and split at 1x")
    parser.add_argument("--size", type=int, default=128, help="side of the stand-in images")
    parser.add_argument("--patch", type=int, default=48, help="side of the training crops")
    parser.add_argument("--workers", type=int, default=2, help="train_run.workers of the short training run")
    args = parser.parse_args()
    import pandas as pd

    rows = []
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as scratch:
            rows += measure(scale, args.count, args.size, args.patch, args.workers, Path(scratch))
        print(f"scale {scale}x done", flush=True)
    table = pd.DataFrame(rows)
    stages = table[table["stage"].isin(STAGES)]
    print(f"\nstand-ins of {args.size}x{args.size} px, {args.count} x scale images or pairs per dataset and split")
    print("wall time (s):\n" + stages.pivot(index="stage", columns="scale", values="seconds").loc[list(STAGES)]
          .round(1).to_string())
    print("peak memory of the stage's process (GiB):\n"
          + stages.pivot(index="stage", columns="scale", values="peak_gib").loc[list(STAGES)].round(2).to_string())
    print("disk added (MiB):\n"
          + stages.pivot(index="stage", columns="scale", values="added_mib").loc[list(STAGES)].round(1).to_string())
    print("datasets on disk (MiB): " + ", ".join(
        f"{scale}x {mib:.1f}" for scale, mib in stages.groupby("scale")["datasets_mib"].first().items()))
    loader = table[table["stage"] == "loader (1 worker)"]
    print(f"data path, one worker (patches/s, {args.patch} px, 8 per batch, half real pairs): " + ", ".join(
        f"{scale}x {rate:.0f}" for scale, rate in zip(loader["scale"], loader["patches_per_s"])))


if __name__ == "__main__":
    main()
