"""Our promptir computes the published PromptIR's function, and its released checkpoint's format loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import pip_model
from pip_model.apps.restore import main
from pip_model.data.images import to_array, to_tensor
from pip_model.evaluation.tiling import for_inference
from pip_model.image_files import read_image, write_png
from pip_model.networks.reference import ReferenceCheckpointError, load_model_or_published
from tests.helpers.reference_weights import (
    PROMPTIR_TABLE,
    lightning_checkpoint,
    promptir_state_dict,
    reference_dir,
    reference_layout,
)

REFERENCE = reference_dir()
if REFERENCE is None and os.environ.get("PIP_REQUIRE_REFERENCE"):
    raise RuntimeError("PIP_REQUIRE_REFERENCE is set but no reference files were found; set PIP_REFERENCE_DIR")
pytestmark = pytest.mark.skipif(REFERENCE is None or not (REFERENCE / PROMPTIR_TABLE).is_file(),
                                reason="shared/reference/promptir is not beside this checkout")

LIVE_PARAMETERS = 35_376_967


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return promptir_state_dict(REFERENCE)


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    return dict(np.load(REFERENCE / "promptir" / "promptir_vectors.npz"))


@pytest.fixture(scope="module")
def lightning_file(state, tmp_path_factory) -> Path:
    """The same tensors as PromptIR's released file holds them: a Lightning checkpoint, the network as ``net``."""
    path = tmp_path_factory.mktemp("released") / "model.ckpt"
    torch.save(lightning_checkpoint(state), path)
    return path


@pytest.fixture(scope="module")
def loaded(lightning_file) -> torch.nn.Module:
    return pip_model.load_published(lightning_file)[0]


def test_layout_and_live_parameter_count(state):
    assert len(reference_layout(REFERENCE, PROMPTIR_TABLE)) == 548
    assert sum(v.numel() for v in state.values()) == 35_592_263
    unused = sum(v.numel() for k, v in state.items() if k.startswith(("chnl_reduce", "reduce_noise_channel_")))
    assert unused == 215_296
    assert sum(p.numel() for p in pip_model.build_model("promptir").parameters()) == LIVE_PARAMETERS


def _max_difference(model: torch.nn.Module, vectors: dict[str, np.ndarray], case: str) -> float:
    with torch.no_grad():
        restored = model(torch.from_numpy(vectors[f"input_{case}"]))
    return (restored - torch.from_numpy(vectors[f"output_{case}"])).abs().max().item()


@pytest.mark.parametrize("case", ["a", "b"])
def test_the_released_lightning_file_matches_the_reference_vectors(loaded, vectors, case):
    assert _max_difference(loaded, vectors, case) <= 1e-4


def test_channels_last_inference_matches_the_reference_vectors(lightning_file, vectors):
    fast = for_inference(pip_model.load_published(lightning_file)[0])
    assert max(_max_difference(fast, vectors, case) for case in "ab") <= 1e-4


def test_a_bare_or_ddp_state_dict_loads_the_same_and_says_what_it_is(state, vectors):
    for source in (state, {f"module.{key}": value for key, value in state.items()}):
        model, network = pip_model.load_published(source)
        assert network.model_name == "promptir" and network.title == "the published PromptIR"
        assert _max_difference(model, vectors, "b") <= 1e-4
    with pytest.raises(ReferenceCheckpointError, match="expected a checkpoint of pip_restormer"):
        pip_model.load_published(state, expect="pip_restormer")


def test_a_near_miss_lists_its_keys_and_other_content_is_refused_in_one_line(state, tmp_path):
    broken = dict(state)
    del broken["prompt2.conv3x3.weight"]
    broken["noise_level1.extra.weight"] = torch.zeros(1)
    broken["output.weight"] = torch.zeros(3, 96, 5, 5)
    with pytest.raises(ReferenceCheckpointError) as error:
        pip_model.load_published(broken)
    message = str(error.value)
    assert "decoder_prompts.level2.generate.conv.weight" in message and "noise_level1.extra.weight" in message
    assert "output.weight: got (3, 96, 5, 5)" in message
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ReferenceCheckpointError) as error:
        load_model_or_published(other)
    assert len(str(error.value).splitlines()) == 1 and "neither a model file of this project" in str(error.value)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PAYLOAD_MARKER']}",))


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    hostile = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"net.patch_embed.proj.weight": torch.zeros(1)}, "hyper_parameters": _Payload()},
               hostile)
    with pytest.raises(ReferenceCheckpointError, match="nothing in it was run"):
        pip_model.load_published(hostile)
    assert not marker.exists()


def test_prompt_restore_restores_with_the_released_file_at_any_size(lightning_file, loaded, tmp_path):
    """``prompt-restore --model model.ckpt`` on an image whose sides are not multiples of 8: no prompt needed."""
    photo = tmp_path / "photo.png"
    write_png(photo, np.random.default_rng(0).random((21, 30, 3), dtype=np.float32))
    assert main([str(photo), "--out", str(tmp_path / "out"), "--model", str(lightning_file), "--device", "cpu"]) == 0
    with torch.no_grad():
        expected = loaded(to_tensor(read_image(photo).rgb)[None])[0].clamp(0, 1)
    restored = read_image(tmp_path / "out" / "photo.png").rgb
    assert restored.shape == (21, 30, 3)
    assert np.abs(restored - to_array(expected)).max() <= 0.5 / 255 + 1e-5  # 8-bit rounding only
    summary = json.loads((tmp_path / "out" / "restore_summary.json").read_text())
    assert summary["model"] == f"{lightning_file} (published PromptIR checkpoint)"
