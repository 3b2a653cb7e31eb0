"""Parameters, FLOPs, training-step time and inference time of registered models, against the machine's dense peak.

Training step: forward + L1 loss + backward + AdamW step, batch 2 at 128x128. Inference: one 256x256 image under
torch.no_grad(). A PIP model is given degradation class ids, a blind one (PromptIR) the images only.

FLOPs are counted once per model and phase with ``torch.utils.flop_counter.FlopCounterMode``, outside the timed loops:
it counts matrix products and convolutions (forward and backward), not elementwise work such as norms, activations
or the optimizer's update. The peak is a dense float32 product of two 2048x2048 matrices at the same thread count,
timed two ways, as ``torch.mm`` (MKL) and as a 1x1 convolution (oneDNN, the kernels of the models' convolutions); the
faster is the peak, so a model's share of it says how close its arithmetic comes to what the machine's best kernel
gets. The two differ: ``pip_model`` selects MKL's reproducible path (``MKL_CBWR=COMPATIBLE``, for bit-identical data
across CPUs), which on this project's AVX-512 CPU runs ``torch.mm`` and ``torch.bmm`` 2-3x slower than oneDNN's
convolution of the same product; the models' attention products pay that, their convolutions do not.

Times come from interleaved rounds: in each round the peak is measured and every model is timed once per phase, in
turn, so a drift of the machine's load hits all models alike. Each figure is printed as the median over the rounds
and its spread (min-max).

    python bench/model_step.py                                  # pip_restormer, promptir, adair and moce_ir
    python bench/model_step.py pip_restormer_tiny promptir_tiny --repeats 6
    python bench/model_step.py --published /tmp/pip_universal/src --json step.json

Our models run in the memory format the library trains and restores in (``--memory-format``, default
``channels_last``: ``train.channels_last`` and ``evaluate.channels_last``, under which inference keeps a model that
ranks scores, PIP, in the default format: ``for_inference``); the published network as its code runs, in the
default (contiguous) format. FFTs (AdaIR's frequency modules, MoCE-IR's experts) are not counted as FLOPs.

With ``--published DIR``, the published PIP-Restormer (longzilicart/pip_universal: DIR is the folder holding its
``net/`` package, the checkout's ``src``; read from there, never copied into the project) is timed in the same
rounds in the paper configuration, and each model's times are also given as ratios ours/published, one per round.
``--json PATH`` writes every figure, per-round times included.

``--kernels both`` prices the reproducible CPU kernels (``pip_model.cpu_kernels``: ATen and oneDNN at AVX2, MKL's
COMPATIBLE branch) against each library's own choice for this CPU (``PIP_CPU_KERNELS=native``): each round runs the
script twice more, once under each, in alternating order, and prints both times and their ratio per model and
phase. Without it, the script runs under what ``PIP_CPU_KERNELS`` says (reproducible by default).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from pip_model import build_model, cpu_kernels, list_models
from pip_model.evaluation.tiling import for_inference, memory_format_of
from pip_model.networks.registry import spec_of_model

PUBLISHED = "published PIP-Restormer"
PHASES = ("train_step", "inference")
DEFAULT_MODELS = ["pip_restormer", "promptir", "adair", "moce_ir"]


def published_model(folder: Path) -> nn.Module:
    """The published network in the paper configuration (see ../shared/reference/README.md), called like ours."""
    sys.path.insert(0, str(folder))
    # Its net/ imports clip at module level; CLIP is not installable offline and the paper configuration never calls it.
    sys.modules.setdefault("clip", types.ModuleType("clip"))
    from net.PIP_Net import PIPNet_Restormer_onskip_inter

    network = PIPNet_Restormer_onskip_inter(prompt_interaction_mode="pip_cross_topm", degradation_num=5,
                                            low_prompt_dims=[64, 128, 256], low_prompt_sizes=[64, 32, 16],
                                            high_prompt_dim=1, use_detask_label=True)

    class Published(nn.Module):
        uses_prompts = True

        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.network(images, degradation_class=labels)[0]

    return Published()


@dataclass
class Subject:
    """A model under test with its two calls (one training step, one inference, each on fixed inputs), and the same
    work as :func:`count_flops` can count it."""

    name: str
    parameters: int
    uses_prompts: bool
    calls: dict[str, Callable[[], None]]
    counted_calls: dict[str, Callable[[], None]]


def make_subject(name: str, *, device: str, batch: int = 2, train_size: int = 128, infer_size: int = 256,
                 published: Path | None = None, channels_last: bool = True) -> Subject:
    """Builds ``name`` (or the published network when ``name`` is :data:`PUBLISHED`) with its inputs and optimizer.

    Args:
        name: a registered restorer, or :data:`PUBLISHED`.
        device: where the model and its inputs live.
        batch: training batch size.
        train_size: side of the training crops.
        infer_size: side of the single inference image.
        published: folder holding the published ``net/`` package; needed for :data:`PUBLISHED` only.
        channels_last: our model's weights and inputs channels-last (never the published network's).

    Returns:
        The subject; its ``calls["train_step"]`` and ``calls["inference"]`` set the model's mode themselves.
        ``counted_calls["train_step"]`` leaves out AdamW's update (elementwise, which the counter does not count,
        and hundreds of small ops that would only slow it). ``counted_calls["inference"]`` runs the same forward
        with autograd on: under ``torch.no_grad()`` a view of a parameter (PIP's basic prompt, expanded to the
        batch) requires grad but has no grad_fn, and the module tracker inside ``FlopCounterMode`` fails on it.
        The forward's FLOPs are the same; nothing calls backward.
    """
    torch.manual_seed(0)
    model = (published_model(published) if name == PUBLISHED else build_model(name)).to(device)
    prompted = spec_of_model(model).uses_prompts
    images = torch.rand(batch, 3, train_size, train_size, device=device)
    labels = torch.arange(batch, device=device) % 5
    big = torch.rand(1, 3, infer_size, infer_size, device=device)
    inferring = model
    if channels_last and name != PUBLISHED:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
        # Inference in the layout evaluate and prompt-restore use: PIP keeps the default one (for_inference).
        inferring = for_inference(copy.deepcopy(model).to(memory_format=torch.contiguous_format))
        big = big.contiguous(memory_format=memory_format_of(inferring))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)

    def forward(inputs: torch.Tensor, classes: torch.Tensor, network: nn.Module = model) -> torch.Tensor:
        return network(inputs, classes) if prompted else network(inputs)

    def forward_backward() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = (forward(images, labels) - images).abs().mean()
        loss.backward()

    def train_step() -> None:
        forward_backward()
        optimizer.step()
        _synchronize(device)

    def inference_forward() -> None:
        inferring.eval()
        forward(big, labels[:1], inferring)
        _synchronize(device)

    inference = torch.no_grad()(inference_forward)
    return Subject(name=name, parameters=sum(p.numel() for p in model.parameters()), uses_prompts=prompted,
                   calls={"train_step": train_step, "inference": inference},
                   counted_calls={"train_step": forward_backward, "inference": inference_forward})


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def conv_backward_flops(grad_out_shape: list[int], x_shape: list[int], w_shape: list[int], _bias: Any, _stride: Any,
                        _padding: Any, _dilation: Any, transposed: bool, _output_padding: Any, _groups: int,
                        output_mask: list[bool], out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of ``aten.convolution_backward``: the input gradient and the weight gradient each cost what the forward
    convolution does, groups included.

    Torch's own formula (2.13) counts the weight gradient as a convolution over all input channels, ignoring groups,
    so a depthwise 3x3 conv's backward came out C + 1 times its forward instead of 2 times; Restormer's blocks are full
    of depthwise convs, and its training step read about 20 times its real FLOPs.
    """
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def count_flops(call: Callable[[], None]) -> int:
    """FLOPs of one ``call`` as ``FlopCounterMode`` counts them (matmuls and convolutions, forward and backward), with
    :func:`conv_backward_flops` for the convolutions' backward."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}) as c:
        call()
    return int(c.get_total_flops())


PEAK_KERNELS = ("mm", "conv1x1")


def dense_calls(*, size: int = 2048, device: str) -> dict[str, Callable[[], None]]:
    """The peak's yardsticks: one dense float32 product of two ``size`` x ``size`` matrices (2 size**3 FLOPs), as
    ``torch.mm`` and as a 1x1 convolution of ``size`` channels over ``size`` pixels (oneDNN on the CPU)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=generator).to(device) for _ in range(2))
    pixels, weight = a.T.reshape(1, size, size, 1).contiguous(), b.T.reshape(size, size, 1, 1).contiguous()

    def mm() -> None:
        torch.mm(a, b)
        _synchronize(device)

    def conv1x1() -> None:
        F.conv2d(pixels, weight)
        _synchronize(device)

    return {"mm": mm, "conv1x1": conv1x1}


def seconds(call: Callable[[], None]) -> float:
    """Wall time of one ``call``."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(names: list[str], *, repeats: int = 4, warmup: int = 1, device: str = "cpu", batch: int = 2,
            train_size: int = 128, infer_size: int = 256, peak_size: int = 2048, peak_calls: int = 5,
            published: Path | None = None, channels_last: bool = True) -> dict[str, Any]:
    """Counts and times ``names`` (and the published network first, with ``published``) in interleaved rounds.

    Args:
        names: registered restorers.
        repeats: rounds; each times every model once per phase and the peak ``peak_calls`` times.
        warmup: untimed calls of each model and phase before the rounds (the FLOP count's call comes on top).
        device: where everything runs.
        batch, train_size, infer_size: the training batch and crop side, the inference image side.
        peak_size, peak_calls: the side of the peak's matrices, and each kernel's calls per round (their median is the
            kernel's; the faster kernel's is the round's peak).
        published: folder holding the published ``net/`` package.
        channels_last: our models in the channels-last memory format (the published network never).

    Returns:
        Every figure, as :func:`main` writes it with ``--json``: when it started, the settings, ``peak`` (FLOPs of
        one call, seconds per round, FLOP/s median and spread) and ``models`` by name, each with ``parameters``,
        ``uses_prompts`` and per phase ``flops``, ``seconds`` (per round), ``median_s``, ``min_s``, ``max_s``,
        ``flop_per_s`` (FLOPs / median time), ``share_of_peak`` and, with ``published``, ``ratio_to_published``
        (per round, its median and spread).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    subjects = [make_subject(name, device=device, batch=batch, train_size=train_size, infer_size=infer_size,
                             published=published, channels_last=channels_last)
                for name in ([PUBLISHED] if published else []) + list(names)]
    peak_kernels = dense_calls(size=peak_size, device=device)
    peak_flops = count_flops(peak_kernels["mm"])
    flops = {subject.name: {phase: count_flops(subject.counted_calls[phase]) for phase in PHASES}
             for subject in subjects}
    for subject in subjects:
        for phase in PHASES:
            for _ in range(warmup):
                subject.calls[phase]()
    kernel_seconds: dict[str, list[float]] = {kernel: [] for kernel in PEAK_KERNELS}
    times: dict[str, dict[str, list[float]]] = {subject.name: {phase: [] for phase in PHASES} for subject in subjects}
    for _ in range(repeats):
        for kernel, call in peak_kernels.items():
            kernel_seconds[kernel].append(statistics.median(seconds(call) for _ in range(peak_calls)))
        for subject in subjects:
            for phase in PHASES:
                times[subject.name][phase].append(seconds(subject.calls[phase]))
    # Each round's peak is its faster kernel. The fastest round gives the highest FLOP/s: min and max of the rate
    # come from max and min of the time.
    peak_seconds = [min(times) for times in zip(*kernel_seconds.values(), strict=True)]
    peak = {"flops": peak_flops, "seconds": peak_seconds,
            "kernels": {kernel: {"seconds": times, "flop_per_s_median": peak_flops / statistics.median(times)}
                        for kernel, times in kernel_seconds.items()},
            "flop_per_s_median": peak_flops / statistics.median(peak_seconds),
            "flop_per_s_min": peak_flops / max(peak_seconds), "flop_per_s_max": peak_flops / min(peak_seconds)}
    models = {}
    for subject in subjects:
        figures: dict[str, Any] = {"parameters": subject.parameters, "uses_prompts": subject.uses_prompts}
        for phase in PHASES:
            round_times = times[subject.name][phase]
            summary = spread(round_times)
            flop_per_s = flops[subject.name][phase] / summary["median"]
            figures[phase] = {"flops": flops[subject.name][phase], "seconds": round_times,
                              **{f"{key}_s": value for key, value in summary.items()},
                              "flop_per_s": flop_per_s, "share_of_peak": flop_per_s / peak["flop_per_s_median"]}
            if published and subject.name != PUBLISHED:
                ratios = [ours / theirs for ours, theirs in zip(round_times, times[PUBLISHED][phase], strict=True)]
                figures[phase]["ratio_to_published"] = {"per_round": ratios, **spread(ratios)}
        models[subject.name] = figures
    return {"date": started, "torch": torch.__version__, "cpu_kernels": cpu_kernels.settings(),
            "cpu": cpu_kernels.machine()["cpu"], "device": device, "threads": torch.get_num_threads(),
            "memory_format": "channels_last" if channels_last else "contiguous",
            "settings": {"repeats": repeats, "warmup": warmup, "batch": batch, "train_size": train_size,
                         "infer_size": infer_size, "peak_size": peak_size, "peak_calls": peak_calls},
            "peak": peak, "published": PUBLISHED if published else None, "models": models}


def report(results: dict[str, Any]) -> str:
    """The figures of :func:`measure` as a table, one row per model and phase."""
    settings, peak = results["settings"], results["peak"]
    lines = [f"{results['date']}  torch {results['torch']}, device {results['device']}, {results['threads']} threads,"
             f" {settings['repeats']} interleaved rounds after {settings['warmup']} warm-up, ours "
             f"{results['memory_format']}",
             f"peak: float32 {settings['peak_size']}x{settings['peak_size']} product, "
             f"{peak['flop_per_s_median'] / 1e9:.1f} GFLOP/s median "
             f"({peak['flop_per_s_min'] / 1e9:.1f}-{peak['flop_per_s_max'] / 1e9:.1f}); "
             + ", ".join(f"{kernel} {figures['flop_per_s_median'] / 1e9:.1f}" for kernel, figures in
                         peak["kernels"].items()),
             f"train step: batch {settings['batch']}, {settings['train_size']}x{settings['train_size']}, L1, AdamW;"
             f" inference: 1x{settings['infer_size']}x{settings['infer_size']}",
             f"{'model':<25}{'parameters':>12} {'phase':<11}{'GFLOP':>9}{'median s':>10}{'min-max s':>15}"
             f"{'GFLOP/s':>9}{'of peak':>9}{'ours/published (min-max)':>27}"]
    for name, figures in results["models"].items():
        for phase in PHASES:
            row, first = figures[phase], phase == PHASES[0]
            ratio = row.get("ratio_to_published")
            ratio_text = f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else ""
            parameters = f"{figures['parameters']:,}" if first else ""
            times = f"{row['min_s']:.3f}-{row['max_s']:.3f}"
            lines.append(f"{name if first else '':<25}{parameters:>12} {phase:<11}{row['flops'] / 1e9:>9.1f}"
                         f"{row['median_s']:>10.3f}{times:>15}{row['flop_per_s'] / 1e9:>9.1f}"
                         f"{row['share_of_peak']:>9.1%}{ratio_text:>27}")
    return "\n".join(lines)


def compare_kernels(arguments: list[str], *, repeats: int) -> dict[str, Any]:
    """Runs this script ``repeats`` times under each kernel choice (``arguments`` and one round each time), in
    alternating order; returns the rounds' figures and, per model and phase, the reproducible/native time ratios."""
    rounds: dict[str, list[dict[str, Any]]] = {kernels: [] for kernels in cpu_kernels.MODES}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(repeats):
            order = cpu_kernels.MODES if round_index % 2 == 0 else cpu_kernels.MODES[::-1]
            for kernels in order:
                # A fresh process: the libraries read their variables once, before their first kernel.
                environment = {name: value for name, value in os.environ.items()
                               if name not in cpu_kernels.REPRODUCIBLE}
                out = Path(scratch) / f"{kernels}_{round_index}.json"
                subprocess.run([sys.executable, __file__, *arguments, "--repeats", "1", "--json", str(out)],
                               env={**environment, cpu_kernels.MODE_VARIABLE: kernels}, check=True,
                               stdout=subprocess.DEVNULL)
                rounds[kernels].append(json.loads(out.read_text()))
                print(f"model_step: round {round_index + 1}/{repeats} under {kernels} kernels done", flush=True)
    ratios: dict[str, dict[str, Any]] = {}
    for name in rounds["native"][0]["models"]:
        ratios[name] = {}
        for phase in PHASES:
            times = {kernels: [figures["models"][name][phase]["median_s"] for figures in rounds[kernels]]
                     for kernels in cpu_kernels.MODES}
            per_round = [ours / theirs for ours, theirs in zip(times["reproducible"], times["native"], strict=True)]
            ratios[name][phase] = {"seconds": times, "per_round": per_round, **spread(per_round)}
    return {"rounds": rounds, "ratio_reproducible_to_native": ratios,
            "kernels": {kernels: rounds[kernels][0]["cpu_kernels"] for kernels in cpu_kernels.MODES}}


def kernels_report(results: dict[str, Any]) -> str:
    """:func:`compare_kernels`' figures as a table, one row per model and phase."""
    used = results["kernels"]
    lines = [" against ".join(f"{kernels}: ATen {used[kernels]['aten']}, oneDNN {used[kernels]['onednn_max_isa']}, "
                              f"MKL {used[kernels]['mkl_cbwr']}" for kernels in cpu_kernels.MODES),
             f"{'model':<25} {'phase':<11}{'reproducible s':>16}{'native s':>10}{'ratio (min-max)':>22}"]
    for name, phases in results["ratio_reproducible_to_native"].items():
        for phase, figures in phases.items():
            lines.append(f"{name if phase == PHASES[0] else '':<25} {phase:<11}"
                         f"{statistics.median(figures['seconds']['reproducible']):>16.3f}"
                         f"{statistics.median(figures['seconds']['native']):>10.3f}"
                         f"{figures['median']:>11.2f} ({figures['min']:.2f}-{figures['max']:.2f})")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"registered restorers (default: {' '.join(DEFAULT_MODELS)}; choices: "
                             f"{', '.join(list_models('restorer'))})")
    parser.add_argument("--repeats", type=_positive, default=4, help="interleaved timed rounds (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per model and phase first (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=_positive, default=2, help="training batch size (default 2)")
    parser.add_argument("--train-size", type=_positive, default=128, help="side of the training crops (default 128)")
    parser.add_argument("--infer-size", type=_positive, default=256, help="side of the inference image (default 256)")
    parser.add_argument("--peak-size", type=_positive, default=2048, help="side of the peak's matrices (default 2048)")
    parser.add_argument("--published", type=Path, metavar="DIR",
                        help="folder holding the published net/ package (a pip_universal checkout's src)")
    parser.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                        help="our models' memory format (default channels_last, as the library trains and restores)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to this JSON file")
    parser.add_argument("--kernels", choices=["current", "both"], default="current",
                        help="both: time every round under the reproducible and the native CPU kernels, in fresh "
                             "processes, and print their ratio (default current: as PIP_CPU_KERNELS says)")
    args = parser.parse_args(argv)
    # Checked here: argparse checks an empty positional list against choices as a whole, and refuses it.
    if unknown := [name for name in args.models if name not in list_models("restorer")]:
        parser.error(f"unknown models {unknown}; choices: {', '.join(list_models('restorer'))}")
    args.models = args.models or DEFAULT_MODELS
    if args.kernels == "both":
        arguments = [*args.models, "--warmup", str(args.warmup), "--device", args.device, "--batch", str(args.batch),
                     "--train-size", str(args.train_size), "--infer-size", str(args.infer_size), "--peak-size",
                     str(args.peak_size), "--memory-format", args.memory_format]
        results = compare_kernels(arguments, repeats=args.repeats)
        print(kernels_report(results), flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        return
    results = measure(args.models, repeats=args.repeats, warmup=args.warmup, device=args.device, batch=args.batch,
                      train_size=args.train_size, infer_size=args.infer_size, peak_size=args.peak_size,
                      published=args.published, channels_last=args.memory_format == "channels_last")
    print(report(results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
