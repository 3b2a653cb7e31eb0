"""The JPEG family: Kornia's codec at the sampled quality (8x8 blocks show, lower quality loses more), and a
classical smoothing that takes some of it back. The whole family is pip_model/data/degradations/jpeg.py."""

from __future__ import annotations

import kornia
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from pip_model.config import ConfigError, from_mapping
from pip_model.data.degradations import DegradationRanges, degrade
from pip_model.evaluation.classical import classical_restore


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    image = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(120, 136), mode="area")


def _quality(value: int) -> DegradationRanges:
    return from_mapping(DegradationRanges, {"jpeg": {"quality": [value, value]}}, "degrade.ranges")


def test_it_is_kornias_codec_at_the_recorded_quality(photo):
    compressed, records = degrade(photo, "dejpeg", seed=0)
    assert isinstance(records[0]["quality"], int) and 10 <= records[0]["quality"] <= 40
    expected = kornia.enhance.jpeg_codec_differentiable(photo, torch.tensor([float(records[0]["quality"])]))
    torch.testing.assert_close(compressed, expected.clamp(0, 1))


def test_blocks_show_on_the_8_pixel_grid(photo):
    """The luminance jumps most between columns 7 and 8 of each 8-pixel block (where the blocks meet), far more than
    the photograph itself does there."""
    compressed, _ = degrade(photo, "dejpeg", seed=0, ranges=_quality(10))

    def steps(images: torch.Tensor) -> torch.Tensor:  # mean jump between column c and c+1, per c modulo 8
        luma = kornia.color.rgb_to_grayscale(images)[0, 0]
        jumps = (luma[:, 1:] - luma[:, :-1]).abs().mean(dim=0)
        return torch.stack([jumps[k::8].mean() for k in range(8)])

    blocky, smooth = steps(compressed), steps(photo)
    assert int(blocky.argmax()) == 7 and blocky[7] > 1.3 * blocky[:7].max() and blocky[7] > 1.3 * smooth[7]


def test_lower_quality_loses_more(photo):
    psnr = [float(kornia.metrics.psnr(degrade(photo, "dejpeg", seed=0, ranges=_quality(q))[0], photo, 1.0))
            for q in (5, 20, 50, 90)]
    assert psnr == sorted(psnr) and psnr[-1] > psnr[0] + 6


def test_the_classical_smoothing_takes_some_of_it_back(photo):
    compressed, _ = degrade(photo, "dejpeg", seed=0, ranges=_quality(8))
    restored = torch.from_numpy(classical_restore(compressed[0].permute(1, 2, 0).numpy(), "dejpeg")).permute(2, 0, 1)
    psnr = lambda image: float(kornia.metrics.psnr(image, photo[0], 1.0))  # noqa: E731
    assert psnr(restored) > psnr(compressed[0])


def test_a_quality_outside_1_to_100_is_refused():
    with pytest.raises(ConfigError, match=r"degrade.ranges.jpeg.quality must lie in \[1, 100\], got \[0, 40\]"):
        from_mapping(DegradationRanges, {"jpeg": {"quality": [0, 40]}}, "degrade.ranges")
