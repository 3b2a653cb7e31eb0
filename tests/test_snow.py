"""Snow obeys its physics: flakes are white and sparse, fine-grained (high frequency), more with a higher density,
smaller and fainter with depth, drawn out along their fall; the classical opening removes most of them."""

from __future__ import annotations

import kornia
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from pip_model.config import from_mapping
from pip_model.data.degradations import DegradationRanges, degrade
from pip_model.data.degradations.snow import LAYERS, snow_mask
from pip_model.evaluation.classical import classical_restore


def _ranges(**points: float) -> DegradationRanges:
    return from_mapping(DegradationRanges, {"snow": {name: [value, value] for name, value in points.items()}},
                        "degrade.ranges")


def _laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    return kornia.filters.laplacian(kornia.color.rgb_to_grayscale(images), 3).pow(2).mean(dim=(1, 2, 3))


def test_snow_is_white_sparse_and_high_frequency():
    grey = torch.full((4, 3, 96, 96), 0.4)
    snowy, records = degrade(grey, "desnow", seed=0)
    change = snowy - grey
    assert change.min() >= 0 and (snowy.mean(dim=(1, 2, 3)) > grey.mean(dim=(1, 2, 3))).all()  # only brighter
    # White: where a flake covers a pixel all three channels rise together.
    assert torch.allclose(change[:, 0], change[:, 1]) and torch.allclose(change[:, 1], change[:, 2])
    covered = (change.amax(dim=1) > 0.05).float().mean(dim=(1, 2))
    assert (covered > 0.005).all() and (covered < 0.35).all(), covered  # specks, not a veil
    assert (_laplacian_energy(snowy) > 20 * _laplacian_energy(grey) + 1e-4).all()
    assert all(3 <= record["streak"] <= 9 and record["streak"] % 2 for record in records)


def test_more_density_means_more_snow():
    grey = torch.full((1, 3, 96, 96), 0.3)
    covered = [float((degrade(grey, "desnow", seed=0, ranges=_ranges(density=density))[0] - grey).mean())
               for density in (0.0005, 0.001, 0.002, 0.004)]
    assert covered == sorted(covered) and covered[-1] > 3 * covered[0]


def test_far_layers_hold_more_smaller_fainter_flakes():
    """Layer by layer (one at a time, the others' seeds emptied): the far layer has more flakes, each covering
    fewer pixels at a lower peak opacity."""
    params = {"density": torch.tensor([0.002]), "size": torch.tensor([1.5]), "streak": torch.tensor([3]),
              "angle": torch.tensor([0.0]), "attenuation": torch.tensor([0.5]), "opacity": torch.tensor([1.0])}
    field = torch.rand(1, LAYERS, 128, 128, generator=torch.Generator().manual_seed(0))
    peaks, areas, seeds = [], [], []
    for layer in range(LAYERS):
        alone = torch.ones_like(field)
        alone[:, layer] = field[:, layer]
        mask = snow_mask(params, alone)
        peaks.append(float(mask.max()))
        areas.append(float((mask > 0.05).float().sum()))
        seeds.append(int((field[:, layer] < 0.002 * 2**layer).sum()))
    assert seeds[0] < seeds[1] < seeds[2]
    assert peaks[0] > peaks[1] > peaks[2]
    assert [area / count for area, count in zip(areas, seeds)] == sorted(
        [area / count for area, count in zip(areas, seeds)], reverse=True)


def test_flakes_are_drawn_out_along_their_fall():
    """With a long vertical fall the snow's gradients run across it: horizontal gradients dominate."""
    grey = torch.full((1, 3, 96, 96), 0.3)
    snowy, _ = degrade(grey, "desnow", seed=2, ranges=_ranges(streak=15, angle=0.0, size=0.8))
    gradients = kornia.filters.spatial_gradient(kornia.color.rgb_to_grayscale(snowy))[0, 0]
    across, along = gradients[0].abs().sum(), gradients[1].abs().sum()
    assert across > 1.5 * along


@pytest.mark.parametrize("seed", [0, 1])
def test_the_classical_opening_removes_most_of_the_snow(seed):
    photo = torch.from_numpy(skimage.data.coffee()).permute(2, 0, 1)[None].float() / 255
    photo = F.interpolate(photo, size=(128, 160), mode="area")
    snowy, _ = degrade(photo, "desnow", seed=seed)
    restored = torch.from_numpy(classical_restore(snowy[0].permute(1, 2, 0).numpy(), "desnow")).permute(2, 0, 1)
    before = float(kornia.metrics.psnr(snowy[0], photo[0], 1.0))
    after = float(kornia.metrics.psnr(restored, photo[0], 1.0))
    assert after > before + 2, (before, after)
