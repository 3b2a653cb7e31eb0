"""DVC stage `evaluate`: every trained model and the baselines on the benchmark -> metrics.

Writes `metrics.json` ({model: {task: {psnr, ssim}}}; a task on a test set outside the paper's tables has a key of
its own, `denoise_25@Urban100`), one summary file per model (mean PSNR and SSIM: what
`dvc metrics show` prints), a per-image CSV and restored
examples, logs the per-task metrics onto each model's MLflow training run, and registers each
trained model there with the sensor it was scored with bundled into it (what `mlflow models
serve` runs: a request names a prompt, and nothing it sends is loaded).

Besides the model files `train` writes, `--models` takes published checkpoints (the published PIP-Restormer's state
dict, PromptIR's released Lightning file), each row named by the registry name of the model it holds (`promptir`);
`--models promptir=model.ckpt` also checks that the file holds it. The paper flow's `--evaluate-only` runs this
script so, on the protocol's benchmark, without training.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from pip_model import cpu_kernels
from pip_model.apps.serving import ServedRestorer
from pip_model.config import BaseConfig, ConfigError, load_section
from pip_model.evaluation.benchmark import (
    CropError,
    EvaluateConfig,
    Evaluation,
    ModelSource,
    OnePassMemoryError,
    evaluate,
    load_benchmark,
    load_contenders,
    mean_scores,
    parameter_counts,
    prompt_contenders,
    run_metrics,
    with_experts,
)
from pip_model.evaluation.examples import write_examples
from pip_model.networks.checkpoints import load_model_file
from pip_model.networks.registry import (
    PluginError,
    distribution_of,
    loose_module_of,
    spec_of_model,
    use_configured_plugins,
)
from pip_model.tracking.lineage import dvc_input_tags
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable, registered_name


def register(tracker: Tracker, model: nn.Module, name: str, sensor: nn.Module | None, sensor_name: str,
             alias: str) -> None:
    """Logs ``model`` as a served restorer (with ``sensor`` inside it for task=auto) and points ``alias`` at it."""
    served = ServedRestorer(copy.deepcopy(model).cpu(), sensor=copy.deepcopy(sensor).cpu() if sensor else None,
                            sensor_name=sensor_name)
    example = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    spec = spec_of_model(model)
    example_task = "noise" if spec.uses_prompts else spec.tasks[0] if spec.call == "non_blind" else ""
    module = loose_module_of(spec)
    code = [] if not module else [str(Path(importlib.util.find_spec(module).origin))]  # a module beside params
    version = tracker.log_model(served.eval(), registered_name=registered_name(name), alias=alias,
                                input_example=example, params={"task": "auto", "sensor": sensor_name},
                                example_params={"task": example_task} if example_task else None,
                                requirements=[distribution] if (distribution := distribution_of(spec)) else [],
                                code=code)
    sensor_note = f", sensor {sensor_name} bundled" if sensor is not None else ", no sensor (task=auto refused)"
    print(f"evaluate: registered {registered_name(name)} v{version} @{alias}{sensor_note}" if version is not None
          else f"evaluate: {name} not registered in MLflow (logging failed)", flush=True)


def write_results(args: argparse.Namespace, result: Evaluation, swapped: Evaluation | None) -> None:
    """Writes the metrics, the per-model summaries, the per-image table, the examples (the prompt swaps' too) and
    the prompt swaps' metrics."""
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(result.metrics, indent=2) + "\n")
    if args.summary is not None:
        args.summary.mkdir(parents=True, exist_ok=True)
        for stale in args.summary.glob("*.json"):  # a model no longer evaluated leaves no row behind
            stale.unlink()
        for name, per_task in result.metrics.items():
            (args.summary / f"{name}.json").write_text(json.dumps(mean_scores(per_task), indent=2) + "\n")
    args.per_image.parent.mkdir(parents=True, exist_ok=True)
    result.per_image.to_csv(args.per_image, index=False)
    if args.examples.is_dir():
        shutil.rmtree(args.examples)  # a contender no longer evaluated leaves no example behind
    write_examples(args.examples, [*result.examples, *(swapped.examples if swapped else [])])
    table = pd.DataFrame({name: {task: values["psnr"] for task, values in tasks.items()}
                          for name, tasks in result.metrics.items()})
    print("evaluate: mean PSNR (dB) per task\n" + table.round(2).to_string())
    args.prompts.parent.mkdir(parents=True, exist_ok=True)
    args.prompts.write_text(json.dumps(swapped.metrics if swapped else {}, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--benchmark", type=Path, required=True)
    parser.add_argument("--models", type=ModelSource.parse, nargs="+", required=True, metavar="[NAME=]FILE",
                        help="model files written by `train`, or published checkpoints (PIP-Restormer, PromptIR, AdaIR, "
                             "MoCE-IR: bare or Lightning .ckpt); NAME=FILE checks the file holds the registry model NAME")
    parser.add_argument("--sensor", type=Path, help="a trained sensor's model file, for blind PIP")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON to write: PSNR/SSIM per model and task")
    parser.add_argument("--summary", type=Path,
                        help="folder to write: <model>.json with the mean PSNR and SSIM over the tasks")
    parser.add_argument("--per-image", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True)
    parser.add_argument("--parameters", type=Path,
                        help="JSON to write: each model's parameter count, and the task experts' sum (storage)")
    parser.add_argument("--prompts", type=Path, required=True,
                        help="JSON to write: the first PIP model under every fixed prompt, per task")
    args = parser.parse_args()
    try:
        use_configured_plugins(args.params)
        base = load_section(BaseConfig, "base", args.params)
        config = load_section(EvaluateConfig, "evaluate", args.params)
        tracking = load_section(TrackingConfig, "tracking", args.params)
        device = base.torch_device()
    except (ConfigError, PluginError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 1

    try:
        contenders, sensor = load_contenders(config, args.models, sensor_path=args.sensor, device=device)
    except (ValueError, FileNotFoundError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 1
    contenders = with_experts(contenders)
    if args.parameters is not None:
        args.parameters.parent.mkdir(parents=True, exist_ok=True)
        args.parameters.write_text(json.dumps(parameter_counts(contenders), indent=2) + "\n")
    sensor_name = load_model_file(args.sensor)[1]["model_name"] if sensor is not None else ""
    layout = ("channels-last (evaluate.channels_last) where it computes the same function" if config.channels_last
              else "default")
    print(f"evaluate: {len(contenders)} contenders on {device}, restoring in the {layout} memory format; "
          f"{cpu_kernels.describe(cpu_kernels.check())}", flush=True)
    pairs = load_benchmark(args.benchmark)
    prompted = next(((contender.name, contender.model) for contender in contenders
                     if contender.model is not None and spec_of_model(contender.model).uses_prompts), None)
    try:
        result = evaluate(pairs, contenders, config)
        # Each fixed prompt on every task: what a wrong or blended prompt costs, and each single prompt on
        # composites (none without a PIP model).
        swapped = evaluate(pairs, prompt_contenders(*prompted, config), config) if prompted else None
    except (OnePassMemoryError, CropError) as error:  # one pass too large for the device; an image too small
        print(f"evaluate: {error}", file=sys.stderr)
        return 1
    run_ids = {contender.name: contender.run_id for contender in contenders}

    write_results(args, result, swapped)
    if sensor is not None:  # its accuracy and decisions are score_sensor's results/sensor*.{json,csv}
        print(f"evaluate: blind rows (*_blind) use the sensor {args.sensor} ({sensor_name})")

    root = Path(args.params).resolve().parent
    benchmark_hash = dvc_input_tags(root, [str(args.benchmark)]).get(f"dvc.{args.benchmark}.md5")
    try:
        for name, per_task in result.metrics.items():
            run_id = run_ids.get(name) or None
            tracker = Tracker.for_stage(tracking, root, run_name=f"evaluate-{name}", run_id=run_id,
                                        tags={"stage": "evaluate", "model": name})
            tracker.log_dataset(args.benchmark / "manifest.csv", name=str(args.benchmark), context="evaluation",
                                digest=benchmark_hash)
            tracker.log_metrics(run_metrics(per_task))
            tracker.log_artifact(args.per_image, "evaluation")
            if (args.examples / name).is_dir():
                tracker.log_artifact(args.examples / name, "evaluation/examples")
            contender = next((c for c in contenders if c.name == name and c.model is not None and run_id), None)
            if contender is not None:
                register(tracker, contender.model, name, sensor, sensor_name, tracking.alias)
            if run_id is None:
                tracker.finish()
    except TrackingUnavailable as error:
        print(f"evaluate: results are written, but not logged to MLflow: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
