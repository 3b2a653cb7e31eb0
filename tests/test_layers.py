"""Shared blocks and PIP pieces checked against plain, independent formulations."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pip_model import build_model, prompt_regularization
from pip_model.engine.losses import pixel_loss, prompt_bank_penalty, psnr_loss
from pip_model.networks.layers import (
    ChannelLayerNorm,
    CrossAttention,
    DualGateFeedForward,
    GatedDconvFeedForward,
    pad_to_multiple,
)
from pip_model.networks.pip import DegradationPrompt, PromptToFeature, match_channels
from pip_model.tasks import (
    CLASSES,
    PAPER_CLASSES,
    TASK_TO_CLASS,
    classes_for,
    parse_prompt,
    remap_weights,
    task_class,
    task_classes,
    task_components,
    task_label,
    task_prompt,
)


def test_task_names_map_to_fixed_classes():
    # The paper's five keep the ids of every manifest written before; a family added later appends its own.
    assert TASK_TO_CLASS == {
        "denoise_15": 0, "denoise_25": 0, "denoise_50": 0,
        "derain": 1, "dehaze": 2, "deblur": 3, "lowlight": 4, "desnow": 5, "dejpeg": 6,
    }
    assert CLASSES[:5] == PAPER_CLASSES == ("noise", "rain", "haze", "blur", "lowlight")
    with pytest.raises(ValueError, match="unknown task 'dehail'"):
        task_class("dehail")
    with pytest.raises(ValueError, match="'derain_dehaze' is a composite task with several classes"):
        task_class("derain_dehaze")


def test_composites_name_their_classes_and_prompts_can_be_named_in_words():
    assert task_components("lowlight_denoise") == ("lowlight", "denoise_15") and task_classes("derain") == (1,)
    assert task_components("lowlight_desnow_dehaze") == ("lowlight", "desnow", "dehaze")
    assert task_prompt("derain_dehaze", PAPER_CLASSES).tolist() == [0, 0.5, 0.5, 0, 0]
    assert task_label("deblur_denoise") == "3+0" and task_label("lowlight_desnow") == "4+5"
    assert parse_prompt("deblur", PAPER_CLASSES).tolist() == [0, 0, 0, 1, 0]
    assert parse_prompt("haze", PAPER_CLASSES).tolist() == [0, 0, 1, 0, 0]
    assert parse_prompt("rain=3, noise=1", PAPER_CLASSES).tolist() == pytest.approx([0.25, 0.75, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown prompt 'fog': give a task"):
        parse_prompt("fog", PAPER_CLASSES)
    with pytest.raises(ValueError, match="unknown task 'fog'"):
        task_components("fog")


def test_prompts_are_over_a_models_own_classes():
    """A model's classes are the paper's five plus those of the tasks it trained on beyond them, in registry order;
    a prompt for a class it lacks is refused with the classes it has, and a sensor's weights move onto its classes."""
    six = classes_for(["derain", "desnow_dehaze"])
    assert six == (*PAPER_CLASSES, "snow") and classes_for(["dejpeg", "desnow"]) == (*PAPER_CLASSES, "snow", "jpeg")
    assert classes_for(["derain"], base=("rain", "noise")) == ("rain", "noise")
    assert task_prompt("desnow_dehaze", six).tolist() == [0, 0, 0.5, 0, 0, 0.5]
    assert parse_prompt("snow=1,rain=1", six).tolist() == [0, 0.5, 0, 0, 0, 0.5]
    with pytest.raises(ValueError, match=r"task desnow needs the prompt class\(es\) snow, which this model was not "
                                         r"built with \(its classes: noise, rain, haze, blur, lowlight\)"):
        task_prompt("desnow", PAPER_CLASSES)
    with pytest.raises(ValueError, match="snow needs the prompt class"):
        parse_prompt("snow=1", PAPER_CLASSES)
    sensed = torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    assert remap_weights(sensed, six, PAPER_CLASSES).tolist() == [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert remap_weights(sensed[:, :5], PAPER_CLASSES, six).tolist() == [[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("kind", ["with_bias", "bias_free"])
def test_channel_layer_norm_matches_layer_norm_over_channels(kind):
    norm = ChannelLayerNorm(channels=6, kind=kind)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2, 6, 5, 7)
    moved = x.permute(0, 2, 3, 1)
    if kind == "with_bias":
        torch.nn.init.normal_(norm.bias)
        expected = F.layer_norm(moved, (6,), norm.weight, norm.bias, eps=1e-5)
    else:
        expected = moved / torch.sqrt(moved.var(-1, keepdim=True, unbiased=False) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected.permute(0, 3, 1, 2))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_inference_layer_norm_rounds_as_the_published_code(memory_format, threads):
    """Without gradients the norm is the published arithmetic bit for bit (Restormer's: pixels as rows, mean and
    variance apart, then (x - mean) / sqrt(var + eps) * w + b), so PIP's top-m scores round as the published ones."""
    norm = ChannelLayerNorm(channels=48, kind="with_bias")
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = (torch.randn(2, 48, 33, 31) * 3 + 1).contiguous(memory_format=memory_format)
    rows = x.flatten(2).transpose(1, 2)  # (B, H*W, C), a view as the published to_3d
    mean, var = rows.mean(-1, keepdim=True), rows.var(-1, keepdim=True, unbiased=False)
    expected = ((rows - mean) / torch.sqrt(var + 1e-5) * norm.weight + norm.bias).transpose(1, 2).reshape(x.shape)
    with torch.no_grad():
        assert torch.equal(norm(x), expected)
    assert not torch.equal(norm(x), expected)  # training keeps the fused kernel (its own rounding, twice as fast)


def _top_m_by_scatter(attention: CrossAttention, query: torch.Tensor, context: torch.Tensor,
                      kept_per_row: tuple[int, ...]) -> torch.Tensor:
    """Top-m attention written the direct way: a top-k mask per count kept, one output per mask."""
    heads = attention.heads
    q = attention.q_dwconv(attention.q(query))
    k, v = attention.kv_dwconv(attention.kv(context)).chunk(2, dim=1)
    b, c, h, w = q.shape
    q, k, v = (t.reshape(b, heads, c // heads, h * w) for t in (q, k, v))
    scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * attention.temperature
    out = 0
    for weight, kept_count in zip(attention.selection_weights, kept_per_row, strict=True):
        index = scores.topk(kept_count, dim=-1).indices
        mask = torch.zeros_like(scores).scatter_(-1, index, 1.0)
        kept = torch.where(mask > 0, scores, torch.full_like(scores, float("-inf")))
        out = out + weight * (kept.softmax(-1) @ v)
    return attention.project_out(out.reshape(b, c, h, w))


# The published top-m attention keeps int(C * 1/2), int(C * 2/3), int(C * 3/4) and int(C * 4/5) of the C channels
# of a head (rounded down), e.g. C = 24: 12, 16, 18 and 19.2 -> 19.
@pytest.mark.parametrize(("channels", "heads", "kept_per_row"), [
    (32, 2, (8, 10, 12, 12)),  # C = 16: 8, 10.67, 12, 12.8
    (30, 2, (7, 10, 11, 12)),  # C = 15: 7.5, 10, 11.25, 12
    (24, 1, (12, 16, 18, 19)),
    (40, 2, (10, 13, 15, 16)),  # C = 20: 10, 13.33, 15, 16
])
def test_top_m_attention_keeps_the_m_largest_scores_per_row(channels, heads, kept_per_row):
    torch.manual_seed(0)
    attention = CrossAttention(channels=channels, heads=heads, bias=False, selective=True)
    with torch.no_grad():
        attention.selection_weights.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    query, context = torch.randn(2, channels, 6, 5), torch.randn(2, channels, 6, 5)
    expected = _top_m_by_scatter(attention, query, context, kept_per_row)
    torch.testing.assert_close(attention(query, context), expected)


def test_selective_attention_differs_from_dense():
    torch.manual_seed(0)
    dense = CrossAttention(channels=16, heads=2, bias=False)
    selective = CrossAttention(channels=16, heads=2, bias=False, selective=True)
    selective.load_state_dict({**dense.state_dict(), "selection_weights": torch.full((4,), 0.25)})
    x, y = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    assert not torch.allclose(dense(x, y), selective(x, y))


@pytest.mark.parametrize("feature_channels", [8, 16, 24])
def test_prompt_to_feature_aligns_any_channel_counts(feature_channels):
    block = PromptToFeature(feature_channels=feature_channels, prompt_channels=16, heads=4, ffn_expansion=2.0, norm="with_bias")
    assert (block.reduce_channel is not None) == (feature_channels < 16)
    out = block(torch.randn(2, feature_channels, 9, 7), torch.randn(2, 16, 9, 7))
    assert out.shape == (2, feature_channels, 9, 7)


def test_prompt_to_feature_passes_extra_feature_channels_through_the_attention_unchanged():
    block = PromptToFeature(feature_channels=24, prompt_channels=16, heads=4, ffn_expansion=2.0, norm="with_bias")
    torch.nn.init.zeros_(block.ffn.project_out.weight)  # leaves only the attention branch
    feature = torch.randn(1, 24, 5, 5)
    out = block(feature, torch.randn(1, 16, 5, 5))
    torch.testing.assert_close(out[:, 16:], block.norm_query(feature)[:, 16:])


def test_match_channels_truncates_or_zero_pads():
    x = torch.randn(1, 4, 2, 2)
    assert torch.equal(match_channels(x, 3), x[:, :3])
    padded = match_channels(x, 6)
    assert torch.equal(padded[:, :4], x) and not padded[:, 4:].any()


def test_degradation_prompt_is_the_weighted_mean_of_the_bank():
    prompt = DegradationPrompt(num_classes=5, channels=3)
    weights = torch.tensor([[0.0, 0.7, 0.3, 0.0, 0.0]])
    expected = (0.7 * prompt.bank[1] + 0.3 * prompt.bank[2]) / 5
    torch.testing.assert_close(prompt(weights)[0, :, 0, 0], expected)


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (8, 8), (13, 17)])
def test_pad_to_multiple(size):
    x = torch.rand(1, 3, *size)
    padded = pad_to_multiple(x, 8)
    assert all(s % 8 == 0 and s >= t for s, t in zip(padded.shape[-2:], size))
    assert torch.equal(padded[..., : size[0], : size[1]], x)


def test_regularisers_match_their_pairwise_definitions():
    torch.manual_seed(0)
    bank = torch.randn(5, 8)
    unit = F.normalize(bank, dim=1)
    pairs = list(itertools.combinations(range(5), 2))
    cosine = sum(2 * abs(float(unit[i] @ unit[j])) for i, j in pairs)
    angle = sum(max(0.0, float(unit[i] @ unit[j])) for i, j in pairs)
    gram = float(((bank @ bank.T - torch.eye(5)) ** 2).mean())
    assert prompt_bank_penalty(bank, "cosine").item() == pytest.approx(0.01 * cosine, rel=1e-4, abs=1e-6)
    assert prompt_bank_penalty(bank, "angle").item() == pytest.approx(0.01 * angle, rel=1e-4)
    assert prompt_bank_penalty(bank, "gram").item() == pytest.approx(0.01 * gram, rel=1e-4)
    orthogonal = torch.eye(5, 8) * 3
    assert prompt_bank_penalty(orthogonal, "cosine").item() == pytest.approx(0.0, abs=1e-7)
    assert prompt_bank_penalty(orthogonal, "angle").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="unknown prompt regulariser 'l2'"):
        prompt_bank_penalty(bank, "l2")


def test_psnr_loss_is_minus_the_mean_psnr_and_weighs_images_by_relative_error():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 8, 8)
    restored = clean + torch.stack([torch.full((3, 8, 8), 0.1), torch.full((3, 8, 8), 0.01)])
    psnrs = [10 * torch.log10(1 / torch.tensor(e**2)) for e in (0.1, 0.01)]
    expected = -sum(psnrs) / 2 / 10
    assert psnr_loss(restored, clean, mse_floor=0.0).item() == pytest.approx(float(expected), rel=1e-4)
    # Halving either image's error gains the same 6 dB, so the loss drops by the same amount.
    halved_large = torch.stack([clean[0] + 0.05, restored[1]])
    halved_small = torch.stack([restored[0], clean[1] + 0.005])
    drop_large = psnr_loss(restored, clean) - psnr_loss(halved_large, clean)
    drop_small = psnr_loss(restored, clean, mse_floor=0.0) - psnr_loss(halved_small, clean, mse_floor=0.0)
    assert drop_large.item() == pytest.approx(drop_small.item(), rel=1e-2)
    assert pixel_loss("l1") is F.l1_loss
    with pytest.raises(ValueError, match="unknown pixel loss 'l2'"):
        pixel_loss("l2")


def test_prompt_regularization_sums_levels_and_trains_the_banks():
    model = build_model("pip_restormer_tiny")
    penalty = prompt_regularization(model, "angle")
    banks = [model.pip[f"level{i}"].prompt.degradation_prompt.bank for i in (1, 2, 3)]
    torch.testing.assert_close(penalty, sum(prompt_bank_penalty(b, "angle") for b in banks))
    penalty.backward()
    assert all(b.grad is not None and b.grad.abs().sum() > 0 for b in banks)
    assert prompt_regularization(build_model("restormer_tiny")).item() == 0.0


@pytest.mark.parametrize("block", [GatedDconvFeedForward, DualGateFeedForward])
def test_the_in_place_gate_of_inference_gives_the_numbers_of_training(block):
    torch.manual_seed(0)
    network = block(channels=8, expansion=2.0, bias=False)
    features = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        inferred = network(features)
    trained = network(features)
    assert trained.requires_grad and torch.equal(inferred, trained.detach())
