"""The GPU check in one call: everything a lent GPU should measure, within a time budget, into one JSON and one page.

    bash bench/device_check.sh                      # on the GPU machine: figures under $OUT (or ./device_check)
    bash bench/device_check.sh --out DIR --budget-s 480
    bash bench/device_check.sh --cpu --out DIR      # the dry run the test suite does: tiny models, a few steps

Sections, in order, each a subprocess with its own time limit (what is left of the budget, at most its cap), so one
that hangs or fails is recorded and the next still runs:

1. ``pytest -m gpu``: the GPU tests (tests/test_gpu.py), with their counts.
2. ``bench/gpu.py`` for ``pip_restormer`` and ``promptir`` at the paper's patch (128): the model alone and training
   end to end, bf16, with and without ``torch.compile``: patches/s, peak memory, the share of the time spent getting
   batches and GPU utilisation.
3. A 300-step training of ``pip_restormer`` in the 3task paper configuration (``params.yaml: protocols``, the pip
   method: batch 48 in 8 micro-batches of 6, 128x128, smooth-L1 + angle, its schedule) on stand-ins of the paper's
   datasets, real rain and haze pairs included: patches/s, data share, peak memory, the last loss.

Writes ``device_check.json`` (every figure, each section's status, command and seconds, and the tail of its output)
and ``device_check.md`` (the same as tables), and rewrites both after each section: a run cut short keeps what it
measured. Exits 1 when a section failed or ran out of time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULT_JSON, RESULT_MARKDOWN = "device_check.json", "device_check.md"
OUTPUT_TAIL = 4000  # characters of each section's output kept in the JSON


@dataclass(frozen=True)
class Budget:
    """What one run measures: the full GPU check, or the CPU dry run of the suite."""

    device: str
    models: tuple[str, ...]
    gpu_steps: int
    gpu_batch: int
    size: int
    workers: int
    train_model: str
    train_steps: int
    train_batch: int
    train_accumulate: int
    standins: int
    standin_size: int
    caps_s: dict[str, int] = field(default_factory=dict)


GPU = Budget(device="cuda", models=("pip_restormer", "promptir"), gpu_steps=20, gpu_batch=8, size=128, workers=6,
             train_model="pip_restormer", train_steps=300, train_batch=48, train_accumulate=8, standins=12,
             standin_size=192, caps_s={"pytest": 90, "gpu": 130, "train": 200})
CPU_DRY_RUN = Budget(device="cpu", models=("pip_restormer_tiny", "promptir_tiny"), gpu_steps=2, gpu_batch=2, size=32,
                     workers=0, train_model="pip_restormer_tiny", train_steps=2, train_batch=4, train_accumulate=2,
                     standins=2, standin_size=48, caps_s={"pytest": 120, "gpu": 120, "train": 120})


def paper_params(datasets: Path, budget: Budget) -> dict[str, Any]:
    """``params.yaml`` with the 3task protocol trained by the pip recipe (as ``flows.paper`` sets it, without its
    Prefect and DVC, which a GPU machine may lack), on
    ``datasets``, cut to the budget's steps and batch (the accumulation keeps micro-batches of the published size)."""
    from pip_model.config import read_params
    from pip_model.protocols import protocol_overrides

    params = read_params(ROOT / "params.yaml")
    overrides = protocol_overrides(ROOT, "3task", str(datasets), {
        # Stand-ins come without the published training lists; small ones need a smaller minimum side.
        "prepare.train_lists": {}, "prepare.min_side": min(128, budget.standin_size),
        "train.steps": budget.train_steps, "train.batch_size": budget.train_batch, "train.patch": budget.size,
        "train_run.accumulate": budget.train_accumulate, "train_run.workers": budget.workers,
        "train_run.compile": budget.device == "cuda", "train_run.log_every": max(budget.train_steps // 10, 1),
        "train_run.checkpoint_every": budget.train_steps + 1, "train_run.sample_every": budget.train_steps + 1})
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        params.setdefault(section, {})[name] = value
    return params


def paper_training(out: Path, budget: Budget) -> dict[str, Any]:
    """Section 3, run in its own process: stand-ins, ``prepare``, then ``train`` in the paper configuration."""
    import torch

    from pip_model.config import load_section
    from pip_model.data.corpus import PrepareConfig, prepare_corpus
    from pip_model.data.datasets.standins import write_standins
    from pip_model.engine.loop import train
    from pip_model.engine.recipes import load_train_config

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_standins(folder / "datasets", count=budget.standins, size=budget.standin_size)
        params_path = folder / "params.yaml"
        params_path.write_text(yaml.safe_dump(paper_params(folder / "datasets", budget)))
        prepared = folder / "prepared"
        prepare_corpus(load_section(PrepareConfig, "prepare", params_path), seed=0, out_dir=prepared,
                       progress=lambda message: None)
        config = replace(load_train_config(params_path), model=budget.train_model)
        target = torch.device(budget.device)
        if target.type == "cuda":
            torch.cuda.reset_peak_memory_stats(target)
        started = time.perf_counter()
        result = train(config, seed=0, device=budget.device, prepared_dir=prepared, pairs_dir=None,
                       model_path=folder / "model.pt", curve_path=folder / "curve.csv",
                       checkpoint_path=folder / "checkpoint.pt", progress=False)
        last = result.curve.iloc[-1]
        return {"model": config.model, "steps": config.steps, "batch_size": config.batch_size,
                "accumulate": config.accumulate, "patch": config.patch, "loss": config.loss, "lr": config.lr,
                "compile": config.compile, "workers": config.workers, "tasks": list(config.tasks),
                "seconds": time.perf_counter() - started, "patches_per_s": result.patches_per_s,
                "data_share": result.data_share, "last_loss": float(last["loss"]), "last_psnr": float(last["psnr"]),
                "peak_gib": torch.cuda.max_memory_allocated(target) / 2**30 if target.type == "cuda" else None}


@dataclass
class Section:
    """One step of the check: a command, its time cap, and how to read its figures afterwards."""

    name: str
    command: list[str]
    cap_s: int
    figures_file: Path | None = None


def sections(out: Path, budget: Budget, *, cpu: bool) -> list[Section]:
    python = sys.executable
    listed = [Section("pytest -m gpu", [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                                        str(ROOT / "tests" / "test_gpu.py")], budget.caps_s["pytest"])]
    for model in budget.models:
        figures = out / f"gpu_{model}.json"
        listed.append(Section(f"bench/gpu.py {model}", [
            python, str(ROOT / "bench" / "gpu.py"), "--model", model, "--steps", str(budget.gpu_steps), "--batch",
            str(budget.gpu_batch), "--size", str(budget.size), "--workers", str(budget.workers), "--device",
            budget.device, "--json", str(figures), *(["--no-compile"] if cpu else [])], budget.caps_s["gpu"], figures))
    figures = out / "paper_training.json"
    listed.append(Section("paper-config training", [
        python, str(Path(__file__).resolve()), "--section", "train", "--out", str(out), *(["--cpu"] if cpu else [])],
        budget.caps_s["train"], figures))
    return listed


def run_section(section: Section, *, limit_s: float) -> dict[str, Any]:
    """Runs one section for at most ``limit_s`` seconds; its status, seconds, output tail and figures."""
    started = time.perf_counter()
    record: dict[str, Any] = {"name": section.name, "command": section.command, "limit_s": round(limit_s)}
    if limit_s < 5:
        return {**record, "status": "skipped: the budget is spent", "seconds": 0.0}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                               os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(section.command, cwd=ROOT, env=environment, capture_output=True, text=True,
                              timeout=limit_s)
        output, status = done.stdout + done.stderr, "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired as stopped:
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
                         for part in (stopped.stdout, stopped.stderr))
        status = f"stopped after {limit_s:.0f} s"
    record.update(status=status, seconds=round(time.perf_counter() - started, 1), output_tail=output[-OUTPUT_TAIL:])
    if section.figures_file is not None and section.figures_file.is_file():
        record["figures"] = json.loads(section.figures_file.read_text())
    if section.name.startswith("pytest"):
        record["summary"] = next((line.strip("= ") for line in reversed(output.splitlines())
                                  if " passed" in line or " skipped" in line or " failed" in line
                                  or "no tests ran" in line), "")
    return record


def _number(value: Any, digits: int = 1) -> str:
    """A figure for a table: ``digits`` decimals for a float, nothing for None."""
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(results: dict[str, Any]) -> str:
    """The figures of a check as a page: each section's status, then the throughput and training tables."""
    lines = [f"# Device check, {results['started']}", "",
             f"{results['device']}, torch {results['torch']}, budget {results['budget_s']} s, "
             f"{results['seconds']:.0f} s used", "", "| section | status | seconds | note |", "| --- | --- | ---: | --- |"]
    for record in results["sections"]:
        lines.append(f"| {record['name']} | {record['status']} | {record['seconds']:.0f} | {record.get('summary', '')} |")
    rows = [(record["figures"], key, value) for record in results["sections"] if record["name"].startswith("bench/")
            and "figures" in record for key, value in record["figures"].items()
            if key.startswith(("model_only", "end_to_end"))]
    if rows:
        lines += ["", "## Throughput (bench/gpu.py)", "",
                  "| model | measure | patches/s | peak GiB | getting batches | GPU busy |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for figures, key, value in rows:
            share = value.get("data_share")
            lines.append(f"| {figures['model']} | {key.replace('_', ' ')} | {_number(value['patches_per_s'])} | "
                         f"{_number(value.get('peak_gib'), 2)} | {'' if share is None else f'{100 * share:.0f}%'} | "
                         f"{_number(value.get('gpu_busy_percent'), 0)} |")
        for figures, _, _ in rows[:1]:
            lines.append(f"\nbatch {figures['batch']}, {figures['size']}x{figures['size']}, {figures['steps']} steps, "
                         f"bf16 {figures['bf16']}, {figures['workers']} loader workers")
    training = next((record.get("figures") for record in results["sections"] if record["name"].startswith("paper")),
                    None)
    if training:
        lines += ["", "## Paper-config training on stand-ins", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {f'{value:.4g}' if isinstance(value, float) else _number(value)} |"
                  for key, value in training.items()]
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: dict[str, Any]) -> None:
    (out / RESULT_JSON).write_text(json.dumps(results, indent=2) + "\n")
    (out / RESULT_MARKDOWN).write_text(markdown(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device_check"),
                        help="folder for the results (default: $OUT, else ./device_check)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of all sections (default 480)")
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU with tiny models and a few steps")
    parser.add_argument("--section", choices=["train"], help=argparse.SUPPRESS)  # one section in its own process
    args = parser.parse_args(argv)
    budget = CPU_DRY_RUN if args.cpu else GPU
    args.out.mkdir(parents=True, exist_ok=True)
    if args.section == "train":
        (args.out / "paper_training.json").write_text(json.dumps(paper_training(args.out, budget), indent=2) + "\n")
        return 0

    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("device_check: no CUDA device here; --cpu dry-runs the check on the CPU", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if budget.device == "cuda" else "CPU (dry run)",
        "budget_s": args.budget_s, "seconds": 0.0, "sections": []}
    for section in sections(args.out, budget, cpu=args.cpu):
        left = args.budget_s - (time.perf_counter() - started)
        print(f"device_check: {section.name} (at most {min(left, section.cap_s):.0f} s)", flush=True)
        record = run_section(section, limit_s=min(left, section.cap_s))
        print(f"device_check: {section.name}: {record['status']} in {record['seconds']:.0f} s", flush=True)
        results["sections"].append(record)
        results["seconds"] = time.perf_counter() - started
        write_results(args.out, results)
    print(markdown(results), flush=True)
    print(f"device_check: wrote {args.out / RESULT_JSON} and {args.out / RESULT_MARKDOWN}", flush=True)
    return 0 if all(record["status"] == "passed" for record in results["sections"]) else 1


if __name__ == "__main__":
    sys.exit(main())
