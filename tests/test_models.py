"""Every registered model honours the one forward contract of the project."""

from __future__ import annotations

import re

import pytest
import torch

import pip_model
from pip_model import PAPER_CLASSES, PIPConfig, build_model, list_models

NUM_CLASSES = len(PAPER_CLASSES)
from pip_model.networks.registry import model_spec
from tests.helpers.models import randomise_output

RESTORERS = list_models("restorer")
PROMPTED = [name for name in RESTORERS if name.startswith("pip_")]
TINY_PROMPTED = [name for name in PROMPTED if name.endswith("_tiny")]


def _images(batch: int = 2, height: int = 37, width: int = 45, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=TINY_PROMPTED)
def tiny_pip(request) -> torch.nn.Module:
    torch.manual_seed(0)
    return randomise_output(build_model(request.param)).eval()


def test_registry_names_and_sizes():
    required = {"pip_restormer", "restormer", "pip_nafnet", "nafnet", "sensor", "sensor_tiny"}
    required |= {f"{name}_tiny" for name in ("pip_restormer", "restormer", "pip_nafnet", "nafnet")}
    assert required <= set(list_models())
    # The exceptions: promptir_tiny's fusion block at the bottleneck costs a latent block (see the registry), and
    # adair_tiny's three frequency modules are three cross-attentions at their levels' widths.
    limits = {"promptir_tiny": 1_310_000, "adair_tiny": 1_320_000}
    for name in list_models():
        if name.endswith("_tiny"):
            assert sum(p.numel() for p in build_model(name).parameters()) <= limits.get(name, 1_050_000), name
    with pytest.raises(ValueError, match="registered models: .*pip_restormer"):
        build_model("pip_restormer_huge")


def test_overrides_replace_constructor_arguments():
    model = build_model("restormer_tiny", dim=8)
    assert model.patch_embed.out_channels == 8
    plain = build_model("pip_restormer_tiny", pip=None)
    assert not plain.uses_prompts
    assert set(plain.state_dict()) == set(build_model("restormer_tiny").state_dict())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    model = randomise_output(build_model(name)).train()
    if model_spec(name).kind == "sensor":
        images = _images()
        output = model(images)
        assert output.shape == (2, NUM_CLASSES) and ((output > 0) & (output < 1)).all()  # a score per class
        scores, weights = model.prompt(images)
        torch.testing.assert_close(scores, output)
        torch.testing.assert_close(weights, output**8 / (output**8).sum(dim=1, keepdim=True))
        loss = model.logits(images).logsumexp(dim=1).sum()
    else:
        images = _images(height=19, width=29)  # padded to the network's multiple, cropped back; small for full sizes
        degradation = torch.tensor([0, 3]) if model.uses_prompts else None
        output = model(images, degradation)
        assert output.shape == images.shape
        loss = (output - images).abs().mean() + pip_model.prompt_regularization(model)
    assert torch.isfinite(output).all()
    loss.backward()
    # A mixture of experts runs only the experts its images chose (MoCE-IR): the others take no part in the step.
    idle = set(getattr(model, "idle_expert_parameters", list)())
    # AdaIR's band thresholds are cast to integers (published), so its threshold MLPs get no gradient.
    idle |= {n for n, _ in model.named_parameters() if re.match(r"fre\d\.rate_conv\.", n)}
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and n not in idle]
    assert not no_grad, f"parameters not reached by backward: {no_grad}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_one_hot_weights_equal_class_ids(tiny_pip):
    images, labels = _images(), torch.tensor([1, 4])
    with torch.no_grad():
        by_label = tiny_pip(images, labels)
        by_weights = tiny_pip(images, torch.nn.functional.one_hot(labels, NUM_CLASSES).float())
    assert torch.equal(by_label, by_weights)


def test_prompt_steers_the_output(tiny_pip):
    images = _images()
    with torch.no_grad():
        outputs = [tiny_pip(images, torch.full((2,), c)) for c in range(NUM_CLASSES)]
        half = torch.zeros(2, NUM_CLASSES)
        half[:, [0, 2]] = 0.5
        mixed = tiny_pip(images, half)
    for a in range(NUM_CLASSES):
        for b in range(a + 1, NUM_CLASSES):
            assert (outputs[a] - outputs[b]).abs().mean() > 1e-4, (a, b)
    assert not torch.allclose(mixed, outputs[0]) and not torch.allclose(mixed, outputs[2])


def test_a_scalar_class_id_applies_to_the_whole_batch(tiny_pip):
    images = _images()
    with torch.no_grad():
        torch.testing.assert_close(tiny_pip(images, torch.tensor(2)), tiny_pip(images, torch.tensor([2, 2])))


def test_missing_or_malformed_degradation_is_explained(tiny_pip):
    images = _images()
    with pytest.raises(ValueError, match=r"needs degradation=.*LongTensor \(B,\).*0..4, in the order of the model.s"):
        tiny_pip(images)
    with pytest.raises(ValueError, match=r"class ids must have shape \(2,\)"):
        tiny_pip(images, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"class ids must be in 0..4"):
        tiny_pip(images, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"prompt weights must have shape \(2, 5\)"):
        tiny_pip(images, torch.rand(2, 4))


@pytest.mark.parametrize("name", RESTORERS)
def test_new_restorers_start_as_the_identity(name):
    model = build_model(name).eval()
    images = _images(batch=1)
    with torch.no_grad():
        restored = model(images, torch.tensor([2]) if model.uses_prompts else None)
    torch.testing.assert_close(restored, images)


@pytest.mark.parametrize("name", [name for name in RESTORERS if not name.startswith("pip_") and name.endswith("_tiny")])
def test_plain_models_need_no_degradation(name):
    torch.manual_seed(0)
    model = randomise_output(build_model(name)).eval()
    images = _images()
    with torch.no_grad():
        restored = model(images)
        torch.testing.assert_close(restored, model(images, torch.tensor([0, 1])), rtol=0, atol=0)
    assert (restored - images).abs().mean() > 1e-3  # a real network, not the identity


def _confident_sensor(favoured: int) -> torch.nn.Module:
    """A sensor that scores ``favoured`` 0.99 and every other class 0.01, whatever the image."""
    sensor = build_model("sensor_tiny").eval()
    torch.nn.init.zeros_(sensor.classifier.weight)
    with torch.no_grad():
        sensor.classifier.bias.copy_((torch.nn.functional.one_hot(torch.tensor(favoured), NUM_CLASSES) * 2 - 1) * 4.5)
    return sensor


def test_sensor_probabilities_steer_pip_blindly():
    torch.manual_seed(0)
    restorer = randomise_output(build_model("pip_restormer_tiny")).eval()
    images = _images()
    with torch.no_grad():
        by_sensor = {c: restorer(images, _confident_sensor(c).prompt(images)[1]) for c in (1, 2)}
        probabilities = _confident_sensor(1).prompt(images)[1]
        by_weights = restorer(images, probabilities)
        by_class = restorer(images, torch.tensor([1, 1]))
    assert (probabilities[:, 1] > 0.9).all()
    # The sensor's scores make the prompt weights, so a rain-sure sensor restores nearly like the rain prompt
    # and clearly unlike a haze-sure one.
    torch.testing.assert_close(by_sensor[1], by_weights, rtol=0, atol=0)
    assert (by_sensor[1] - by_class).abs().mean() < 0.2 * (by_sensor[1] - by_sensor[2]).abs().mean()


def test_the_classes_found_share_the_prompt_and_a_doubt_weighs_little():
    """Classes scoring at least 0.6 are found and weigh alike (a composite gets its true mixture however sure the
    sensor is of each part); a fainter class weighs (score / 0.6) ** 8 of a found one."""
    sensor = build_model("sensor_tiny").eval()
    wanted = torch.tensor([0.99, 0.7, 0.3, 0.01, 0.6])
    with torch.no_grad():
        torch.nn.init.zeros_(sensor.classifier.weight)
        sensor.classifier.bias.copy_(torch.logit(wanted))
        scores, weights = sensor.prompt(_images())
    torch.testing.assert_close(scores[0], wanted)
    share = torch.tensor([1, 1, 0.5**8, (0.01 / 0.6) ** 8, 1])
    torch.testing.assert_close(weights, (share / share.sum()).expand(2, -1))


def test_nothing_found_leaves_the_image_as_it_is():
    """Every score under 0.3: no prompt weight at all, and the blind restoration hands the image back untouched,
    while an image of the same batch with a class found is restored."""
    from pip_model.evaluation.inference import restore
    from pip_model.networks.sensor import ABSENT_SCORE, nothing_found

    sensor = build_model("sensor_tiny").eval()
    with torch.no_grad():
        torch.nn.init.zeros_(sensor.classifier.weight)
        sensor.classifier.bias.copy_(torch.logit(torch.full((5,), ABSENT_SCORE - 0.01)))
        scores, weights = sensor.prompt(_images())
        assert (scores < ABSENT_SCORE).all() and (weights == 0).all() and nothing_found(weights).all()
        sensor.classifier.bias.copy_(torch.logit(torch.full((5,), ABSENT_SCORE + 0.01)))
        assert not nothing_found(sensor.prompt(_images())[1]).any()  # faint signs still make a blend

    restorer = randomise_output(build_model("pip_restormer_tiny")).eval()
    images = _images()
    with torch.no_grad():  # the first image's scores all under 0.3, the second's rain sure
        sensor.classifier.bias.copy_(torch.logit(torch.tensor([0.1, 0.9, 0.1, 0.1, 0.1])))
        sensor.classifier.weight[1, -1] = -200.0  # its top brightness quantile: a bright image loses its rain
        dark = torch.cat([images[:1], images[1:] * 0])
        blind = restore(restorer, dark, sensor=sensor)
        assert blind.left_alone.tolist() == [True, False]
        torch.testing.assert_close(blind.images[0], dark[0], rtol=0, atol=0)
        torch.testing.assert_close(blind.images[1:], restorer(dark[1:], blind.weights[1:]))


def test_the_sensor_sees_how_bright_an_image_is():
    """Its conv features are normalised per image, so the exposure statistics are what tell a dark photograph
    from a normally exposed one: they are right (a half-dark, half-bright image), a large image's strided
    subsample gives its full quantiles, and the classifier reads them (a darker copy of the same image scores
    differently through them alone)."""
    from pip_model.networks.sensor import EXPOSURE_QUANTILES, EXPOSURE_SAMPLES, exposure_statistics

    split = torch.cat([torch.full((1, 3, 8, 16), 0.1), torch.full((1, 3, 8, 16), 0.7)], dim=2)
    statistics = exposure_statistics(split)[0]
    torch.testing.assert_close(statistics[:3], torch.full((3,), 0.4))
    torch.testing.assert_close(statistics[3:6], torch.full((3,), 0.3))
    assert statistics[6:].tolist() == pytest.approx([0.1, 0.4, 0.7, 0.7], abs=1e-6)  # quantiles 0.1 ... 0.99
    assert len(statistics) == 6 + len(EXPOSURE_QUANTILES)
    large = torch.rand(1, 3, 512, 4 * EXPOSURE_SAMPLES // 512, generator=torch.Generator().manual_seed(0))
    every_pixel = torch.quantile(large.mean(dim=1).flatten(), torch.tensor(EXPOSURE_QUANTILES))
    torch.testing.assert_close(exposure_statistics(large)[0, 6:], every_pixel, atol=0.01, rtol=0)

    sensor = build_model("sensor_tiny").eval()
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sensor.classifier.weight[:, :-len(statistics)] = 0  # only the exposure columns left
        assert not torch.allclose(sensor.logits(image), sensor.logits(0.2 * image), atol=1e-3)


def test_pip_at_chosen_levels_only():
    config = PIPConfig(levels=(2,), prompt_channels=(32,), prompt_sizes=(8,))
    model = build_model("nafnet_tiny", pip=config)
    assert list(model.pip) == ["level2"]
    assert model(_images(), torch.tensor([0, 1])).shape == (2, 3, 37, 45)
    with pytest.raises(ValueError, match=r"PIP levels \[5\] do not exist"):
        build_model("nafnet_tiny", pip=PIPConfig(levels=(5,), prompt_channels=(8,), prompt_sizes=(8,)))
    with pytest.raises(ValueError, match="one entry per level"):
        PIPConfig(levels=(1, 2), prompt_channels=(8,), prompt_sizes=(8,))


@pytest.mark.parametrize("name", ["pip_restormer_tiny", "pip_nafnet_tiny", "restormer_tiny", "promptir_tiny",
                                  "sensor_tiny"])
def test_bf16_autocast_and_channels_last(name):
    torch.manual_seed(0)
    model = randomise_output(build_model(name)).eval()
    images = _images(height=32, width=40)
    arguments = (torch.tensor([0, 2]),) if getattr(model, "uses_prompts", False) else ()
    with torch.no_grad():
        reference = model(images, *arguments)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(images.to(memory_format=torch.channels_last), *arguments)
    assert fast.shape == reference.shape and torch.isfinite(fast).all()
    assert fast.is_contiguous(memory_format=torch.channels_last) or fast.dim() == 2
    # bf16 rounds: close to fp32, but it must be a real bf16 computation, not a copy of the fp32 one.
    error = (fast.float() - reference).abs().mean()
    assert 0 < error < 0.05 * reference.abs().mean()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pip_restormer_tiny", "pip_nafnet_tiny", "promptir_tiny"])
def test_torch_compile_matches_eager(name):
    torch.manual_seed(0)
    model = randomise_output(build_model(name)).eval()
    images = _images(height=32, width=32)
    labels = torch.tensor([0, 3]) if model.uses_prompts else None
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images, labels), model(images, labels), atol=1e-4, rtol=1e-4)


def test_promptir_weighs_its_prompts_by_the_image_alone():
    """PromptIR is blind: each image picks its own blend of the learned prompts, and every prompt level is live."""
    torch.manual_seed(0)
    model = randomise_output(build_model("promptir_tiny")).eval()
    assert not model.uses_prompts
    blends = []
    model.decoder_prompts.level3.generate.weights.register_forward_hook(
        lambda module, inputs, output: blends.append(output.softmax(dim=1)))
    images = torch.cat([_images(batch=1, seed=1), _images(batch=1, seed=2) * 0.2])  # a bright and a dark image
    with torch.no_grad():
        restored = model(images)
    (blend,) = blends
    assert blend.shape == (2, 5) and torch.allclose(blend.sum(dim=1), torch.ones(2))
    assert (blend[0] - blend[1]).abs().max() > 1e-3
    # Alone, each image gets what it got in the batch: nothing is shared across a batch.
    with torch.no_grad():
        torch.testing.assert_close(model(images[1:]), restored[1:], atol=1e-5, rtol=0)
    for level in (model.decoder_prompts.level1, model.decoder_prompts.level2, model.decoder_prompts.level3):
        with torch.no_grad():
            saved = level.generate.bank.clone()
            level.generate.bank.mul_(0.5)
            changed = (model(images) - restored).abs().mean()
            level.generate.bank.copy_(saved)
        assert changed > 1e-5


def test_the_served_restorer_takes_its_prompt_as_weights_or_in_words():
    """What the registry holds: called like build_model's models, or with the prompt named as MLflow's pyfunc
    passes its inference params (a task, a composite, a class or a mixture); a plain backbone ignores prompts;
    the output is clamped to [0, 1], and the bundled sensor is pickled with the model."""
    import pickle

    from pip_model.apps.serving import ServedRestorer

    torch.manual_seed(0)
    model = randomise_output(build_model("pip_nafnet_tiny")).eval()
    served = ServedRestorer(model, sensor=build_model("sensor_tiny").eval(), sensor_name="sensor_tiny")
    images = _images()
    mixture = torch.tensor([[0.0, 0.7, 0.3, 0.0, 0.0]] * 2)
    with torch.no_grad():
        rain = model(images, torch.tensor([1, 1])).clamp(0, 1)
        # One image at a time (bounded memory): equal to the batched call up to float summation order.
        torch.testing.assert_close(served(images, torch.tensor([1, 1])), rain)
        torch.testing.assert_close(served(images, task="derain"), rain)
        torch.testing.assert_close(served(images, task="rain=0.7,haze=0.3"), model(images, mixture).clamp(0, 1))
        torch.testing.assert_close(served(images, task="derain_dehaze"),
                                   model(images, torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0]] * 2)).clamp(0, 1))
        plain = ServedRestorer(build_model("nafnet_tiny").eval())
        torch.testing.assert_close(plain(images, task="derain"), plain.model(images).clamp(0, 1))
    with pytest.raises(ValueError, match="this PIP model needs a prompt"):
        served(images)
    with pytest.raises(ValueError, match="unknown prompt 'fog'"):
        served(images, task="fog")
    with pytest.raises(ValueError, match=r"snow needs the prompt class\(es\) snow, which this model was not built"):
        served(images, task="snow")  # a class of the registry, not of this model
    copy = pickle.loads(pickle.dumps(served))
    with torch.no_grad():
        torch.testing.assert_close(copy(images, task="auto"), served(images, task="auto"))


def test_a_models_classes_are_its_own_saved_with_it_and_a_new_family_leaves_the_published_layout(tmp_path):
    """A model trained on snow gets a sixth prompt; its file keeps the six and rebuilds them; a file from before
    class sets loads with the paper's five; the published networks keep five whatever the registry holds."""
    from pip_model.evaluation.inference import restore
    from pip_model.networks.checkpoints import load_model_file, save_model_file
    from pip_model.tasks import CLASSES, classes_for

    assert len(CLASSES) > NUM_CLASSES  # snow and JPEG are registered ...
    published = build_model("pip_restormer")
    assert published.pip.level1.prompt.degradation_prompt.bank.shape[0] == NUM_CLASSES  # ... and change nothing here
    six = classes_for(["derain", "desnow"])
    torch.manual_seed(0)
    model = randomise_output(build_model("pip_nafnet_tiny", classes=six)).eval()
    assert model.classes == six and model.pip.level1.prompt.degradation_prompt.bank.shape[0] == 6
    save_model_file(tmp_path / "six.pt", model, model_name="pip_nafnet_tiny")
    loaded, _ = load_model_file(tmp_path / "six.pt")
    assert loaded.classes == six
    images = _images()
    with torch.no_grad():
        snow = model(images, torch.tensor([5, 5]))  # class id 5 of its six: snow
        torch.testing.assert_close(restore(loaded, images, tasks=["desnow"]).images, snow)
    content = torch.load(tmp_path / "six.pt", weights_only=True)
    five = build_model("pip_nafnet_tiny")
    save_model_file(tmp_path / "old.pt", five, model_name="pip_nafnet_tiny")
    old = torch.load(tmp_path / "old.pt", weights_only=True)
    del old["classes"]  # as written before class sets were saved
    torch.save(old, tmp_path / "old.pt")
    assert load_model_file(tmp_path / "old.pt")[0].classes == PAPER_CLASSES
    content["classes"] = list(PAPER_CLASSES)  # six prompts in the weights, five named: it says which tensor differs
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: its pip_nafnet_tiny does not fit .*degradation_prompt.bank"):
        load_model_file(tmp_path / "bad.pt")
    content["classes"] = [*PAPER_CLASSES, "__import__('os')"]  # a name no family defines is refused, not used
    torch.save(content, tmp_path / "hostile.pt")
    with pytest.raises(ValueError, match=r"hostile.pt: classes must be distinct prompt classes of noise, rain"):
        load_model_file(tmp_path / "hostile.pt")


def test_a_sensors_prompt_moves_onto_the_models_classes():
    """A sensor that knows snow steers a five-class model: its weights move onto the model's classes; an image in
    which it finds only snow, which the model has no prompt for, is left as it is."""
    from pip_model.evaluation.inference import restore
    from pip_model.tasks import classes_for

    six = classes_for(["desnow"])
    sensor = build_model("sensor_tiny", classes=six).eval()
    with torch.no_grad():
        sensor.classifier.weight.zero_()
        sensor.classifier.bias.copy_(torch.tensor([-9.0, 9.0, -9.0, -9.0, -9.0, 9.0]))  # rain and snow, sure
        torch.manual_seed(0)
        model = randomise_output(build_model("pip_nafnet_tiny")).eval()
        images = _images()
        result = restore(model, images, sensor=sensor)
        torch.testing.assert_close(result.images, model(images, torch.tensor([1, 1])))  # rain alone, renormalised
        assert result.classes == PAPER_CLASSES and result.sensor_classes == six
        sensor.classifier.bias.copy_(torch.tensor([-9.0, -9.0, -9.0, -9.0, -9.0, 9.0]))  # snow alone
        alone = restore(model, images, sensor=sensor)
    assert alone.left_alone.all() and torch.equal(alone.images, images)
