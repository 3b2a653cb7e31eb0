"""DVC stage `train`: one registry model -> a model file, a training curve, an MLflow run.

Runs as one process, or under `torchrun --nproc_per_node N` with DDP (gloo on CPU,
NCCL on CUDA); only rank 0 writes and logs. A killed run resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from pip_model.config import BaseConfig, ConfigError, load_section, read_params
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.distributed import Distributed
from pip_model.engine.loop import train
from pip_model.engine.recipes import TrainConfig, load_train_config
from pip_model.engine.resume import resumable_state
from pip_model.networks.registry import PluginError, use_configured_plugins
from pip_model.tracking.lineage import dvc_input_tags, git_tags
from pip_model.tracking.pending import PENDING_SUFFIX
from pip_model.tracking.tracker import Tracker, TrackingConfig, TrackingUnavailable


def open_run(tracking: TrackingConfig, root: Path, config: TrainConfig, args: argparse.Namespace,
             interrupted: str | None, pending: Path) -> Tracker:
    """The interrupted training's MLflow run when it is still in the store, else a new run; what cannot be sent
    during the run is kept in ``pending``."""
    if interrupted:
        try:
            return Tracker.for_stage(tracking, root, run_id=interrupted, pending=pending)
        except TrackingUnavailable:
            pass  # gone (another store, or deleted): start a new run, which says why if the store is down
    return Tracker.for_stage(tracking, root, run_name=f"train-{config.model}", pending=pending,
                             tags={"stage": "train", "model": config.model, **git_tags(root),
                                   **dvc_input_tags(root, [str(args.prepared), str(args.pairs)])})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", help="registry name; overrides train.model")
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.add_argument("--curve", type=Path, required=True, help="training-curve CSV to write")
    parser.add_argument("--checkpoint", type=Path, help="resumable checkpoint (default: checkpoints/<model>.ckpt)")
    args = parser.parse_args()
    try:
        use_configured_plugins(args.params)  # before the train section, which names the models
        base = load_section(BaseConfig, "base", args.params)
        config = load_train_config(args.params)
        if args.model:
            config = dataclasses.replace(config, model=args.model)
        ranges = load_section(DegradeConfig, "degrade", args.params).ranges
        tracking = load_section(TrackingConfig, "tracking", args.params)
        device = base.torch_device()
    except (ConfigError, PluginError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 1

    distributed = Distributed.from_environment()
    if distributed.world_size > 1:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        device = distributed.cuda_device()
        torch.cuda.set_device(device)
    root = Path(args.params).resolve().parent
    checkpoint = args.checkpoint or root / "checkpoints" / f"{config.model}.ckpt"
    tracker, resume = None, None
    if distributed.is_main:
        # A resumed training continues the MLflow run of the interrupted one: one run, the whole curve.
        resume = resumable_state(checkpoint, config, base.seed)
        interrupted = (resume[0] or {}).get("run_id")
        try:
            tracker = open_run(tracking, root, config, args, interrupted,
                               pending=checkpoint.with_name(checkpoint.stem + PENDING_SUFFIX))
        except TrackingUnavailable as error:
            print(f"train: {error}", file=sys.stderr)
            return 2
        params = read_params(args.params)
        tracker.log_params({"base": params.get("base", {}), "train": dataclasses.asdict(config),
                            "degrade": params.get("degrade", {})})
        tracker.log_dataset(args.prepared / "manifest.csv", name=str(args.prepared), context="training",
                            digest=dvc_input_tags(root, [str(args.prepared)]).get(f"dvc.{args.prepared}.md5"))
        tracker.start_system_metrics(tracking.system_metrics_interval)
        print(f"train: {config.model} on {device} x{distributed.world_size}, MLflow run {tracker.run_id}", flush=True)

    result = train(config, seed=base.seed, device=device, prepared_dir=args.prepared, pairs_dir=args.pairs,
                   model_path=args.out, curve_path=args.curve, checkpoint_path=checkpoint, ranges=ranges,
                   tracker=tracker, distributed=distributed, resume=resume,
                   model_metadata=lambda: {"run_id": tracker.run_id if tracker else ""})
    if distributed.world_size > 1:
        dist.destroy_process_group()
    if tracker is None:
        return 0

    tracker.log_artifact(args.curve, "curves")
    # The model is registered by `evaluate`, with the sensor it was scored with bundled into it.
    final = result.curve.iloc[-1]
    tracker.log_metrics({"train/final_psnr": float(final["psnr"]), "train/final_loss": float(final["loss"])},
                        step=int(final["step"]))
    tracker.finish()
    print(f"train: {config.model} done: {int(final['step'])} steps, train PSNR {final['psnr']:.2f} dB, "
          f"{result.patches_per_s:.1f} patches/s", flush=True)
    if tracker.failures:
        print(f"train: {len(tracker.failures)} MLflow logging call(s) failed; the model file is complete:",
              file=sys.stderr)
        for failure in tracker.failures[:5]:
            print(f"  {failure}", file=sys.stderr)
    if tracker.unsent is not None:
        print(f"train: the metrics MLflow did not take are kept in {tracker.unsent}; send them with "
              f"`python -m pip_model sync {tracker.unsent.parent}` when the server answers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
