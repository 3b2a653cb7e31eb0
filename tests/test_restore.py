"""The restore command on a user's files: direction of the restoration, prompts, formats, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from pip_model import build_model, degrade
from pip_model.apps.restore import RestoreError, load_restorer, main, parse_mix
from pip_model.data.images import to_array, to_tensor
from pip_model.engine.loop import train
from pip_model.engine.recipes import TrainConfig
from pip_model.evaluation.tiling import restore_tiled
from pip_model.image_files import read_image, write_png
from pip_model.networks.checkpoints import load_model_file, save_model_file
from pip_model.tasks import PAPER_CLASSES, TASKS
from tests.helpers.models import randomise_output

# What 8-bit PNG rounding can move a pixel by, between a float result and the file (0.5/255), or between two
# files of almost equal floats (1/255).
QUANTISATION = 1 / 255 + 1e-6


@pytest.fixture(scope="module")
def trained(default_prepared, tmp_path_factory) -> Path:
    """A PIP model trained briefly on denoise_25 only."""
    folder = tmp_path_factory.mktemp("trained")
    config = TrainConfig(model="pip_nafnet_tiny", tasks=("denoise_25",), steps=20, batch_size=6, patch=40,
                         lr=3e-3, warmup_steps=2)  # ~4 s on one core; the noisy scene gains 3.6 dB (the test asks 1)
    train(config, seed=0, device="cpu", prepared_dir=default_prepared, pairs_dir=None,
          model_path=folder / "model.pt", curve_path=folder / "curve.csv", checkpoint_path=folder / "ckpt.pt",
          progress=False)
    return folder / "model.pt"


@pytest.fixture(scope="module")
def random_pip(tmp_path_factory) -> Path:
    """An untrained PIP model file with a random output layer, for tests of the command's plumbing.

    Its result moves with the prompt, unlike ``trained``'s (one task only, its prompts change ~1/255 at most),
    and it needs no training.
    """
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("random_pip") / "pip_nafnet_tiny.pt"
    save_model_file(path, randomise_output(build_model("pip_nafnet_tiny")).eval(), model_name="pip_nafnet_tiny")
    return path


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A clean photo crop and its sigma-25 noisy version, as (H, W, 3) arrays."""
    clean = torch.from_numpy(skimage.data.coffee()[100:196, 200:328]).permute(2, 0, 1)[None].float() / 255
    noisy, _ = degrade(clean, "denoise_25", seed=3)
    return to_array(clean[0]), to_array(noisy[0])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def _summary(out: Path) -> dict:
    """The ``restore_summary.json`` a run wrote into ``out``."""
    return json.loads((out / "restore_summary.json").read_text())


def _rain_sensor() -> torch.nn.Module:
    """A sensor sure (score > 0.99) that the noisy coffee crop shows rain, and unsure about haze (about 0.7: found,
    but not surely).

    Its random classifier, scaled up 10 times, keeps image-dependent scores; biases set the verdict.
    """
    torch.manual_seed(0)
    sensor = build_model("sensor_tiny").eval()
    with torch.no_grad():
        sensor.classifier.weight *= 10
        biases = {"noise": -4.0, "rain": 6.0, "haze": -5.0, "blur": -6.0, "lowlight": -3.0}
        sensor.classifier.bias.copy_(torch.tensor([biases[name] for name in PAPER_CLASSES]))
    return sensor


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


def test_mix_weights_are_normalised_and_task_names_map_to_classes():
    """``--mix`` takes task or class names, adds weights that name one class, and normalises the sum to 1."""
    assert parse_mix("derain=0.7,dehaze=0.3", PAPER_CLASSES).tolist() == pytest.approx([0, 0.7, 0.3, 0, 0])
    # denoise_15 and noise name the same class: their weights add up.
    assert parse_mix("denoise_15=1, noise=1,blur=2", PAPER_CLASSES).tolist() == pytest.approx([0.5, 0, 0, 0.5, 0])


@pytest.mark.parametrize("text, message", [
    ("derain", "--mix: 'derain' is not NAME=WEIGHT"),
    ("derain=0.5,dehaze=lots", "--mix: 'dehaze=lots' is not NAME=WEIGHT"),
    ("fog=1", f"--mix: unknown name 'fog'; use tasks ({', '.join(TASKS)}) or classes "
              f"({', '.join(PAPER_CLASSES)})"),
    ("rain=-0.5,haze=1", "--mix: weight of rain is negative (-0.5)"),
    ("rain=0,haze=0", "--mix: the weights sum to zero"),
], ids=["no-weight", "weight-not-a-number", "unknown-name", "negative-weight", "all-zero"])
def test_a_bad_mix_is_explained(text, message):
    """Each malformed ``--mix`` is refused with the message that says what is wrong."""
    with pytest.raises(RestoreError) as error:
        parse_mix(text, PAPER_CLASSES)
    assert str(error.value) == message


def test_auto_uses_the_sensor_and_records_its_scores(random_pip, scene, tmp_path, capsys):
    """``--task auto`` prompts the model with the weights the sensor's scores make, prints its decision and how
    sure it is, and with ``--explain`` writes the scores beside the output."""
    sensor = _rain_sensor()
    save_model_file(tmp_path / "sensor.pt", sensor, model_name="sensor_tiny")
    photo = tmp_path / "in" / "noisy.png"
    write_png(photo, scene[1])
    with torch.no_grad():
        expected, weights = sensor.prompt(to_tensor(read_image(photo).rgb)[None])
        on_the_clean_photo = sensor(to_tensor(scene[0])[None])[0]
    # Sure of rain, unsure of haze, and its answer depends on the image: no other scores pass for its own.
    assert expected[0, PAPER_CLASSES.index("rain")] > 0.99
    assert 0.2 < expected[0, PAPER_CLASSES.index("haze")] < 0.8
    assert (expected[0] - on_the_clean_photo).abs().max() > 0.01

    def restore(out: str, *prompt: str) -> np.ndarray:
        assert main([str(photo), "--out", str(tmp_path / out), "--model", str(random_pip), *prompt]) == 0
        return read_image(tmp_path / out / "noisy.png").rgb

    auto = restore("auto", "--task", "auto", "--sensor", str(tmp_path / "sensor.pt"), "--explain")
    recorded = _summary(tmp_path / "auto")["predictions"][str(photo)]
    assert list(recorded["scores"]) == list(PAPER_CLASSES)
    np.testing.assert_allclose(list(recorded["scores"].values()), expected[0].numpy(), atol=1e-3)
    assert sum(recorded["prompt"].values()) == pytest.approx(1, abs=1e-3)
    np.testing.assert_allclose(list(recorded["prompt"].values()), weights[0].numpy(), atol=1e-3)
    assert recorded["prompt"]["haze"] > 0.1  # a blend, not the argmax
    printed = capsys.readouterr().out
    assert "noisy.png: rain + haze (unsure about haze: blended prompt); scores noise 0.01, rain 1.00" in printed
    assert json.loads((tmp_path / "auto" / "noisy.scores.json").read_text()) == recorded  # --explain

    # The restoration is the one that blend prompts for ...
    mixed = restore("mixed", "--mix", ",".join(f"{name}={p}" for name, p in recorded["prompt"].items()))
    assert np.abs(auto - mixed).max() <= QUANTISATION
    # ... and not what the rain prompt alone or the noise prompt would give.
    rain = restore("rain", "--task", "derain")
    noise = restore("noise", "--task", "denoise_25")
    assert np.abs(auto - rain).max() > 2 / 255  # rounding to 8 bits alone moves no pixel by more than 1/255
    assert np.abs(auto - noise).max() > 2 / 255
    assert not (tmp_path / "rain" / "noisy.scores.json").exists()


def test_explain_needs_the_sensor(random_pip, scene, tmp_path, capsys):
    write_png(tmp_path / "in" / "noisy.png", scene[1])
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(random_pip),
                 "--task", "derain", "--explain"]) == 2
    assert "--explain shows the sensor's scores: use it with --task auto" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_photo_with_nothing_to_restore_is_left_as_it_is_and_says_so(random_pip, scene, tmp_path, capsys):
    """A sensor that finds no class (every score under 0.3): the output is the input's pixels, the message says
    plainly that nothing was restored, and the compare image labels it so."""
    sensor = build_model("sensor_tiny").eval()
    with torch.no_grad():
        torch.nn.init.zeros_(sensor.classifier.weight)
        sensor.classifier.bias.fill_(-6.0)
    save_model_file(tmp_path / "sensor.pt", sensor, model_name="sensor_tiny")
    write_png(tmp_path / "in" / "clean.png", scene[0])
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(random_pip), "--task", "auto",
                 "--sensor", str(tmp_path / "sensor.pt"), "--compare"]) == 0
    printed = capsys.readouterr().out
    assert "clean.png: nothing to restore: no degradation scored 0.3 or more (scores noise 0.00" in printed
    assert "left as it is" in printed
    assert np.array_equal(read_image(tmp_path / "out" / "clean.png").rgb, read_image(tmp_path / "in" / "clean.png").rgb)
    assert _summary(tmp_path / "out")["predictions"][str(tmp_path / "in" / "clean.png")]["prompt"] == {
        name: 0.0 for name in PAPER_CLASSES}
    assert (tmp_path / "out" / "clean_compare.png").is_file()


def test_a_composite_task_prompts_with_the_mixture_of_its_classes(random_pip, scene, tmp_path):
    write_png(tmp_path / "in" / "noisy.png", scene[1])
    for out, prompt in (("composite", ["--task", "derain_dehaze"]), ("mix", ["--mix", "rain=1,haze=1"])):
        assert main([str(tmp_path / "in"), "--out", str(tmp_path / out), "--model", str(random_pip), *prompt]) == 0
    assert (tmp_path / "composite" / "noisy.png").read_bytes() == (tmp_path / "mix" / "noisy.png").read_bytes()


def test_auto_finds_the_trained_sensor_or_says_how_to_get_one(random_pip, scene, tmp_path, monkeypatch, capsys):
    """Without ``--sensor``, ``--task auto`` uses the sensor in ``./sensors``, or explains how to get one."""
    write_png(tmp_path / "in" / "photo.png", scene[1])
    monkeypatch.chdir(tmp_path)
    arguments = ["in", "--out", "out", "--model", str(random_pip), "--task", "auto"]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "--task auto needs a trained sensor: none in" in error
    assert "run `dvc repro train_sensor` or pass --sensor" in error
    assert not (tmp_path / "out").exists()

    save_model_file(tmp_path / "sensors" / "sensor_tiny.pt", _rain_sensor(), model_name="sensor_tiny")
    assert main(arguments) == 0
    announced = [line for line in capsys.readouterr().out.splitlines() if "by the sensor" in line]
    sensor = Path.cwd() / "sensors" / "sensor_tiny.pt"
    assert announced == [f"restore: degradation chosen per image by the sensor {sensor}"]
    assert list(_summary(tmp_path / "out")["predictions"]) == [str(Path("in") / "photo.png")]


def test_without_model_the_newest_pip_model_here_is_used(scene, tmp_path, monkeypatch, capsys):
    """Without ``--model``, the newest PIP model in ``./models`` restores (even if a plain one is newer), and the
    command says so."""
    now = time.time()
    # Oldest first. The plain model is the newest file, but PIP models come first.
    for age, name, model_name in ((300, "pip_older", "pip_nafnet_tiny"), (200, "pip_newer", "pip_nafnet_tiny"),
                                  (100, "nafnet_newest", "nafnet_tiny")):
        path = tmp_path / "models" / f"{name}.pt"
        save_model_file(path, build_model(model_name), model_name=model_name)
        os.utime(path, (now - age, now - age))
    write_png(tmp_path / "in" / "photo.png", scene[1])
    monkeypatch.chdir(tmp_path)
    assert main(["in", "--out", "out", "--task", "denoise_25"]) == 0
    used = _summary(tmp_path / "out")["model"]  # "PATH (pip_nafnet_tiny, step ?)"
    assert Path(used.split(" (")[0]).name == "pip_newer.pt"
    assert "pip_newer.pt (pip_nafnet_tiny, step ?) (newest trained here)" in capsys.readouterr().out


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
    side_by_side = read_image(tmp_path / "out" / "deep_compare.png")  # a band of labels above both panels
    assert side_by_side.size == (noisy.shape[0] + 14, 2 * noisy.shape[1]) and side_by_side.bit_depth == 16


def test_a_corrupt_file_fails_alone(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "good.png", scene[1])
    write_png(tmp_path / "in" / "nested" / "also_good.png", scene[1])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg at all")
    code = main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(trained),
                 "--task", "denoise_25"])
    assert code == 1
    assert (tmp_path / "out" / "good.png").is_file() and (tmp_path / "out" / "nested" / "also_good.png").is_file()
    summary = _summary(tmp_path / "out")
    assert len(summary["restored"]) == 2 and len(summary["failed"]) == 1 and "broken.jpg" in summary["failed"][0]


def test_a_missing_input_fails_alone(random_pip, scene, tmp_path):
    """An input that does not exist is reported as failed (exit code 1); the other inputs are still restored."""
    write_png(tmp_path / "in" / "photo.png", scene[1])
    missing = tmp_path / "not_there.png"
    code = main([str(tmp_path / "in"), str(missing), "--out", str(tmp_path / "out"), "--model", str(random_pip),
                 "--task", "denoise_25"])
    assert code == 1
    summary = _summary(tmp_path / "out")
    assert summary["restored"] == [str(tmp_path / "out" / "photo.png")]
    assert summary["failed"] == [f"{missing}: no such file or folder"]


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


@pytest.mark.integration
def test_a_pip_model_without_a_prompt_is_explained(trained, scene, tmp_path):
    write_png(tmp_path / "in" / "photo.png", scene[1])
    done = subprocess.run([sys.executable, "-m", "pip_model", "restore", str(tmp_path / "in"), "--out",
                           str(tmp_path / "out"), "--model", str(trained)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 2 and "needs a prompt: pass --task" in done.stderr


@pytest.mark.parametrize("prompt", [["--task", "derain"], ["--mix", "rain=1"]])
def test_a_model_that_takes_no_prompt_says_the_prompt_is_not_used(prompt, tmp_path, capsys):
    """PromptIR is blind and a plain model restores every image alike: a prompt changes nothing, and the run says so
    instead of labelling the result with it."""
    torch.manual_seed(0)
    blind = randomise_output(build_model("promptir_tiny")).eval()
    save_model_file(tmp_path / "promptir_tiny.pt", blind, model_name="promptir_tiny")
    photo = tmp_path / "photo.png"
    write_png(photo, np.random.default_rng(0).random((20, 28, 3), dtype=np.float32))
    assert main([str(photo), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "promptir_tiny.pt"),
                 "--compare", *prompt]) == 0
    assert f"the model takes no prompt (blind or plain): {' '.join(prompt)} is not used" in capsys.readouterr().out
    with torch.no_grad():
        expected = to_array(blind(to_tensor(read_image(photo).rgb)[None])[0].clamp(0, 1))
    assert np.abs(read_image(tmp_path / "out" / "photo.png").rgb - expected).max() <= QUANTISATION


def test_large_images_are_tiled(random_pip, tmp_path):
    """An image larger than ``--tile`` is restored tile by tile with ``--overlap``, not in one pass."""
    photo = tmp_path / "in" / "big.png"
    write_png(photo, np.random.default_rng(0).random((100, 150, 3), dtype=np.float32))
    assert main([str(photo), "--out", str(tmp_path / "out"), "--model", str(random_pip), "--device", "cpu",
                 "--task", "denoise_25", "--tile", "64", "--overlap", "16"]) == 0
    restored = read_image(tmp_path / "out" / "big.png").rgb
    assert restored.shape == (100, 150, 3)

    model = load_model_file(random_pip)[0]
    degraded = to_tensor(read_image(photo).rgb)[None]
    noise = torch.tensor([[1.0, 0, 0, 0, 0]])  # the prompt --task denoise_25 gives
    with torch.no_grad():
        tiled = to_array(restore_tiled(model, degraded, noise, tile=64, overlap=16)[0].clamp(0, 1))
        whole = to_array(model(degraded, noise)[0].clamp(0, 1))
    assert np.abs(restored - tiled).max() <= QUANTISATION
    # Tiles see zero padding at their borders and pool over themselves only: the one-pass result differs by
    # ~10/255 per pixel on average here, far above rounding.
    assert np.abs(restored - whole).mean() > 3 / 255


@pytest.mark.parametrize("tile, overlap", [(128, 64), (32, 100)])
def test_an_overlap_of_half_the_tile_or_more_is_refused(tile, overlap, tmp_path, monkeypatch, capsys):
    """``--overlap`` must be under half of ``--tile``: a usage error (exit code 2) that names both values."""
    monkeypatch.chdir(tmp_path)  # no models here: a run that got past the check would fail otherwise
    with pytest.raises(SystemExit) as exit_:
        main(["in", "--out", "out", "--task", "denoise_25", "--tile", str(tile), "--overlap", str(overlap)])
    assert exit_.value.code == 2
    assert f"--overlap ({overlap}) must be under half of --tile ({tile})" in capsys.readouterr().err


def test_model_files_and_other_checkpoints_are_told_apart(trained, tmp_path):
    model, description = load_restorer(str(trained), "cpu")
    assert "pip_nafnet_tiny" in description and model.uses_prompts
    torch.save({"unrelated.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(RestoreError, match="neither a model file of this project nor a published checkpoint"):
        load_restorer(str(tmp_path / "other.pth"), "cpu")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RestoreError, match="broken.pt: not a readable weights-only checkpoint"):
        load_restorer(str(tmp_path / "broken.pt"), "cpu")
    with pytest.raises(RestoreError, match="missing.pt: no such checkpoint file"):
        load_restorer(str(tmp_path / "missing.pt"), "cpu")
    # A sensor written before its classifier saw the exposure statistics: one line, not a size-mismatch dump.
    old_sensor = build_model("sensor_tiny")
    old_sensor.classifier = torch.nn.Linear(old_sensor.classifier.in_features - 10, 5)
    save_model_file(tmp_path / "old_sensor.pt", old_sensor, model_name="sensor_tiny")
    with pytest.raises(ValueError, match=r"old_sensor.pt: its sensor_tiny does not fit this version of the network "
                                         r"\(classifier.weight is \(5, 128\) in the file, \(5, 138\) here; 1 of "
                                         r"its tensors differ\); retrain it"):
        load_model_file(tmp_path / "old_sensor.pt")


def _declared_png(path: Path, width: int, height: int, bit_depth: int) -> Path:
    """A tiny PNG whose header declares width x height (a decompression bomb's shape: the pixels never come)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return path


def _declared_tiff(path: Path, side: int) -> Path:
    """A small TIFF whose header is patched to declare side x side pixels."""
    import tifffile

    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    data = bytearray(path.read_bytes())
    offset = int.from_bytes(data[4:8], "little")
    for entry in range(int.from_bytes(data[offset : offset + 2], "little")):
        at = offset + 2 + 12 * entry
        if int.from_bytes(data[at : at + 2], "little") in (256, 257):  # ImageWidth, ImageLength
            data[at + 8 : at + 12] = side.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_images_over_the_pixel_limit_fail_alone_before_decoding(random_pip, scene, tmp_path):
    """A 16-bit PNG, an 8-bit PNG and a TIFF that declare gigapixels in a few KB each fail with one line naming the
    size and the limit, checked from the header; the rest of the batch is restored and the summary written."""
    folder = tmp_path / "in"
    folder.mkdir()
    bombs = [_declared_png(folder / "bomb16.png", 100000, 100000, 16), _declared_png(folder / "bomb8.png", 12000,
                                                                                      12000, 8),
             _declared_tiff(folder / "bomb.tif", 60000)]
    write_png(folder / "zz_good.png", scene[1])
    started = time.monotonic()
    assert main([str(folder), "--out", str(tmp_path / "out"), "--model", str(random_pip), "--task", "denoise_25"]) == 1
    assert time.monotonic() - started < 60
    summary = _summary(tmp_path / "out")
    assert summary["restored"] == [str(tmp_path / "out" / "zz_good.png")]
    assert len(summary["failed"]) == 3
    for bomb, line in zip(sorted(bombs), sorted(summary["failed"])):
        assert line.startswith(f"{bomb}: ") and "megapixels) is over the limit of 50 megapixels" in line
    # The limit is a flag: a small one refuses the good photo too, and says its size.
    height, width = scene[1].shape[:2]
    assert main([str(folder / "zz_good.png"), "--out", str(tmp_path / "out2"), "--model", str(random_pip),
                 "--task", "denoise_25", "--max-pixels", "1000"]) == 1
    assert f"{width}x{height} pixels" in _summary(tmp_path / "out2")["failed"][0]


def test_inputs_that_share_an_output_name_keep_distinct_ones(random_pip, scene, tmp_path):
    """a/x.png and b/x.png, y.jpg and y.png: four inputs, four outputs, and the summary counts what was written."""
    from pip_model.apps.restore import collect_inputs, output_names

    for name in ("a/x.png", "b/x.png", "c/y.png"):
        write_png(tmp_path / "in" / name, scene[1])
    from PIL import Image

    Image.fromarray(np.round(scene[1] * 255).astype(np.uint8)).save(tmp_path / "in" / "c" / "y.jpg")
    inputs = [tmp_path / "in" / "a" / "x.png", tmp_path / "in" / "b" / "x.png", tmp_path / "in" / "c"]
    for overwrite in ([], ["--overwrite"]):
        assert main([*map(str, inputs), "--out", str(tmp_path / "out"), "--model", str(random_pip), "--task",
                     "denoise_25", *overwrite]) == 0
        summary = _summary(tmp_path / "out")
        written = sorted(path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*.png"))
        assert written == ["a/x.png", "b/x.png", "y_jpg.png", "y_png.png"]
        assert len(summary["restored"] if overwrite else summary["restored"] + summary["skipped"]) == 4
    assert collect_inputs([inputs[0], inputs[0]])[0] == [(inputs[0], Path("x.png"))]  # a file given twice: once
    # A name made for a clash that a third input already has.
    clash = [(tmp_path / "in" / "c" / "y.jpg", Path("y.jpg")), (tmp_path / "in" / "c" / "y.png", Path("y.png")),
             (tmp_path / "y_jpg.png", Path("y_jpg.png"))]
    assert output_names(clash) == [Path("y_jpg.png"), Path("y_png.png"), Path("y_jpg_2.png")]


def test_an_output_folder_inside_the_input_is_not_restored_again(random_pip, scene, tmp_path):
    write_png(tmp_path / "photos" / "photo.png", scene[1])
    arguments = [str(tmp_path / "photos"), "--out", str(tmp_path / "photos" / "restored"), "--model",
                 str(random_pip), "--task", "denoise_25", "--compare"]
    for _ in range(2):
        assert main(arguments) == 0
    restored = sorted(p.relative_to(tmp_path / "photos").as_posix() for p in (tmp_path / "photos").rglob("*.png"))
    assert restored == ["photo.png", "restored/photo.png", "restored/photo_compare.png"]


def test_an_unwritable_output_is_found_before_any_work(random_pip, scene, tmp_path, capsys):
    write_png(tmp_path / "in" / "photo.png", scene[1])
    (tmp_path / "a_file").write_text("")
    started = time.monotonic()
    code = main([str(tmp_path / "in"), "--out", str(tmp_path / "a_file" / "out"), "--model", str(random_pip),
                 "--task", "denoise_25"])
    said = capsys.readouterr()
    assert code == 2 and said.err.startswith(f"restore: --out {tmp_path / 'a_file' / 'out'}: cannot write there")
    assert "[1/1]" not in said.out and time.monotonic() - started < 10  # before any image was restored


def test_a_killed_run_leaves_no_temporary_file_and_outputs_come_whole_with_their_compare(random_pip, scene, tmp_path):
    """A kill between the compare image and the output: the rerun removes the temporary file left behind and
    redoes that image (its output does not exist); an output that exists always has its compare image. Outputs
    are readable by others (the umask's permissions, not the temporary file's 0600)."""
    write_png(tmp_path / "in" / "photo.png", scene[1])
    out = tmp_path / "out"
    out.mkdir()
    left = out / ".photo.png.abcd1234.tmp"
    left.write_bytes(b"half")
    write_png(out / "photo_compare.png", scene[0])  # the compare image of the killed run, its output missing
    previous = os.umask(0o022)
    try:
        assert main([str(tmp_path / "in"), "--out", str(out), "--model", str(random_pip), "--task", "denoise_25",
                     "--compare"]) == 0
    finally:
        os.umask(previous)
    assert not left.exists() and sorted(p.name for p in out.iterdir()) == [
        "photo.png", "photo_compare.png", "restore_summary.json"]
    compare = read_image(out / "photo_compare.png")
    assert compare.size[1] == 2 * scene[1].shape[1]  # redone with its output
    band = compare.size[0] - scene[1].shape[0]  # the labels' band above both panels: white with dark text
    assert 14 <= band <= 32 and compare.rgb[:band].min() < 0.3 and np.median(compare.rgb[:band]) == 1.0
    assert (out / "photo.png").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(("arguments", "message"), [
    (["--mix", "rain=nan"], "restore: --mix: weight of rain is nan"),
    (["--mix", "rain=inf"], "restore: --mix: weight of rain is inf"),
    (["--mix", "rain=1e308,haze=1e308"], "restore: --mix: weight of rain is 1e308"),
    (["--task", "auto", "--sensor", "MODEL"], "holds pip_nafnet_tiny, a restorer, not a sensor"),
    (["--task", "auto", "--sensor", "missing.pt"], "restore: --sensor missing.pt: no such checkpoint file"),
    (["--task", "derain", "--device", "cuda"], "restore: --device cuda: this torch build or machine has no CUDA"),
])
def test_a_bad_flag_gets_one_line_and_exit_2(random_pip, scene, tmp_path, monkeypatch, capsys, arguments, message):
    if torch.cuda.is_available() and "cuda" in arguments:
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "in" / "photo.png", scene[1])
    arguments = [str(random_pip) if argument == "MODEL" else argument for argument in arguments]
    assert main(["in", "--out", "out", "--model", str(random_pip), *arguments]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("flag", [["--overlap", "-1"], ["--tile", "8"], ["--max-pixels", "lots"]])
def test_a_bad_number_is_a_usage_error(flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["in", "--out", "out", "--task", "derain", *flag])
    assert exit_.value.code == 2 and f"argument {flag[0]}" in capsys.readouterr().err


def test_checkpoints_that_are_not_state_dicts_get_one_line(tmp_path):
    torch.save({"epoch": 3, "step": 100}, tmp_path / "ints.pth")
    with pytest.raises(RestoreError, match=r"'epoch' holds int"):
        load_restorer(str(tmp_path / "ints.pth"), "cpu")
    torch.save({"format": "pip_model/1", "model_name": "pip_nafnet_tiny"}, tmp_path / "no_weights.pt")
    with pytest.raises(RestoreError, match="without its weights or model name"):
        load_restorer(str(tmp_path / "no_weights.pt"), "cpu")
