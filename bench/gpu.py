"""GPU check in one script (a few minutes on a CUDA machine; `--device cpu` dry-runs it here).

Three figures, from an upper bound down to what a run gets:

1. model: the network alone on one fixed batch (bf16, channels-last, with and without
   torch.compile): patches/s and peak memory. No data, so an upper bound.
2. data: the two halves of an online batch as training builds them (mixed tasks, batch and
   patch of the run): the CPU half that a DataLoader worker does (read, crop, augment, draw),
   in patches/s per worker, and the device half (copy, degrade), in patches/s.
3. end to end: ``pip_model.engine.loop.train`` for ``--steps`` steps with the real online sampler
   and ``--workers`` loader workers (under ``torchrun``, with DDP): patches/s, the share of
   the wall time spent getting batches, mean GPU utilisation and peak memory.

    python bench/gpu.py [--model pip_restormer] [--steps 60] [--batch 8] [--size 128] [--workers 6] [--json PATH]
    torchrun --nproc_per_node 4 bench/gpu.py --only end-to-end

``--json PATH`` also writes every figure (``bench/device_check.py`` collects them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pip_model import build_model, prompt_regularization
from pip_model.data.corpus import PrepareConfig, prepare_corpus
from pip_model.data.images import split_files
from pip_model.data.sampling import OnlinePairSampler
from pip_model.engine.distributed import Distributed
from pip_model.engine.loop import train
from pip_model.engine.recipes import TrainConfig
from pip_model.tasks import TASKS

SECTIONS = ("model", "data", "end-to-end")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak memory allocated on ``device`` since its last reset, in GiB; None off CUDA."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def figures_text(peak: float | None, busy: float | None = None) -> str:
    return (f", GPU busy {busy:.0f}%" if busy is not None else "") + (f", peak {peak:.2f} GiB" if peak is not None
                                                                        else "")


def model_throughput(name: str, *, steps: int, batch: int, size: int, device: torch.device,
                     compile_model: bool) -> tuple[float, float | None]:
    """Patches/s and peak memory of forward, backward and AdamW on one fixed batch."""
    torch.manual_seed(0)
    on_cuda = device.type == "cuda"
    model = build_model(name).to(device)
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    network = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    images = torch.rand(batch, 3, size, size, device=device)
    labels = torch.arange(batch, device=device) % 5

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
            loss = F.l1_loss(network(images, labels).float(), images) + 0.1 * prompt_regularization(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    synchronize(device)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch / (time.perf_counter() - started), peak_gib(device)


def data_throughput(prepared: Path, *, steps: int, batch: int, size: int, device: torch.device) -> tuple[float, float]:
    """Patches/s of the CPU half of online batches (one worker's) and of the device half."""
    sampler = OnlinePairSampler(split_files(prepared, "train"), tasks=TASKS, patch=size, batch_size=batch, seed=0,
                                device=device, augment=True)
    sampler.finish(sampler.crops(0))  # warm-up
    started = time.perf_counter()
    made = [sampler.crops(step) for step in range(1, steps + 1)]
    cpu_rate = steps * batch / (time.perf_counter() - started)
    if device.type == "cuda":
        made = [crops.pin_memory() for crops in made]
    synchronize(device)
    started = time.perf_counter()
    for crops in made:
        sampler.finish(crops)
    synchronize(device)
    return cpu_rate, steps * batch / (time.perf_counter() - started)


class Utilisation:
    """Mean GPU utilisation (per cent, as NVML reports it) sampled in the background."""

    def __init__(self, device: torch.device, interval: float = 0.2) -> None:
        self.device, self.interval, self.samples = device, interval, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(self.interval):
            self.samples.append(torch.cuda.utilization(self.device))

    def __enter__(self) -> Utilisation:
        if self.device.type == "cuda":
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def end_to_end(name: str, prepared: Path, *, steps: int, batch: int, size: int, workers: int, compile_model: bool,
               device: str, distributed: Distributed, folder: Path) -> tuple[float, float, float | None, float | None]:
    """(patches/s, data share, mean GPU utilisation, peak GiB) of a real training run (the last two None off CUDA)."""
    config = TrainConfig(model=name, steps=steps, batch_size=batch, patch=size, workers=workers, compile=compile_model,
                         warmup_steps=min(20, steps), log_every=max(steps // 5, 1), checkpoint_every=steps + 1,
                         sample_every=steps + 1)
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    with Utilisation(target) as utilisation:
        result = train(config, seed=0, device=device, prepared_dir=prepared, pairs_dir=None,
                       model_path=folder / "model.pt", curve_path=folder / "curve.csv",
                       checkpoint_path=folder / "checkpoint.pt", distributed=distributed, progress=False)
    return result.patches_per_s, result.data_share, utilisation.mean, peak_gib(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pip_restormer")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each section")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--size", type=int, default=128, help="patch side")
    parser.add_argument("--workers", type=int, default=6, help="DataLoader workers per rank (end to end)")
    parser.add_argument("--prepared", type=Path, help="a prepare stage output (default: the bundled photographs)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args()
    sections = args.only or SECTIONS
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA device here (use --device cpu for a dry run)")
    distributed = Distributed.from_environment()
    device = args.device
    if distributed.world_size > 1:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda":
        device = distributed.cuda_device()
        torch.cuda.set_device(device)
    target = torch.device(device)
    say = print if distributed.is_main else (lambda *a, **k: None)
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else "CPU"
    say(f"torch {torch.__version__}, {name} x{distributed.world_size}, model {args.model}, batch {args.batch}, "
        f"{args.size}x{args.size}", flush=True)
    compiles = (False,) if args.no_compile else (False, True)
    figures: dict[str, object] = {"torch": torch.__version__, "device": name, "world_size": distributed.world_size,
                                  "model": args.model, "batch": args.batch, "size": args.size, "steps": args.steps,
                                  "workers": args.workers, "bf16": target.type == "cuda"}

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        prepared = args.prepared
        if prepared is None and ("data" in sections or "end-to-end" in sections):
            prepared = folder / "prepared"
            prepare_corpus(PrepareConfig(), seed=0, out_dir=prepared, progress=lambda message: None)
        if "model" in sections and distributed.is_main:
            for compile_model in compiles:
                rate, peak = model_throughput(args.model, steps=args.steps, batch=args.batch, size=args.size,
                                              device=target, compile_model=compile_model)
                figures[f"model_only{'_compiled' if compile_model else ''}"] = {"patches_per_s": rate,
                                                                                 "peak_gib": peak}
                say(f"model only, compile={compile_model}: {rate:.1f} patches/s{figures_text(peak)}", flush=True)
        if "data" in sections and distributed.is_main:
            cpu_rate, device_rate = data_throughput(prepared, steps=args.steps, batch=args.batch, size=args.size,
                                                    device=target)
            figures["online_batches"] = {"cpu_half_patches_per_s_per_worker": cpu_rate,
                                         "device_half_patches_per_s": device_rate}
            say(f"online batches: CPU half {cpu_rate:.1f} patches/s per worker, device half {device_rate:.1f} "
                f"patches/s", flush=True)
        if "end-to-end" in sections:
            for compile_model in compiles:
                rate, share, busy, peak = end_to_end(args.model, prepared, steps=args.steps, batch=args.batch,
                                                     size=args.size, workers=args.workers, compile_model=compile_model,
                                                     device=device, distributed=distributed, folder=folder)
                figures[f"end_to_end{'_compiled' if compile_model else ''}"] = {
                    "patches_per_s": rate, "data_share": share, "gpu_busy_percent": busy, "peak_gib": peak}
                say(f"end to end, compile={compile_model}, {args.workers} workers/rank: {rate:.1f} patches/s, "
                    f"{100 * share:.0f}% of the time getting batches{figures_text(peak, busy)}", flush=True)
    if args.json and distributed.is_main:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if distributed.world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
