"""The published recipes: their values load from params.yaml's protocols, the schedule by epoch is the published
scheduler's, the sampler draws the published task shares, and micro-batches take the step of the whole batch."""

from __future__ import annotations

import copy
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from flows.common import set_params
from pip_model.config import load_section
from pip_model.data.corpus import PrepareConfig
from pip_model.data.sampling import OnlinePairSampler, augment
from pip_model.engine.loop import Optimisation, epoch_lr_factor, lr_schedule, train, training_step
from pip_model.engine.losses import pixel_loss, prompt_regularization
from pip_model.engine.recipes import TrainConfig, load_train_config
from pip_model.engine.resume import resume_mismatch
from pip_model.networks.registry import build_model
from pip_model.protocols import protocol_overrides

ROOT = Path(__file__).resolve().parents[1]
EPOCH_3TASK, EPOCH_5TASK = 142_431, 162_646


def _recipe(tmp_path: Path, protocol: str, method: str) -> TrainConfig:
    """``train`` as `python -m flows.paper PROTOCOL DIR --method METHOD` sets it."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path, protocol_overrides(ROOT, protocol, "/data", method=method))
    return load_train_config(tmp_path / "params.yaml")


@pytest.mark.parametrize("protocol, epoch", [("3task", EPOCH_3TASK), ("5task", EPOCH_5TASK)])
def test_the_published_recipes_load_from_the_protocols(tmp_path, protocol, epoch):
    pip = _recipe(tmp_path / "pip", protocol, "pip")
    assert (pip.lr, pip.batch_size, pip.accumulate, pip.loss) == (3.6e-4, 48, 8, "smooth_l1")
    assert (pip.prompt_regularizer, pip.regularizer_weight, pip.grad_clip) == ("angle", 0.002, 0)
    assert pip.betas == (0.9, 0.999) and pip.weight_decay == 0.01 and pip.patch == 128
    assert (pip.epochs, pip.warmup_epochs, pip.schedule_epochs, pip.warmup_start) == (200, 10, 120, 0.1)
    assert pip.epoch_samples == epoch and pip.steps == 200 * epoch // 48
    promptir = _recipe(tmp_path / "promptir", protocol, "promptir")
    assert (promptir.lr, promptir.batch_size, promptir.accumulate, promptir.loss) == (2e-4, 32, 4, "l1")
    assert (promptir.prompt_regularizer, promptir.epochs, promptir.warmup_epochs, promptir.schedule_epochs,
            promptir.warmup_start, promptir.min_lr_ratio) == ("none", 120, 15, 150, 0.0, 0.0)
    assert promptir.steps == 120 * epoch // 32 and promptir.augment == pip.augment == "published"
    if protocol == "3task":  # the patches the published runs saw
        assert round(promptir.samples / 1e6, 1) == 17.1 and round(pip.samples / 1e6, 1) == 28.5
    lists = load_section(PrepareConfig, "prepare", tmp_path / "pip" / "params.yaml").train_lists
    assert lists == {"denoise": "data_dir/noisy/denoise.txt", "derain": "data_dir/rainy/rainTrain.txt",
                     "dehaze": "data_dir/hazy/hazy_outside.txt"}
    trial = TrainConfig(**{**pip.__dict__, "steps": 1000})  # train.steps=N cuts short on the published schedule
    assert trial.steps == 1000 and trial.schedule_epochs == 120


def _published_lr(epoch: int, *, warmup: int, horizon: int, start: float) -> float:
    """The multiplier of LinearWarmupCosineAnnealingLR after ``epoch`` calls of step() (eta_min 0), worked out by its
    recurrence (the chainable form PIP's trainer runs), independently of the closed form under test."""
    factor = start
    for e in range(1, epoch + 1):
        if e < warmup:
            factor += (1 - start) / (warmup - 1)
        elif e == warmup:
            factor = 1.0
        elif (e - 1 - horizon) % (2 * (horizon - warmup)) == 0:
            factor += (1 - math.cos(math.pi / (horizon - warmup))) / 2
        else:
            factor *= ((1 + math.cos(math.pi * (e - warmup) / (horizon - warmup)))
                       / (1 + math.cos(math.pi * (e - warmup - 1) / (horizon - warmup))))
    return factor


def test_the_schedule_by_epoch_is_the_published_scheduler():
    for warmup, horizon, start, epochs in ((10, 120, 0.1, 200), (15, 150, 0.0, 120)):  # PIP's, PromptIR's
        ours = [epoch_lr_factor(e, warmup=warmup, horizon=horizon, floor=0.0, start=start) for e in range(epochs)]
        published = [_published_lr(e, warmup=warmup, horizon=horizon, start=start) for e in range(epochs)]
        assert ours == pytest.approx(published, abs=1e-9)
    assert ours[0] == 0 and ours[14] == 1  # PromptIR: epoch 0 at lr 0, the peak at epoch 14
    config = TrainConfig(model="restormer_tiny", steps=0, epochs=3, epoch_samples=10, batch_size=4, warmup_steps=0,
                         warmup_epochs=1, cosine_epochs=3, warmup_start=0.5, min_lr_ratio=0.0)
    factors = [lr_schedule(config)(step) for step in range(config.steps)]
    assert config.steps == 7 and factors == pytest.approx([0.5, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5])  # epochs 0 0 0 1 1 2 2
    for wrong, message in (({"warmup_steps": 5}, "set train.warmup_steps to 0"),
                           ({"epoch_samples": 0}, "train.epochs counts epochs, but train.epoch_samples is 0"),
                           ({"accumulate": 3}, r"train_run.accumulate \(3\) must be >= 1 and divide")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**{**config.__dict__, "steps": 0, **wrong})


@pytest.mark.parametrize("batch_size", [8, 32, 48])
def test_the_sampler_draws_the_published_task_shares(tmp_path, batch_size):
    recipe = _recipe(tmp_path, "3task", "pip")
    assert recipe.task_draw == "fractions"  # the demo's "weights" draw favours haze (52.5% at batch 32)
    tasks = ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    sampler = OnlinePairSampler([torch.zeros(3, 8, 8)], tasks=tasks, patch=8, batch_size=batch_size, seed=0,
                                task_weights=recipe.task_weights, task_draw=recipe.task_draw)
    drawn = Counter(task for step in range(3000) for task, _ in sampler.plan(step))
    share = {task: count / (3000 * batch_size) for task, count in drawn.items()}
    noise = share["denoise_15"] + share["denoise_25"] + share["denoise_50"]
    # PromptIR's loader: noise 32.5% (each sigma a third), rain 16.9%, haze 50.6%.
    assert noise == pytest.approx(0.325, rel=0.02) and share["derain"] == pytest.approx(0.169, rel=0.03)
    assert share["dehaze"] == pytest.approx(0.506, rel=0.02)
    assert all(share[f"denoise_{sigma}"] == pytest.approx(0.325 / 3, rel=0.04) for sigma in (15, 25, 50))


def _batch(size: int = 4):
    sampler = OnlinePairSampler([torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(i)) for i in range(3)],
                                tasks=["denoise_25", "derain", "dehaze", "lowlight"], patch=16, batch_size=size, seed=0)
    return sampler.batch(3)


def _models(count: int) -> list[nn.Module]:
    torch.manual_seed(0)
    model = build_model("pip_restormer_tiny")
    return [copy.deepcopy(model) for _ in range(count)]


def _step(model: nn.Module, config: TrainConfig, batch) -> torch.Tensor:
    optimisation = Optimisation.adamw(model, lr=1e-3, weight_decay=0.01, steps=4, schedule=lr_schedule(config))
    figures, _, _ = training_step(model, model, batch, optimisation=optimisation, config=config,
                                  restoration_loss=pixel_loss(config.loss))
    return figures


def test_micro_batches_take_the_step_of_the_whole_batch():
    whole, halves = _models(2)
    config = TrainConfig(model="pip_restormer_tiny", batch_size=4, loss="smooth_l1", prompt_regularizer="angle",
                         regularizer_weight=0.002, grad_clip=0.0)
    batch = _batch()
    figures = _step(whole, config, batch)
    sizes: list[int] = []
    halves.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    accumulated = _step(halves, TrainConfig(**{**config.__dict__, "accumulate": 2}), batch)
    assert sizes == [2, 2] and torch.allclose(figures, accumulated, rtol=1e-5, atol=1e-7)
    for (name, a), b in zip(whole.named_parameters(), halves.parameters()):  # the mean's gradient, not the sum's
        assert a.grad is not None and torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-8), name
    for (name, a), b in zip(whole.state_dict().items(), halves.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert any(not torch.equal(a, b) for a, b in zip(whole.state_dict().values(), _models(1)[0].state_dict().values()))


def test_one_micro_batch_is_the_plain_step_bit_for_bit():
    """accumulate=1 is the step as it was before micro-batches: forward, loss plus regulariser, backward, clip,
    AdamW, schedule, in that order, on the same numbers."""
    ours, reference = _models(2)
    # The reference below feeds the default layout; channels-last inputs would change the last bits.
    config = TrainConfig(model="pip_restormer_tiny", batch_size=4, loss="smooth_l1", prompt_regularizer="angle",
                         regularizer_weight=0.002, grad_clip=0.5, channels_last=False)
    batch = _batch()
    figures = _step(ours, config, batch)
    optimisation = Optimisation.adamw(reference, lr=1e-3, weight_decay=0.01, steps=4, schedule=lr_schedule(config))
    restored = reference(batch.degraded, batch.prompts)
    loss = pixel_loss("smooth_l1")(restored.float(), batch.clean) + 0.002 * prompt_regularization(reference, "angle")
    optimisation.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    optimisation.optimizer.step()
    optimisation.scheduler.step()
    assert torch.equal(figures[0], loss.detach())
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_in_micro_batches_follows_the_same_curve(default_prepared, tmp_path):
    def run(accumulate: int):
        config = TrainConfig(model="restormer_tiny", steps=3, batch_size=4, patch=24, warmup_steps=1, threads=1,
                             workers=0, accumulate=accumulate, grad_clip=0.0)
        out = tmp_path / str(accumulate)
        return train(config, seed=0, device="cpu", prepared_dir=default_prepared, pairs_dir=None,
                     model_path=out / "m.pt", curve_path=out / "c.csv", checkpoint_path=out / "ck.pt", progress=False)

    one, four = run(1), run(4)
    assert one.curve["loss"].tolist() == pytest.approx(four.curve["loss"].tolist(), rel=1e-4)
    for a, b in zip(one.model.state_dict().values(), four.model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match=r"train_run.accumulate \(3\) must be >= 1 and divide"):
        TrainConfig(batch_size=4, accumulate=3)


def test_the_published_augmentation_turns_and_mirrors_but_never_leaves_a_crop_as_it_is():
    crop = torch.arange(6 * 4 * 4, dtype=torch.float32).reshape(6, 4, 4)  # a pair's two crops, stacked
    generator = torch.Generator().manual_seed(0)
    seen = {tuple(augment(crop, generator, channels=False).flatten().tolist()) for _ in range(300)}
    assert len(seen) == 7 and tuple(crop.flatten().tolist()) not in seen
    for outcome in seen:  # a rearrangement of each image's pixels, the channels in their order
        image = torch.tensor(outcome).reshape(6, 4, 4)
        assert all(sorted(image[c].flatten().tolist()) == sorted(crop[c].flatten().tolist()) for c in range(6))


def test_a_checkpoint_from_before_the_new_settings_still_resumes():
    config = TrainConfig(model="restormer_tiny")
    older = {name: value for name, value in config.__dict__.items()
             if name not in {"warmup_start", "epoch_samples", "epochs", "warmup_epochs", "cosine_epochs"}}
    assert resume_mismatch(older, config) == []
    assert resume_mismatch({**older, "warmup_start": 0.0}, config) == ["warmup_start 0.0 -> 0.1"]


def test_every_key_a_protocol_sets_is_in_params_yaml():
    """`dvc exp run -S KEY=VALUE` refuses a key params.yaml lacks (a `++` key adds one entry to a mapping)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    protocols = params["protocols"]
    overrides = [key for name, values in protocols.items() if name != "methods" for key in values]
    overrides += [key for method in protocols["methods"].values() for key in method]
    missing = []
    for key in overrides:
        node = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    assert missing == []


def test_scoring_a_file_leaves_every_training_recipe_out_of_the_data_experiment():
    """``--evaluate-only`` trains nothing: its data experiment carries the protocol, not a method's recipe."""
    scored = protocol_overrides(ROOT, "3task", "/data", method=None)
    trained = protocol_overrides(ROOT, "3task", "/data", method="pip")
    assert "train.lr" in trained and "train.lr" not in scored and "train_run.models" not in scored
    assert scored["degrade.test_noise"] == trained["degrade.test_noise"] == "published"
