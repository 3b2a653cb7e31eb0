"""The restore command on a user's files: direction of the restoration, prompts, formats, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from pip_model import build_model, degrade
from pip_model.checkpoints import save_model_file
from pip_model.corpus import PrepareConfig, prepare_corpus
from pip_model.data import to_array
from pip_model.image_files import read_image, write_png
from pip_model.restore import RestoreError, load_restorer, main
from pip_model.training import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A PIP model trained briefly on denoise_25 only."""
    folder = tmp_path_factory.mktemp("trained")
    prepare_corpus(PrepareConfig(), seed=0, out_dir=folder / "prepared", progress=lambda message: None)
    config = TrainConfig(model="pip_nafnet_tiny", tasks=("denoise_25",), steps=40, batch_size=8, patch=48,
                         lr=2e-3, warmup_steps=2)
    train(config, seed=0, device="cpu", prepared_dir=folder / "prepared", pairs_dir=None,
          model_path=folder / "model.pt", curve_path=folder / "curve.csv", checkpoint_path=folder / "ckpt.pt",
          progress=False)
    return folder / "model.pt"


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A clean photo crop and its sigma-25 noisy version, as (H, W, 3) arrays."""
    clean = torch.from_numpy(skimage.data.coffee()[100:196, 200:328]).permute(2, 0, 1)[None].float() / 255
    noisy, _ = degrade(clean, "denoise_25", seed=3)
    return to_array(clean[0]), to_array(noisy[0])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_restoring_a_noisy_photo_brings_it_closer_to_the_clean_one(trained, scene, tmp_path):
    clean, noisy = scene
    write_png(tmp_path / "in" / "noisy.png", noisy)
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "denoise_25"]) == 0
    restored = read_image(tmp_path / "out" / "noisy.png").rgb
    assert _psnr(restored, clean) > _psnr(noisy, clean) + 1.0


def test_mix_of_a_single_class_equals_its_task(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "noisy.png", scene[1])
    main([str(tmp_path / "in"), "--out", str(tmp_path / "task"), "--model", str(trained), "--task", "denoise_25"])
    main([str(tmp_path / "in"), "--out", str(tmp_path / "mix"), "--model", str(trained),
          "--mix", "noise=1,rain=0,haze=0,blur=0,lowlight=0"])
    assert (tmp_path / "task" / "noisy.png").read_bytes() == (tmp_path / "mix" / "noisy.png").read_bytes()
    main([str(tmp_path / "in"), "--out", str(tmp_path / "blend"), "--model", str(trained),
          "--mix", "derain=0.7,dehaze=0.3"])
    assert (tmp_path / "blend" / "noisy.png").read_bytes() != (tmp_path / "task" / "noisy.png").read_bytes()


def test_auto_uses_the_sensor_and_records_its_probabilities(trained, scene, tmp_path):
    torch.manual_seed(0)
    sensor = build_model("sensor_tiny").eval()
    save_model_file(tmp_path / "sensor.pt", sensor, model_name="sensor_tiny")
    write_png(tmp_path / "in" / "noisy.png", scene[1])
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "auto", "--sensor", str(tmp_path / "sensor.pt")]) == 0
    summary = json.loads((tmp_path / "out" / "restore_summary.json").read_text())
    probabilities = summary["predictions"][str(tmp_path / "in" / "noisy.png")]
    assert set(probabilities) == {"noise", "rain", "haze", "blur", "lowlight"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    weights = torch.tensor([list(probabilities.values())])
    main([str(tmp_path / "in"), "--out", str(tmp_path / "mixed"), "--model", str(trained),
          "--mix", ",".join(f"{k}={v}" for k, v in probabilities.items())])
    difference = np.abs(read_image(tmp_path / "out" / "noisy.png").rgb - read_image(tmp_path / "mixed" / "noisy.png").rgb)
    assert difference.max() <= 2 / 255 and weights.shape == (1, 5)


def test_rgba_and_16_bit_inputs_keep_alpha_and_depth(trained, scene, tmp_path):
    noisy = scene[1]
    alpha = np.linspace(0, 1, noisy.shape[1], dtype=np.float32)[None].repeat(noisy.shape[0], axis=0)
    write_png(tmp_path / "in" / "rgba.png", noisy, alpha=alpha)
    write_png(tmp_path / "in" / "deep.png", noisy, bit_depth=16)
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "denoise_25", "--compare"]) == 0
    rgba = read_image(tmp_path / "out" / "rgba.png")
    np.testing.assert_array_equal(rgba.alpha, read_image(tmp_path / "in" / "rgba.png").alpha)
    assert rgba.bit_depth == 8 and read_image(tmp_path / "out" / "deep.png").bit_depth == 16
    side_by_side = read_image(tmp_path / "out" / "deep_compare.png")
    assert side_by_side.size == (noisy.shape[0], 2 * noisy.shape[1])


def test_a_corrupt_file_fails_alone(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "good.png", scene[1])
    write_png(tmp_path / "in" / "nested" / "also_good.png", scene[1])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg at all")
    code = main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "denoise_25"])
    assert code == 1
    assert (tmp_path / "out" / "good.png").is_file() and (tmp_path / "out" / "nested" / "also_good.png").is_file()
    summary = json.loads((tmp_path / "out" / "restore_summary.json").read_text())
    assert len(summary["restored"]) == 2 and len(summary["failed"]) == 1 and "broken.jpg" in summary["failed"][0]


def test_existing_outputs_and_inputs_are_never_overwritten(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "photo.png", scene[1])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo.png").write_bytes(b"keep me")
    arguments = [str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained), "--task", "denoise_25"]
    assert main(arguments) == 0
    assert (tmp_path / "out" / "photo.png").read_bytes() == b"keep me"
    assert main(arguments + ["--overwrite"]) == 0
    assert read_image(tmp_path / "out" / "photo.png").size == scene[1].shape[:2]
    before = (tmp_path / "in" / "photo.png").read_bytes()
    main([str(tmp_path / "in"), "--out", str(tmp_path / "in"), "--model", str(trained), "--task", "denoise_25",
          "--overwrite"])
    assert (tmp_path / "in" / "photo.png").read_bytes() == before


def test_a_pip_model_without_a_prompt_is_explained(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "photo.png", scene[1])
    done = subprocess.run([sys.executable, "-m", "pip_model", "restore", str(tmp_path / "in"), "--out",
                           str(tmp_path / "out"), "--model", str(trained)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2 and "needs a prompt: pass --task" in done.stderr


def test_large_images_are_tiled(trained, tmp_path):
    image = np.random.default_rng(0).random((300, 420, 3), dtype=np.float32)
    write_png(tmp_path / "in" / "big.png", image)
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "denoise_25", "--tile", "128", "--overlap", "16"]) == 0
    assert read_image(tmp_path / "out" / "big.png").size == (300, 420)


def test_model_files_and_other_checkpoints_are_told_apart(trained, tmp_path):
    model, description = load_restorer(str(trained), "cpu")
    assert "pip_nafnet_tiny" in description and model.uses_prompts
    torch.save({"unrelated.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(RestoreError, match="neither a model file of this project nor a published checkpoint"):
        load_restorer(str(tmp_path / "other.pth"), "cpu")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RestoreError, match="broken.pt: not a readable weights-only checkpoint"):
        load_restorer(str(tmp_path / "broken.pt"), "cpu")
