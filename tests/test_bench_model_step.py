"""bench/model_step.py on tiny models: FLOP counts that match a hand count, interleaved rounds, ratios and the JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for the published code: its layout (net/PIP_Net.py), its module-level `import clip`, its constructor's
# keywords and its forward's (restored, prompts) result, with one 3x3 conv as the network.
STAND_IN = '''
import clip
import torch


class PIPNet_Restormer_onskip_inter(torch.nn.Module):
    def __init__(self, *, prompt_interaction_mode, degradation_num, low_prompt_dims, low_prompt_sizes,
                 high_prompt_dim, use_detask_label):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, images, degradation_class):
        assert degradation_class.dtype == torch.long
        return self.conv(images), None
'''


@pytest.fixture(scope="module")
def model_step():
    """The script as a module (bench/ is no package); registered while it runs, as its dataclass needs."""
    spec = importlib.util.spec_from_file_location("bench_model_step", ROOT / "bench" / "model_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def one_thread():
    """Torch on one thread: tiny tensors gain nothing from a second, and on a busy 2-core machine OpenMP's waiting
    for it made the benchmark test take 22 s instead of 1 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def published(tmp_path, monkeypatch) -> Path:
    """A folder holding the stand-in ``net/`` package; sys.path and the imported modules are restored afterwards."""
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "__init__.py").write_text("")
    (tmp_path / "net" / "PIP_Net.py").write_text(STAND_IN)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("net", "net.PIP_Net", "clip"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in ("net", "net.PIP_Net", "clip"):  # monkeypatch then puts back any that were there before
        sys.modules.pop(name, None)


@pytest.mark.parametrize("groups", [1, 8])
def test_a_convs_flops_are_the_hand_count_forward_and_backward(model_step, groups):
    """A 3x3 conv of 8 to 16 channels on 2x8x10x10 (padding 1): 2 FLOPs per multiply-add, one multiply-add per output
    value and weight of its group; its backward computes the input and the weight gradient, each as many. A depthwise
    conv's backward too (torch's own formula counts its weight gradient as a dense conv's)."""
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=groups, bias=False)
    images = torch.rand(2, 8, 10, 10, requires_grad=True)
    forward = 2 * (2 * 16 * 10 * 10) * (8 // groups) * 3 * 3
    assert model_step.count_flops(lambda: conv(images)) == forward
    assert model_step.count_flops(lambda: conv(images).sum().backward()) == 3 * forward


def test_the_peak_is_one_dense_product_timed_as_a_matmul_and_as_a_1x1_convolution(model_step):
    calls = model_step.dense_calls(size=48, device="cpu")
    assert list(calls) == list(model_step.PEAK_KERNELS)
    assert all(model_step.count_flops(call) == 2 * 48**3 for call in calls.values())


def test_the_benchmark_counts_times_and_writes_every_figure(model_step, published, one_thread, tmp_path, capsys):
    out = tmp_path / "step.json"
    model_step.main(["pip_restormer_tiny", "promptir_tiny", "--repeats", "1", "--warmup", "0", "--batch", "1",
                     "--train-size", "8", "--infer-size", "8", "--peak-size", "32", "--published", str(published),
                     "--json", str(out)])
    results = json.loads(out.read_text())
    assert set(results) == {"date", "torch", "device", "threads", "memory_format", "settings", "peak", "published",
                            "models", "cpu", "cpu_kernels"}
    assert results["memory_format"] == "channels_last"
    assert results["settings"]["repeats"] == 1 and results["threads"] == 1
    peak = results["peak"]
    assert peak["flops"] == 2 * 32**3 and len(peak["seconds"]) == 1
    assert peak["seconds"][0] == min(peak["kernels"][kernel]["seconds"][0] for kernel in model_step.PEAK_KERNELS)
    assert list(results["models"]) == [model_step.PUBLISHED, "pip_restormer_tiny", "promptir_tiny"]
    published_model = results["models"][model_step.PUBLISHED]
    # The stand-in's one conv, 3 -> 3 channels, 3x3, on one 8x8 image; a training step runs it forward and backward,
    # where it computes the weight gradient only (the images need none).
    conv = 2 * 8 * 8 * 3 * 3 * 3 * 3
    assert published_model["inference"]["flops"] == conv and published_model["train_step"]["flops"] == 2 * conv
    assert published_model["parameters"] == 3 * 3 * 3 * 3 + 3
    for name in ("pip_restormer_tiny", "promptir_tiny"):
        figures = results["models"][name]
        assert figures["uses_prompts"] == (name == "pip_restormer_tiny")
        for phase in model_step.PHASES:
            row = figures[phase]
            assert {"flops", "seconds", "median_s", "min_s", "max_s", "flop_per_s", "share_of_peak",
                    "ratio_to_published"} <= set(row)
            assert row["flops"] > 0 and len(row["seconds"]) == 1 and row["share_of_peak"] > 0
            assert row["ratio_to_published"]["per_round"] == [row["seconds"][0] / published_model[phase]["seconds"][0]]
        assert figures["train_step"]["flops"] > figures["inference"]["flops"]
    assert "ratio_to_published" not in published_model["train_step"]
    printed = capsys.readouterr().out
    assert "promptir_tiny" in printed and "ours/published" in printed


@pytest.mark.integration
def test_kernels_both_times_each_round_under_both_kernel_choices_in_fresh_processes(model_step, tmp_path, capsys):
    """--kernels both: every round runs once under each choice, each process reports the kernels it really ran, and
    each ratio is that round's reproducible time over its native time."""
    out = tmp_path / "kernels.json"
    model_step.main(["pip_restormer_tiny", "--kernels", "both", "--repeats", "2", "--warmup", "0", "--train-size",
                     "16", "--infer-size", "16", "--peak-size", "64", "--batch", "1", "--json", str(out)])
    results = json.loads(out.read_text())
    assert results["kernels"]["reproducible"]["aten"] == "AVX2"
    assert results["kernels"]["native"]["mkl_cbwr"] == "AUTO"
    for phase in model_step.PHASES:
        figures = results["ratio_reproducible_to_native"]["pip_restormer_tiny"][phase]
        assert len(figures["per_round"]) == 2
        expected = [ours / theirs for ours, theirs in zip(figures["seconds"]["reproducible"],
                                                           figures["seconds"]["native"], strict=True)]
        assert figures["per_round"] == pytest.approx(expected)
    assert "ratio (min-max)" in capsys.readouterr().out
