"""Our adair computes the published AdaIR's function, its frequency split included.

The reference outputs (``adair/`` of the reference folder) were recorded from the published implementation with
deterministic weights (:mod:`tests.helpers.adair_weights`). At 64x64 and 48x80 every spectral box is empty; the
512x512 case is the smallest input whose last frequency block splits its bands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pip_model import build_model, load_published
from pip_model.apps.restore import main
from pip_model.data.images import to_array, to_tensor
from pip_model.evaluation.tiling import for_inference, memory_format_of
from pip_model.image_files import read_image, write_png
from pip_model.networks.reference import ADAIR, ReferenceCheckpointError
from tests.helpers.adair_weights import ADAIR_TABLE, adair_state_dict
from tests.helpers.reference_weights import lightning_checkpoint, reference_dir, reference_layout

REFERENCE = reference_dir()
if REFERENCE is None and os.environ.get("PIP_REQUIRE_REFERENCE"):
    raise RuntimeError("PIP_REQUIRE_REFERENCE is set but no reference files were found; set PIP_REFERENCE_DIR")
HAS_ADAIR = REFERENCE is not None and (REFERENCE / ADAIR_TABLE).is_file()
needs_reference = pytest.mark.skipif(not HAS_ADAIR, reason="shared/reference/adair is not beside this checkout")

# From the reference README: 587 published tensors, of which 9 (18,738 numbers) are built but never used.
PUBLISHED_TENSORS, PUBLISHED_NUMBERS = 587, 28_784_824
UNUSED_TENSORS, UNUSED_NUMBERS = 9, 18_738
LIVE_PARAMETERS = 28_766_086
TOLERANCE = 1e-4  # the float32 reference is within 4.8e-5 of the same model in float64


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return adair_state_dict(REFERENCE)


@pytest.fixture(scope="module")
def lightning_file(state, tmp_path_factory) -> Path:
    """The same tensors as AdaIR's released ``adair5d.ckpt`` holds them: a Lightning file, the network as ``net``."""
    path = tmp_path_factory.mktemp("released") / "adair5d.ckpt"
    torch.save(lightning_checkpoint(state), path)
    return path


@pytest.fixture(scope="module")
def model(lightning_file) -> torch.nn.Module:
    loaded, network = load_published(lightning_file)
    assert network is ADAIR and network.title == "the published AdaIR"
    return loaded


@needs_reference
def test_layout_and_live_parameter_count(state):
    assert len(reference_layout(REFERENCE, ADAIR_TABLE)) == PUBLISHED_TENSORS
    assert sum(v.numel() for v in state.values()) == PUBLISHED_NUMBERS
    unused = {key: value for key, value in state.items() if ADAIR.unused.match(key)}
    assert len(unused) == UNUSED_TENSORS and sum(v.numel() for v in unused.values()) == UNUSED_NUMBERS
    ours = build_model("adair").state_dict()
    assert len(ours) == PUBLISHED_TENSORS - UNUSED_TENSORS
    assert sum(v.numel() for v in ours.values()) == PUBLISHED_NUMBERS - UNUSED_NUMBERS == LIVE_PARAMETERS
    assert ADAIR.our_key("fre3.channel_cross_h.q.weight") == "fre3.low_attention.q.weight"


@needs_reference
@pytest.mark.parametrize("case", ["a", "b"])
def test_matches_the_reference_vectors(model, case):
    vectors = np.load(REFERENCE / "adair" / "adair_vectors.npz")
    with torch.no_grad():
        restored = model(torch.from_numpy(vectors[f"input_{case}"]))
    assert (restored - torch.from_numpy(vectors[f"output_{case}"])).abs().max().item() <= TOLERANCE


@needs_reference
def test_the_raw_state_dict_loads_the_same_network(state, model):
    loaded, network = load_published(state)
    assert network is ADAIR
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(ReferenceCheckpointError, match="expected a checkpoint of moce_ir, found one of the "
                                                       "published AdaIR"):
        load_published(state, expect="moce_ir")


@needs_reference
def test_the_inference_layout_matches_the_reference_vectors(state):
    """What evaluate and prompt-restore run (channels-last here) computes the published function too."""
    fast = for_inference(load_published(state)[0])
    vectors = np.load(REFERENCE / "adair" / "adair_vectors.npz")
    with torch.no_grad():
        restored = fast(torch.from_numpy(vectors["input_b"]).contiguous(memory_format=memory_format_of(fast)))
    assert (restored - torch.from_numpy(vectors["output_b"])).abs().max().item() <= TOLERANCE


@needs_reference
def test_matches_the_reference_where_the_spectrum_splits(model, monkeypatch):
    """512x512, the smallest input whose last frequency module splits its bands (a 2x2-bin box; fre1 and fre2 stay
    empty): one forward pass, about 40 s on two CPU cores."""
    vectors = np.load(REFERENCE / "adair" / "adair_large_vectors.npz")
    images = torch.from_numpy(vectors["input_c"].astype(np.float32) / 255)
    low_bands = {}
    for name in ("fre1", "fre2", "fre3"):
        module = getattr(model, name)

        def recording(image, name=name, bands=module.bands):
            low, high = bands(image)
            low_bands[name] = low.abs().max().item()
            return low, high

        monkeypatch.setattr(module, "bands", recording)
    with torch.no_grad():
        restored = model(images)
    assert (restored[..., ::4, ::4] - torch.from_numpy(vectors["output_c_sub4"])).abs().max().item() <= TOLERANCE
    assert low_bands["fre1"] == low_bands["fre2"] == 0 and low_bands["fre3"] > 1e-3


@needs_reference
@pytest.mark.slow
def test_matches_the_reference_where_the_spectrum_splits_and_the_split_matters(model):
    """512x512: emptying the last frequency module's box (the threshold MLP's last layer negated) moves the output as
    the reference README says (0.016 on average), so the split is the published one, not only present. The encoder
    runs once, the decoder twice: about 70 s on two CPU cores, hence slow (opt in with -m slow)."""
    vectors = np.load(REFERENCE / "adair" / "adair_large_vectors.npz")
    images = torch.from_numpy(vectors["input_c"].astype(np.float32) / 255)
    threshold = model.fre3.rate_conv[2].weight
    with torch.no_grad():
        # A multiple of 8 needs no padding: decode(encode(x)) is the forward pass, and the encoder runs once.
        bottleneck, skips = model.encode(images)
        restored = model.decode(bottleneck, skips, images)
        threshold.neg_()
        try:
            without_split = model.decode(bottleneck, skips, images)
        finally:
            threshold.neg_()
    assert (restored[..., ::4, ::4] - torch.from_numpy(vectors["output_c_sub4"])).abs().max().item() <= TOLERANCE
    assert (without_split - restored).abs().mean().item() > 10 * TOLERANCE  # the reference moved by 0.016


def test_tiny_forward_backward_keeps_the_shape_and_the_threshold_gets_no_gradient():
    torch.manual_seed(0)
    model = build_model("adair_tiny").train()
    torch.nn.init.normal_(model.output.weight, std=0.05)  # a new model is the identity
    images = torch.rand(1, 3, 24, 40)
    restored = model(images)
    assert restored.shape == images.shape and torch.isfinite(restored).all()
    (restored - images).abs().mean().backward()
    without = sorted(name for name, p in model.named_parameters() if p.grad is None)
    # The box's sides are whole bins: as published, nothing reaches the MLP that picks them.
    assert without == [f"fre{i}.rate_conv.{j}.weight" for i in (1, 2, 3) for j in (0, 2)]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@needs_reference
def test_prompt_restore_with_the_released_file_keeps_every_pixel(lightning_file, model, tmp_path):
    """``prompt-restore --model adair5d.ckpt`` on an image whose sides are not multiples of 8 (AdaIR's own test
    crops them to multiples of 16 and saves 481x321 as 480x320): the output is the input's size, the network's."""
    photo = tmp_path / "photo.png"
    write_png(photo, np.random.default_rng(0).random((33, 41, 3), dtype=np.float32))
    assert main([str(photo), "--out", str(tmp_path / "out"), "--model", str(lightning_file), "--device", "cpu"]) == 0
    with torch.no_grad():
        expected = model(to_tensor(read_image(photo).rgb)[None])[0].clamp(0, 1)
    restored = read_image(tmp_path / "out" / "photo.png").rgb
    assert restored.shape == (33, 41, 3)
    # 8-bit rounding, and the channels-last layout's float rounding (these random weights reach |14|).
    assert np.abs(restored - to_array(expected)).max() <= 0.5 / 255 + TOLERANCE
    summary = json.loads((tmp_path / "out" / "restore_summary.json").read_text())
    assert summary["model"] == f"{lightning_file} (published AdaIR checkpoint)"
