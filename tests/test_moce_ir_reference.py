"""Our moce_ir computes the published MoCE-IR's function and makes its routing decisions; its per-image routing keeps
the images of a batch apart, and the published routing option reproduces the published (noisy, coupled) evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pip_model import build_model, load_published
from pip_model.networks.reference import MOCE_IR, MOCE_IR_S, ReferenceCheckpointError
from tests.helpers.moce_ir_weights import MOCE_IR_TABLE, complexity, moce_ir_state_dict
from tests.helpers.reference_weights import lightning_checkpoint, reference_dir, reference_layout

REFERENCE = reference_dir()
if REFERENCE is None and os.environ.get("PIP_REQUIRE_REFERENCE"):
    raise RuntimeError("PIP_REQUIRE_REFERENCE is set but no reference files were found; set PIP_REFERENCE_DIR")
needs_reference = pytest.mark.skipif(REFERENCE is None or not (REFERENCE / MOCE_IR_TABLE).is_file(),
                                     reason="shared/reference/moce_ir is not beside this checkout")

# The experts each router chose, routers in the published order (dec.0.2.layers.0..3, dec.1..., dec.2...), as the
# reference README lists them for the deterministic vectors.
README_CHOICES = {"a": [[1, 1, 2, 1, 3, 3, 1, 2, 0, 2], [1, 1, 2, 1, 3, 3, 3, 2, 0, 2]],
                  "b": [[1, 1, 3, 3, 3, 3, 1, 2, 0, 2]]}


def _vectors(name: str) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(value) for key, value in np.load(REFERENCE / "moce_ir" / name).items()}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Torch on one thread: these small images gain little from a second, and on a busy 2-core machine OpenMP's
    waiting for it made this file take 68 s instead of 14 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return moce_ir_state_dict(REFERENCE)


@pytest.fixture(scope="module")
def lightning_file(state, tmp_path_factory) -> Path:
    """The same tensors as MoCE-IR's released ``last.ckpt`` holds them: a Lightning file, the network as ``net``,
    the experts' complexity buffers included."""
    path = tmp_path_factory.mktemp("released") / "last.ckpt"
    torch.save(lightning_checkpoint(state), path)
    return path


@pytest.fixture(scope="module")
def model(lightning_file) -> torch.nn.Module:
    loaded, network = load_published(lightning_file)
    assert network is MOCE_IR
    return loaded


@pytest.fixture(scope="module")
def vectors() -> dict[str, torch.Tensor]:
    return _vectors("moce_ir_vectors.npz")


@pytest.fixture(scope="module")
def alone(model, vectors) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each image of ``input_a`` and ``input_b`` run as its own batch: the outputs and each router's choice."""
    results = {}
    for case in "ab":
        outputs, choices = [], []
        for image in vectors[f"input_{case}"].split(1):
            with torch.no_grad():
                outputs.append(model(image))
            choices.append(model.chosen_experts()[..., 0])
        results[case] = torch.cat(outputs), torch.cat(choices)
    return results


@needs_reference
def test_layout_counts_and_the_complexity_buffers(state, model):
    layout = reference_layout(REFERENCE, MOCE_IR_TABLE)
    assert len(layout) == 1262 and sum(v.numel() for v in state.values()) == 25_353_836
    ours = build_model("moce_ir").state_dict()
    assert len(ours) == 1262 and sum(v.numel() for v in ours.values()) == 25_353_836
    assert sum(p.numel() for p in model.parameters()) == 25_353_796
    buffers = {key: value for key, value in state.items() if key.endswith(".complexity")}
    assert len(buffers) == 10
    for key, value in buffers.items():  # ours, as constructed, equal the experts' sizes counted by hand
        torch.testing.assert_close(ours[MOCE_IR.our_key(key)], value, rtol=0, atol=0)
    torch.testing.assert_close(complexity(192), torch.tensor([0.0673, 0.1512, 0.3682, 1.0]), rtol=0, atol=1e-4)


@needs_reference
@pytest.mark.parametrize("case", ["a", "b"])
def test_each_image_matches_the_reference_and_routes_as_published(alone, vectors, case):
    outputs, choices = alone[case]
    assert (outputs - vectors[f"output_{case}"]).abs().max().item() <= 1e-4
    assert choices.tolist() == README_CHOICES[case]


@needs_reference
def test_a_batch_gives_what_its_images_give_alone(model, alone, vectors):
    with torch.no_grad():
        batch = model(vectors["input_a"])
    # Float rounding only (batched convolutions sum in another order): outputs reach |14|, a float32 step 1e-6 there.
    torch.testing.assert_close(batch, alone["a"][0], rtol=0, atol=1e-4)
    assert torch.equal(model.chosen_experts()[..., 0], alone["a"][1])


@needs_reference
def test_every_expert_of_every_router_matches_the_routing_set(model):
    routing = _vectors("moce_ir_routing_vectors.npz")
    with torch.no_grad():  # one batch: per-image routing gives what the reference gave image by image
        restored = model(routing["input_c"])
    assert (restored - routing["output_c"]).abs().max().item() <= 1e-4
    assert torch.equal(model.chosen_experts()[..., 0], routing["experts_c"])
    assert model.idle_expert_parameters() == []  # the set reaches every expert


@pytest.fixture(scope="module")
def published_routing(state) -> torch.nn.Module:
    return load_published(state, routing="published")[0]


@needs_reference
def test_published_routing_reproduces_the_noisy_reference(published_routing, vectors):
    noisy = _vectors("moce_ir_noisy_vectors.npz")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the README's draws: ten successive randn(1, 4) after seeding
        assert torch.equal(torch.cat([torch.randn(1, 4) for _ in range(10)]), noisy["router_noise"])
        for case in "ab":
            for image, expected in zip(vectors[f"input_{case}"].split(1), noisy[f"output_{case}"].split(1)):
                torch.manual_seed(0)
                with torch.no_grad():
                    restored = published_routing(image)
                assert (restored - expected).abs().max().item() <= 1e-4
                noise = torch.cat([router.last.noise for router in published_routing.routers()])
                assert torch.equal(noise, 0.25 * noisy["router_noise"])  # our draws: the same, in the same order


@needs_reference
def test_published_routing_couples_the_images_of_a_batch(published_routing, alone, vectors, monkeypatch):
    for router in published_routing.routers():
        monkeypatch.setattr(router, "noise_std", 0.0)  # the coupling alone
    with torch.no_grad():
        coupled = published_routing(vectors["input_a"])
    # The two images choose differently at one router, so each is run through both experts (README: up to 0.066).
    assert 0.05 < (coupled - alone["a"][0]).abs().max().item() < 0.08


@needs_reference
def test_the_light_model_is_told_from_the_full_one_by_its_width():
    """MoCE-IR-S has MoCE-IR's keys at width 32: a checkpoint of it loads as moce_ir_s (its own published row)."""
    published_name = {MOCE_IR.our_key(name): name for name, _ in reference_layout(REFERENCE, MOCE_IR_TABLE)}
    light = build_model("moce_ir_s").state_dict()
    model, network = load_published({f"net.{published_name[key]}": value for key, value in light.items()})
    assert network is MOCE_IR_S and sum(p.numel() for p in model.parameters()) == 11_477_752


def test_published_routing_of_a_batch_needs_top_1():
    model = build_model("moce_ir_tiny", routing="published", top_k=2).eval()
    with pytest.raises(ValueError, match="needs top_k=1"), torch.no_grad():
        model(torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize(("name", "height", "width"), [("moce_ir_tiny", 13, 22), ("moce_ir_s", 12, 20)])
def test_training_routes_each_image_with_noise_and_trains_what_it_used(name, height, width):
    torch.manual_seed(0)
    model = build_model(name).train()
    torch.nn.init.normal_(model.output.weight, std=0.05)
    images = torch.rand(2, 3, height, width)  # sides that are not multiples of 8: padded inside, cropped back
    restored = model(images)
    assert restored.shape == images.shape and torch.isfinite(restored).all()
    restored.abs().mean().backward()
    no_grad = {key for key, p in model.named_parameters() if p.grad is None}
    assert no_grad == set(model.idle_expert_parameters())  # only the experts no image chose, as published
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    decision = model.routers()[0].last
    assert decision.noise is not None and decision.logits.requires_grad and decision.weights.shape == (2, 1)
    assert model.chosen_experts().shape == (2, len(model.routers()), 1)


def test_evaluation_is_deterministic_and_per_image():
    torch.manual_seed(0)
    model = build_model("moce_ir_tiny").eval()
    torch.nn.init.normal_(model.output.weight, std=0.05)
    images = torch.rand(3, 3, 21, 14)
    with torch.no_grad():
        batch = model(images)
        assert torch.equal(batch, model(images))
        alone = torch.cat([model(image) for image in images.split(1)])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-5)
    assert model.routers()[0].last.noise is None


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PAYLOAD_MARKER']}",))


def test_a_released_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    """A Lightning file with MoCE-IR's keys and a pickled call among its hyper-parameters: read with
    weights_only, refused, nothing run."""
    marker = tmp_path / "ran"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    hostile = tmp_path / "last.ckpt"
    weights = {f"net.{key}": value for key, value in build_model("moce_ir_tiny").state_dict().items()}
    torch.save({"state_dict": weights, "hyper_parameters": {"opt": _Payload()}}, hostile)
    with pytest.raises(ReferenceCheckpointError, match="nothing in it was run"):
        load_published(hostile)
    assert not marker.exists()
