"""Evaluation: tiled restoration, Kornia metrics, classical baselines and the evaluate stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kornia
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from pip_model import build_model, degrade
from pip_model.apps.report import composite_table, paper_table, prompt_cost_table
from pip_model.data.degradations import DegradationRanges
from pip_model.data.degradations.blur import BlurRanges, estimate_motion_kernel
from pip_model.data.images import to_array, to_tensor
from pip_model.data.pairs import DegradeConfig, build_benchmark
from pip_model.evaluation.benchmark import (
    Contender,
    CropError,
    EvaluateConfig,
    OnePassMemoryError,
    baseline_contenders,
    evaluate,
    load_benchmark,
    load_contenders,
    model_contender,
    prompt_contenders,
    run_metrics,
    summarise,
)
from pip_model.evaluation.classical import classical_restore
from pip_model.evaluation.metrics import image_metrics
from pip_model.evaluation.sensor_report import sensor_report
from pip_model.evaluation.tiling import for_inference, memory_format_of, restore_tiled, tile_windows
from pip_model.image_files import read_image, write_png
from pip_model.networks.checkpoints import save_model_file
from pip_model.networks.registry import spec_of_model
from pip_model.tasks import PAPER_CLASSES, TASKS
from tests.helpers.models import randomise_output
from tests.helpers.stages import QUIET, stage_environment

ROOT = Path(__file__).resolve().parents[1]


class LocalConv(nn.Module):
    """A purely local restorer (receptive field 5x5), so tiles can match the whole image exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        return images + self.body(images)


def test_tiles_cover_the_image_and_end_flush():
    windows = list(tile_windows(300, 500, 128, 32))
    covered = torch.zeros(300, 500)
    for top, left in windows:
        covered[top : top + 128, left : left + 128] = 1
    assert covered.all() and max(t for t, _ in windows) == 300 - 128 and max(l for _, l in windows) == 500 - 128


def _near_inner_tile_edges(height: int, width: int, tile: int, overlap: int, radius: int) -> torch.Tensor:
    """Pixels whose value some tile computes within ``radius`` of one of its edges inside the image."""
    near = torch.zeros(height, width, dtype=torch.bool)
    for top, left in tile_windows(height, width, tile, overlap):
        bottom, right = min(top + tile, height), min(left + tile, width)
        if top > 0:
            near[top : top + radius, left:right] = True
        if bottom < height:
            near[bottom - radius : bottom, left:right] = True
        if left > 0:
            near[top:bottom, left : left + radius] = True
        if right < width:
            near[top:bottom, right - radius : right] = True
    return near


@torch.no_grad()
def test_tiled_equals_untiled_for_a_local_model_away_from_tile_edges():
    torch.manual_seed(0)
    model, image = LocalConv().eval(), torch.rand(1, 3, 150, 230)
    tiled = restore_tiled(model, image, None, tile=64, overlap=16, tile_batch=1)
    full = model(image)
    # The model sees 2 pixels around each output pixel: a tile computes every pixel exactly except within 2 pixels
    # of its edges inside the image. Blending exact values from several tiles must give the exact value.
    near = _near_inner_tile_edges(150, 230, tile=64, overlap=16, radius=2)
    error = (tiled - full).abs().amax(dim=1)[0]
    assert error[~near].max() < 1e-6
    # Tiles restored five at a time blend to the same image as one at a time.
    torch.testing.assert_close(restore_tiled(model, image, None, tile=64, overlap=16, tile_batch=5), tiled)
    # Tiling does show where the mask says (so the check above is not vacuous), and only by a little.
    assert 1e-3 < error[near].max() < 0.05
    assert near.float().mean() < 0.25


@torch.no_grad()
def test_tiled_and_untiled_agree_for_pip_restormer_tiny():
    torch.manual_seed(0)
    model = build_model("pip_restormer_tiny").eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)  # a non-identity network
    clean = F.interpolate(torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255,
                          size=(192, 256), mode="area")
    label = torch.tensor([0])
    tiled = restore_tiled(model, clean, label, tile=128, overlap=32)
    full = model(clean, label)
    inner = (tiled - full)[..., 16:-16, 16:-16].abs()
    # Restormer's channel attention and PIP's prompt see the whole input, so tiles differ a little.
    assert inner.mean() < 0.02 and inner.mean() < 0.25 * (full - clean).abs().mean()


@torch.no_grad()
@pytest.mark.parametrize("name", ["pip_restormer_tiny", "promptir_tiny"])
def test_a_channels_last_model_restores_what_the_default_layout_does_tiled_or_not(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    torch.nn.init.normal_(model.output.weight, std=0.02)  # a non-identity network
    image, label = torch.rand(1, 3, 150, 100), torch.tensor([2])
    expected = {tile: restore_tiled(model, image, label, tile=tile, overlap=16) for tile in (0, 64)}
    assert memory_format_of(model) == torch.contiguous_format
    fast = for_inference(model)
    # PIP ranks scores: its published near-ties hold only in the default layout (tests/test_reference.py).
    wanted_format = torch.contiguous_format if spec_of_model(model).uses_prompts else torch.channels_last
    assert fast is model and memory_format_of(model) == wanted_format
    for tile, wanted in expected.items():
        restored = restore_tiled(model, image, label, tile=tile, overlap=16)
        assert restored.is_contiguous()  # callers get the default layout back
        torch.testing.assert_close(restored, wanted, rtol=0, atol=1e-5)


def test_metrics_are_kornias_on_rgb_or_y():
    clean = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    noisy = (clean + 0.05 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    psnr, ssim = image_metrics(noisy, clean)
    assert psnr == pytest.approx(float(kornia.metrics.psnr(noisy, clean, 1.0)))
    assert ssim == pytest.approx(float(kornia.metrics.ssim(noisy, clean, 11).mean()))
    assert image_metrics(clean, clean)[1] == pytest.approx(1.0, abs=1e-4)
    # Y of ITU-R BT.601 (what Kornia's YCbCr uses), then PSNR on that one channel.
    luma = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    y_noisy, y_clean = (noisy * luma).sum(dim=1), (clean * luma).sum(dim=1)
    y_psnr = float(10 * torch.log10(1 / (y_noisy - y_clean).pow(2).mean()))
    assert image_metrics(noisy, clean, y_channel=True)[0] == pytest.approx(y_psnr, abs=1e-3)
    assert abs(y_psnr - psnr) > 0.5


def test_paper_metrics_are_scikit_images_at_their_defaults():
    """The published test code's numbers: scikit-image PSNR and SSIM (7x7 uniform window) on RGB in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    clean = _photo_crop()
    noisy, _ = degrade(clean, "denoise_25", seed=0)
    psnr, ssim = image_metrics(noisy, clean, metrics="paper")
    expected_clean, expected_noisy = (to_array(image[0]).astype("float64") for image in (clean, noisy))
    assert psnr == pytest.approx(peak_signal_noise_ratio(expected_clean, expected_noisy, data_range=1), abs=1e-4)
    assert ssim == pytest.approx(structural_similarity(expected_clean, expected_noisy, data_range=1, channel_axis=-1),
                                 abs=1e-4)
    # Same PSNR formula as Kornia's; a different SSIM window, so a different SSIM.
    kornia_psnr, kornia_ssim = image_metrics(noisy, clean)
    assert psnr == pytest.approx(kornia_psnr, abs=1e-3) and abs(ssim - kornia_ssim) > 0.002


def _photo_crop() -> torch.Tensor:
    image = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    return image[..., 60:188, 150:278]


@pytest.mark.parametrize("task", ["denoise_25", "dehaze", "lowlight"])
def test_classical_restorers_improve_on_their_degradation(task):
    clean = _photo_crop()
    degraded, records = degrade(clean, task, seed=0)
    restored = to_tensor(classical_restore(to_array(degraded[0]), task))[None]
    assert image_metrics(restored, clean)[0] > image_metrics(degraded, clean)[0] + 1.0


def test_classical_deblur_does_not_ring_from_the_image_borders():
    """Richardson-Lucy on an image extended by reflection: the 8-px frame is restored about as well as the
    interior (zero padding made its error 4x the interior's)."""
    clean = _photo_crop()
    blurred, _ = degrade(clean, "deblur", seed=1, ranges=DegradationRanges(blur=BlurRanges(kernel=(5, 11))))
    error = (to_tensor(classical_restore(to_array(blurred[0]), "deblur")) - clean[0]).abs().mean(dim=0)
    interior = torch.zeros_like(error, dtype=torch.bool)
    interior[8:-8, 8:-8] = True
    assert error[~interior].mean() < 1.5 * error[interior].mean()


def test_motion_kernel_estimate_is_a_normalised_odd_kernel():
    degraded, _ = degrade(_photo_crop(), "deblur", seed=0)
    kernel = estimate_motion_kernel(to_array(degraded[0]))
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-4)


def test_summary_and_run_metrics():
    per_image = pd.DataFrame({"model": ["m", "m", "m"], "task": ["derain", "derain", "dehaze"], "id": list("abc"),
                              "source": ["synthetic"] * 3, "psnr": [20.0, 22.0, 30.0], "ssim": [0.5, 0.7, 0.9]})
    summary = summarise(per_image)
    assert summary == {"m": {"derain": {"psnr": 21.0, "ssim": 0.6}, "dehaze": {"psnr": 30.0, "ssim": 0.9}}}
    flat = run_metrics(summary["m"])
    assert flat["eval/derain/psnr"] == 21.0 and flat["eval/mean/psnr"] == 25.5
    assert flat["eval/mean/ssim"] == pytest.approx(0.75) and set(flat) == {
        f"eval/{task}/{name}" for task in ("derain", "dehaze", "mean") for name in ("psnr", "ssim")}


@pytest.mark.integration
def test_evaluate_stage_writes_every_row(benchmark_48, tmp_path):
    torch.manual_seed(0)
    models = {"pip_nafnet_tiny": randomise_output(build_model("pip_nafnet_tiny")),
              "nafnet_tiny": build_model("nafnet_tiny")}
    for name, model in models.items():
        save_model_file(tmp_path / "models" / f"{name}.pt", model, model_name=name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", "params.yaml",
                    "--benchmark", str(benchmark_48), "--models", "models/pip_nafnet_tiny.pt", "models/nafnet_tiny.pt",
                    "--metrics", "metrics.json", "--per-image", "per_image.csv", "--examples", "examples",
                    "--prompts", "prompts.json"],
                   cwd=tmp_path, env=stage_environment(tmp_path), check=True, capture_output=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"input", "classical", "pip_nafnet_tiny", "nafnet_tiny"}
    for name, rows in metrics.items():
        # The PIP model was built with the paper's five classes: it has no prompt for snow or JPEG, and is not
        # scored on them; the others restore every task.
        unscored = {"desnow", "dejpeg"} if name == "pip_nafnet_tiny" else set()
        expected = set(TASKS) - unscored
        assert set(rows) == expected and all(set(v) == {"psnr", "ssim"} for v in rows.values())
    # A new network is the identity, so it scores exactly like the input; a random one does not.
    assert metrics["nafnet_tiny"] == metrics["input"]
    assert metrics["pip_nafnet_tiny"]["denoise_25"]["psnr"] != metrics["input"]["denoise_25"]["psnr"]
    assert (tmp_path / "examples" / "classical").is_dir()
    # The PIP model under each fixed prompt: its true-prompt column is its metrics row.
    prompts = json.loads((tmp_path / "prompts.json").read_text())
    assert prompts["pip_nafnet_tiny@rain"]["derain"] == metrics["pip_nafnet_tiny"]["derain"]
    assert prompts["pip_nafnet_tiny@haze"]["derain"] != metrics["pip_nafnet_tiny"]["derain"]
    assert set(prompts) == {f"pip_nafnet_tiny@{name}" for name in (*PAPER_CLASSES, "uniform")}
    # Without a PIP model there is no prompt to vary, and the stage still writes its declared output.
    subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", "params.yaml",
                    "--benchmark", str(benchmark_48), "--models", "models/nafnet_tiny.pt", "--metrics", "plain.json",
                    "--per-image", "plain.csv", "--examples", "plain", "--prompts", "plain_prompts.json"],
                   cwd=tmp_path, env=stage_environment(tmp_path), check=True, capture_output=True)
    assert json.loads((tmp_path / "plain_prompts.json").read_text()) == {}

    # Every contender on every benchmark pair it covers, one row each, and metrics.json holds their per-task means.
    per_image = pd.read_csv(tmp_path / "per_image.csv")
    pairs = pd.read_csv(benchmark_48 / "manifest.csv")
    for name in metrics:
        covered = pairs[pairs["task"].isin(metrics[name])]
        assert sorted(per_image.loc[per_image["model"] == name, "id"]) == sorted(covered["id"])
    assert len(per_image) == 3 * len(pairs) + len(pairs[~pairs["task"].isin(["desnow", "dejpeg"])])
    means = per_image.groupby(["model", "task"])[["psnr", "ssim"]].mean()
    for (name, task), values in means.iterrows():
        assert metrics[name][task] == pytest.approx({"psnr": values["psnr"], "ssim": values["ssim"]}, abs=1e-4)
    # The input row is the degraded image itself: recompute one pair's PSNR from the files.
    first = pairs.iloc[0]
    degraded, clean = (to_tensor(read_image(benchmark_48 / path).rgb)[None]
                       for path in (first["degraded_path"], first["clean_path"]))
    recorded = per_image.query("model == 'input' and id == @first.id")["psnr"].item()
    assert recorded == pytest.approx(float(kornia.metrics.psnr(degraded, clean, 1.0)), abs=1e-4)


def test_models_and_sensor_are_evaluated_on_the_given_device(tmp_path):
    """What the stage does with base.device: every model, its blind twin's sensor and their tiles run there (meta
    here: shapes only), batched tiles and prompt included."""
    save_model_file(tmp_path / "pip.pt", build_model("pip_nafnet_tiny"), model_name="pip_nafnet_tiny")
    save_model_file(tmp_path / "sensor.pt", build_model("sensor_tiny"), model_name="sensor_tiny")
    contenders, sensor = load_contenders(EvaluateConfig(tile=64, overlap=16, tile_batch=3), [tmp_path / "pip.pt"],
                                         sensor_path=tmp_path / "sensor.pt", device="meta")
    assert [contender.name for contender in contenders] == ["input", "classical", "pip_nafnet_tiny",
                                                             "pip_nafnet_tiny_blind"]
    assert {parameter.device.type for parameter in sensor.parameters()} == {"meta"}
    for contender in contenders[2:]:
        restored = contender.restore(torch.rand(1, 3, 150, 100, device="meta"), "deblur_denoise")
        assert restored.device.type == "meta" and restored.shape == (1, 3, 150, 100)


@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_evaluate_stage_honours_base_device(benchmark_48, tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["base"]["device"] = "cuda"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", "params.yaml",
                           "--benchmark", str(benchmark_48), "--models", "missing.pt", "--metrics", "m.json",
                           "--per-image", "p.csv", "--examples", "examples", "--prompts", "prompts.json"],
                          cwd=tmp_path, env=stage_environment(tmp_path), capture_output=True, text=True)
    assert done.returncode == 1 and "base.device is cuda, but torch" in done.stderr and "sees no CUDA device" in done.stderr


@pytest.mark.parametrize("losses", [[0.2, 0.1, 0.05], [-1.8, -2.2, -2.5]])
def test_curve_chart_draws_positive_and_log_mse_losses_without_warnings(tmp_path, losses):
    import warnings

    from pip_model.apps.colours import method_colours
    from pip_model.apps.report import curve_chart

    curve = pd.DataFrame({"step": [1, 2, 3], "loss": losses, "psnr": [20.0, 21.0, 22.0], "lr": [1e-3] * 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = curve_chart({"pip_restormer_tiny": curve}, tmp_path / "curves.png", dpi=50,
                           colours=method_colours(["pip_restormer_tiny"]), loss="train.loss")
    assert (tmp_path / "curves.png").stat().st_size > 0 and path


def _constant_sensor(**scores: float) -> nn.Module:
    """A real sensor whose classifier ignores the image: each named class gets that score, the others 0.01."""
    sensor = build_model("sensor_tiny").eval()
    torch.nn.init.zeros_(sensor.classifier.weight)
    with torch.no_grad():
        for class_id, name in enumerate(PAPER_CLASSES):
            sensor.classifier.bias[class_id] = torch.logit(torch.tensor(scores.get(name, 0.01)))
    return sensor


def test_the_sensor_is_scored_by_its_top_class_on_single_tasks_and_its_class_set_on_composites(
        default_prepared, tmp_path):
    config = DegradeConfig(tasks=("derain", "dehaze", "derain_dehaze"), benchmark_crop=32, crops_per_image=1)
    build_benchmark(default_prepared, config, seed=0, out_dir=tmp_path, **QUIET)
    pairs = load_benchmark(tmp_path)
    sure_of_both = sensor_report(pairs, _constant_sensor(rain=0.99, haze=0.9))
    singles = len(pairs) * 2 // 3
    assert sure_of_both.accuracy == pytest.approx(0.5) and sure_of_both.confusion.sum() == singles
    assert sure_of_both.per_class == {"noise": None, "rain": 1.0, "haze": 0.0, "blur": None, "lowlight": None}
    assert sure_of_both.composites == {"derain_dehaze": 1.0}
    assert sensor_report(pairs, _constant_sensor(rain=0.99, haze=0.4)).composites == {"derain_dehaze": 0.0}


def test_classical_restorers_chain_on_a_composite_last_degradation_first():
    image = to_array(_photo_crop()[0])
    chained = classical_restore(classical_restore(image, "dehaze"), "derain")
    np.testing.assert_array_equal(classical_restore(image, "derain_dehaze"), chained)


def test_the_prompt_contenders_hold_a_fixed_prompt_whatever_the_task():
    torch.manual_seed(0)
    model = randomise_output(build_model("pip_nafnet_tiny")).eval()
    contenders = {c.name: c for c in prompt_contenders("pip", model, EvaluateConfig())}
    assert list(contenders) == [f"pip@{name}" for name in (*PAPER_CLASSES, "uniform")]
    image = _photo_crop()[..., :64, :64]
    true_prompt = model_contender("pip", model, EvaluateConfig())
    with torch.no_grad():
        assert torch.equal(contenders["pip@rain"].restore(image, "dehaze"), true_prompt.restore(image, "derain"))
        mixture = model(image, torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0]]))
        torch.testing.assert_close(true_prompt.restore(image, "derain_dehaze"), mixture)
        uniform = model(image, torch.full((1, 5), 0.2))
        torch.testing.assert_close(contenders["pip@uniform"].restore(image, "deblur"), uniform)


def test_the_report_tables_compare_prompts_and_composites():
    metrics = {"input": {"derain": {"psnr": 12.0}, "dehaze": {"psnr": 9.0}, "derain_dehaze": {"psnr": 10.0}},
               "classical": {"derain": {"psnr": 13.0}, "dehaze": {"psnr": 9.5}, "derain_dehaze": {"psnr": 11.0}},
               "pip": {"derain": {"psnr": 20.0}, "dehaze": {"psnr": 15.0}, "derain_dehaze": {"psnr": 15.0}},
               "pip_blind": {"derain": {"psnr": 19.5}, "dehaze": {"psnr": 15.0}, "derain_dehaze": {"psnr": 14.0}}}
    prompts = {f"pip@{name}": {"derain": {"psnr": 20.0 if name == "rain" else 5.0},
                               "dehaze": {"psnr": 15.0 if name == "haze" else 6.0},
                               "derain_dehaze": {"psnr": {"rain": 12.0, "haze": 14.5}.get(name, 3.0)}}
               for name in (*PAPER_CLASSES, "uniform")}
    cost = prompt_cost_table(prompts, metrics)
    assert list(cost.index) == ["derain", "dehaze"] and list(cost.columns) == [*PAPER_CLASSES, "uniform", "sensor"]
    assert cost.loc["derain", "rain"] == "20.00 *" and cost.loc["derain", "haze"] == "5.00"
    assert cost.loc["dehaze", "haze"] == "15.00 *" and cost.loc["dehaze", "sensor"] == "15.00"
    assert cost.loc["derain", "uniform"] == "5.00" and not cost.isna().any().any()
    composites = composite_table(metrics, prompts)
    assert composites.loc["derain_dehaze"].to_dict() == {
        "input": 10.0, "classical chained": 11.0, "single prompts": "rain 12.00, haze 14.50", "best single": 14.5,
        "true mixture": 15.0, "sensor mixture": 14.0, "sensor beats input and best single": "no"}
    metrics["pip_blind"]["derain_dehaze"]["psnr"] = 14.6
    assert composite_table(metrics, prompts).loc["derain_dehaze", "sensor beats input and best single"] == "yes"


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory) -> Path:
    """The degrade stage's benchmark of one 40-px photograph: one 32-px crop per task, singles and a composite."""
    prepared = tmp_path_factory.mktemp("tiny") / "prepared"
    write_png(prepared / "test" / "cat.png", to_array(_photo_crop()[0, :, :40, :40]))
    manifest = pd.DataFrame({"id": ["cat"], "split": ["test"], "path": ["test/cat.png"]})
    manifest.to_csv(prepared / "manifest.csv", index=False)
    config = DegradeConfig(tasks=("derain", "dehaze", "denoise_25", "derain_dehaze"), benchmark_crop=32,
                           crops_per_image=1)
    build_benchmark(prepared, config, seed=0, out_dir=prepared.parent / "benchmark", **QUIET)
    return prepared.parent / "benchmark"


def test_a_composite_class_is_found_from_a_score_of_0_6_not_below(tiny_benchmark):
    pairs = [pair for pair in load_benchmark(tiny_benchmark) if pair.row.task in ("derain", "derain_dehaze")]
    doubtful = sensor_report(pairs, _constant_sensor(rain=0.99, haze=0.55))
    assert doubtful.composites == {"derain_dehaze": 0.0}
    assert {row["found"] for row in doubtful.decisions if row["task"] != "clean"} == {"rain"}
    assert sensor_report(pairs, _constant_sensor(rain=0.99, haze=0.65)).composites == {"derain_dehaze": 1.0}


@pytest.mark.parametrize("y_channel", [False, True])
def test_evaluate_with_paper_metrics_scores_ssim_as_scikit_image_does(tiny_benchmark, y_channel):
    """The paper's protocol: scikit-image's SSIM (7x7 uniform window, data_range 1) of the float images, on RGB
    (mean over channels) or on BT.601 luma; Kornia's 11x11 Gaussian SSIM of the same pairs differs."""
    from skimage.metrics import structural_similarity

    pairs = load_benchmark(tiny_benchmark)
    config = EvaluateConfig(metrics="paper", y_channel=y_channel, classical=False)
    per_image = evaluate(pairs, baseline_contenders(config), config, progress=lambda message: None).per_image
    luma = np.array([0.299, 0.587, 0.114])
    for pair, ssim in zip(pairs, per_image["ssim"], strict=True):
        clean, degraded = (to_array(image[0]).astype(np.float64) for image in (pair.clean, pair.degraded))
        if y_channel:
            clean, degraded = clean @ luma, degraded @ luma
        expected = structural_similarity(clean, degraded, data_range=1, channel_axis=None if y_channel else -1)
        assert ssim == pytest.approx(expected, abs=1e-4)
        assert abs(ssim - image_metrics(pair.degraded, pair.clean, y_channel=y_channel)[1]) > 5e-3


def test_the_paper_tables_average_ssim_is_the_mean_of_its_ssim_columns():
    metrics = {"ours": {"denoise_15": {"psnr": 30.0, "ssim": 0.712}, "derain": {"psnr": 34.5, "ssim": 0.845},
                        "dehaze": {"psnr": 28.2, "ssim": 0.903}}}
    table = paper_table(metrics, "3task")
    tasks = ["BSD68 s15", "BSD68 s25", "BSD68 s50", "Rain100L", "SOTS"]
    assert list(table.columns) == [*tasks, "average", "printed average", "source", "note"]
    assert table.loc["ours", "average"] == "30.90/0.820"
    for method in ("ours", "PIP-Restormer"):
        cells = [cell.split("/") for cell in table.loc[method, tasks] if cell != "-"]
        average = float(table.loc[method, "average"].split("/")[1])
        assert average == pytest.approx(np.mean([float(ssim) for _, ssim in cells]), abs=5e-4)
    assert table.loc["PIP-Restormer", "average"] == "32.91/0.920"



def _one_pair_benchmark(folder: Path, height: int, width: int) -> list:
    """A benchmark of one denoise pair of random height x width images."""
    rng = np.random.default_rng(5)
    for role in ("degraded", "clean"):
        write_png(folder / f"{role}.png", rng.random((height, width, 3)))
    pd.DataFrame({"id": ["denoise_25/odd_c0"], "task": ["denoise_25"], "source": ["synthetic"],
                  "degraded_path": ["degraded.png"], "clean_path": ["clean.png"]}).to_csv(folder / "manifest.csv",
                                                                                         index=False)
    return load_benchmark(folder)


def test_crop_multiple_evaluates_the_centre_window_that_promptirs_crop_img_keeps(tmp_path):
    """`evaluate.crop_multiple: 16`: a 37x50 pair is restored and scored as its 32x48 centre, cut as crop_img cuts
    it (rows from 37 % 16 // 2 = 2, columns from 50 % 16 // 2 = 1), and per_image.csv says 32x48."""
    pairs = _one_pair_benchmark(tmp_path, 37, 50)
    seen = []
    looker = Contender("looker", lambda degraded, task: seen.append(degraded) or degraded)
    config = EvaluateConfig(tile=0, crop_multiple=16, classical=False)
    result = evaluate(pairs, [looker], config, progress=lambda message: None)
    assert torch.equal(seen[0], pairs[0].degraded[..., 2:34, 1:49])
    result.per_image.to_csv(tmp_path / "per_image.csv", index=False)
    written = pd.read_csv(tmp_path / "per_image.csv")
    assert (written["height"].tolist(), written["width"].tolist()) == ([32], [48])
    expected = image_metrics(pairs[0].degraded[..., 2:34, 1:49], pairs[0].clean[..., 2:34, 1:49])
    assert written["psnr"].item() == pytest.approx(expected[0], abs=1e-4)
    uncropped = evaluate(pairs, [looker], EvaluateConfig(classical=False), progress=lambda message: None).per_image
    assert (uncropped["height"].item(), uncropped["width"].item()) == (37, 50)
    with pytest.raises(CropError, match="degraded.png"):
        evaluate(pairs, [looker], EvaluateConfig(crop_multiple=64, classical=False), progress=lambda message: None)


class AddsItsMean(nn.Module):
    """A restorer whose every output pixel depends on the whole image: it adds the image's mean."""

    uses_prompts = False

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        return images + self.scale * images.mean(dim=(-3, -2, -1), keepdim=True)


@torch.no_grad()
def test_tile_0_restores_each_image_in_one_pass(tmp_path):
    """`evaluate.tile: 0`: the model sees the whole image at once, as the published test code calls it; tiles of
    the same image would each add their own mean."""
    pairs = _one_pair_benchmark(tmp_path, 80, 96)
    degraded = pairs[0].degraded * torch.linspace(0, 1, 96)  # a gradient: every tile's mean differs
    model = AddsItsMean()
    one_pass = model_contender("mean", model, EvaluateConfig(tile=0)).restore(degraded, "denoise_25")
    assert torch.equal(one_pass, model(degraded))
    tiled = model_contender("mean", model, EvaluateConfig(tile=32, overlap=8)).restore(degraded, "denoise_25")
    assert (tiled - model(degraded)).abs().max() > 0.05
    config = EvaluateConfig(tile=0, classical=False)
    scored = evaluate(pairs, [model_contender("mean", model, config)], config, progress=lambda message: None)
    assert scored.per_image["psnr"].item() == pytest.approx(
        image_metrics(model(pairs[0].degraded).clamp(0, 1), pairs[0].clean)[0], abs=1e-4)


class RunsOutOfMemory(nn.Module):
    """Stands in for a network too large for the device: it raises what torch raises then."""

    uses_prompts = False

    def __init__(self, error: RuntimeError) -> None:
        super().__init__()
        self.weight, self.error = nn.Parameter(torch.zeros(())), error

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None) -> torch.Tensor:
        raise self.error


@pytest.mark.parametrize("kind", [RuntimeError, torch.cuda.OutOfMemoryError])
def test_an_image_too_large_for_one_pass_stops_with_one_line_naming_it(tmp_path, kind):
    """In one pass, running out of device memory stops the evaluation with one line naming the model, the image,
    its size and the allocation that failed; it is never tiled instead. Tiled evaluation keeps torch's error."""
    pairs = _one_pair_benchmark(tmp_path, 40, 48)
    model = RunsOutOfMemory(kind("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                 "1.00 GiB of which 10.00 MiB is free.\nSee the documentation"))
    config = EvaluateConfig(tile=0, classical=False)
    with pytest.raises(OnePassMemoryError) as stopped:
        evaluate(pairs, [model_contender("huge", model, config)], config, progress=lambda message: None)
    message = str(stopped.value)
    assert "\n" not in message
    for part in ("huge", "denoise_25/odd_c0", "degraded.png", "40x48", "2.00 GiB", "evaluate.tile"):
        assert part in message, part
    tiled = EvaluateConfig(tile=32, overlap=8, classical=False)
    with pytest.raises(kind) as raised:
        evaluate(pairs, [model_contender("huge", model, tiled)], tiled, progress=lambda message: None)
    assert type(raised.value) is kind


def test_onerestore_metrics_score_the_output_as_an_8_bit_png_holds_it():
    """``onerestore`` is ``paper`` on the restored image rounded to 8 bits (OneRestore scores the PNGs it saved): the
    same on an 8-bit image, another figure on one between grey levels."""
    from pip_model.evaluation.metrics import image_metrics

    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 24, 24, generator=generator)
    on_levels = (clean + 0.05 * torch.randn(1, 3, 24, 24, generator=generator)).clamp(0, 1).mul(255).round() / 255
    assert image_metrics(on_levels, clean, metrics="onerestore") == pytest.approx(
        image_metrics(on_levels, clean, metrics="paper"), abs=1e-6)
    between = clean + 0.4 / 255
    rounded = (between * 255).round().clamp(0, 255) / 255
    assert image_metrics(between, clean, metrics="onerestore") == pytest.approx(
        image_metrics(rounded, clean, metrics="paper"), rel=1e-5)
    rounded_psnr, float_psnr = (image_metrics(between, clean, metrics=kind)[0] for kind in ("onerestore", "paper"))
    assert rounded_psnr < float_psnr - 1
