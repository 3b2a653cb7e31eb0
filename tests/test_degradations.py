"""The synthetic degradations obey their physics on real photographs, and replay exactly."""

from __future__ import annotations

import kornia
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pip_model.config import ConfigError, from_mapping
from pip_model.data.degradations import DegradationRanges, degrade, derive_seed
from pip_model.data.degradations.blur import BlurRanges, add_motion_blur
from pip_model.data.degradations.haze import HazeRanges
from pip_model.data.degradations.lowlight import LowlightRanges
from pip_model.data.degradations.rain import RainRanges
from pip_model.tasks import ALL_TASKS, COMPOSITE_TASKS, TASK_TO_CLASS
from tests.helpers.device_reads import DeviceReads


def _photo(name: str, size: int = 128) -> torch.Tensor:
    image = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(size, size), mode="area")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return torch.cat([_photo("astronaut"), _photo("chelsea"), _photo("coffee")])


def _grey(images: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_grayscale(images)


def _dark_channel(images: torch.Tensor, patch: int = 15) -> torch.Tensor:
    return -F.max_pool2d(-images.amin(dim=1, keepdim=True), patch, stride=1, padding=patch // 2)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_output_range_shape_and_seed(photos, task):
    first, records = degrade(photos, task, seed=7)
    assert first.shape == photos.shape and first.dtype == photos.dtype and first.device == photos.device
    assert first.min() >= 0 and first.max() <= 1
    again, _ = degrade(photos, task, seed=7)
    assert torch.equal(first, again)
    other, _ = degrade(photos, task, seed=8)
    assert not torch.equal(first, other)
    replayed, _ = degrade(photos, task, params=records)
    assert torch.equal(first, replayed)
    assert len(records) == 3 and all(r["task"] == task and r["seed"] == 7 for r in records)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_standard_deviation_matches_sigma(sigma):
    grey = torch.full((4, 3, 128, 128), 0.5)
    noisy, records = degrade(grey, f"denoise_{sigma}", seed=0)
    measured = ((noisy - grey) * 255).std().item()
    assert measured == pytest.approx(sigma, rel=0.05)
    assert records[0]["sigma"] == sigma


def test_haze_lowers_contrast_and_raises_dark_channel(photos):
    hazy, records = degrade(photos, "dehaze", seed=0)
    assert (_grey(hazy).std(dim=(1, 2, 3)) < _grey(photos).std(dim=(1, 2, 3))).all()
    assert (_dark_channel(hazy).mean(dim=(1, 2, 3)) > _dark_channel(photos).mean(dim=(1, 2, 3)) + 0.05).all()
    ranges = DegradationRanges()
    assert all(ranges.haze.beta[0] <= r["beta"] <= ranges.haze.beta[1] for r in records)
    assert {r["depth_source"] for r in records} == {"plasma"}


def test_haze_follows_a_given_depth_map(photos):
    near = torch.zeros(3, 1, 128, 128)
    clear, records = degrade(photos, "dehaze", seed=0, depth=near)
    torch.testing.assert_close(clear, photos)
    assert records[0]["depth_source"] == "given"
    far_bottom = torch.linspace(0, 1, 128)[None, None, :, None].expand(3, 1, 128, 128)
    hazy, _ = degrade(photos, "dehaze", seed=0, depth=far_bottom)
    change = (hazy - photos).abs().mean(dim=(0, 1, 3))
    assert change[-16:].mean() > 3 * change[:16].mean()


def test_low_light_darkens_by_at_least_40_percent(photos):
    dark, records = degrade(photos, "lowlight", seed=0)
    assert (dark.mean(dim=(1, 2, 3)) <= 0.6 * photos.mean(dim=(1, 2, 3))).all()
    assert {"gamma", "exposure", "shot", "read"} <= set(records[0])


def test_blur_removes_high_frequency_energy(photos):
    blurred, records = degrade(photos, "deblur", seed=0)
    energy = lambda x: kornia.filters.laplacian(_grey(x), 3).pow(2).mean(dim=(1, 2, 3))  # noqa: E731
    assert (energy(blurred) < 0.5 * energy(photos)).all()
    assert all(r["kernel_size"] % 2 == 1 and 9 <= r["kernel_size"] <= 21 for r in records)


def test_blur_equals_kornia_motion_blur_for_one_kernel_size(photos):
    params = {
        "kernel_size": torch.tensor([11, 11, 11]),
        "angle": torch.tensor([10.0, 45.0, -60.0]),
        "direction": torch.tensor([0.0, 0.5, -1.0]),
    }
    expected = kornia.filters.motion_blur(
        photos, 11, params["angle"], params["direction"], border_type="replicate", mode="bilinear"
    )
    torch.testing.assert_close(add_motion_blur(photos, params), expected.clamp(0, 1))


def test_blur_of_a_mixed_size_batch_equals_kornia_per_image(photos):
    # One batched call pads the smaller kernels to the largest; each image must still get exactly its own kernel.
    params = {
        "kernel_size": torch.tensor([9, 21, 15]),
        "angle": torch.tensor([10.0, 45.0, -60.0]),
        "direction": torch.tensor([0.0, 0.5, -1.0]),
    }
    blurred = add_motion_blur(photos, params)
    for i in range(3):
        expected = kornia.filters.motion_blur(photos[i : i + 1], int(params["kernel_size"][i]),
                                              params["angle"][i : i + 1], params["direction"][i : i + 1],
                                              border_type="replicate", mode="bilinear")
        torch.testing.assert_close(blurred[i : i + 1], expected.clamp(0, 1))


def _dominant_gradient_orientation(image: torch.Tensor) -> float:
    """Peak of the magnitude-weighted histogram of gradient orientations, degrees in [0, 180)."""
    gradients = kornia.filters.spatial_gradient(_grey(image[None]))[0, 0]
    gx, gy = gradients[0], -gradients[1]  # y up, so angles read counter-clockwise on screen
    angles = torch.rad2deg(torch.atan2(gy, gx)) % 180
    bins = (angles.flatten() / 5).long().clamp(max=35)
    histogram = torch.zeros(36).index_add_(0, bins, torch.hypot(gx, gy).flatten())
    return float(histogram.argmax()) * 5 + 2.5


@pytest.mark.parametrize("seed", range(4))
def test_rain_adds_bright_streaks_along_the_sampled_angle(seed):
    background = torch.full((1, 3, 160, 160), 0.3)
    rainy, records = degrade(background, "derain", seed=seed)
    layer = rainy - background
    assert layer.min() >= 0 and layer.max() > 0.4  # bright, never darker
    # A streak at `angle` from vertical has gradients perpendicular to it: at -angle from horizontal.
    expected = (-records[0]["angle"]) % 180
    found = _dominant_gradient_orientation(layer[0])
    assert min(abs(found - expected), 180 - abs(found - expected)) <= 10, (found, expected)
    streak_fraction = (layer[0].mean(dim=0) > 0.05).float().mean()
    assert streak_fraction > 5 * records[0]["density"]  # smeared, not dots


def test_ranges_are_validated():
    with pytest.raises(ConfigError, match=r"degrade.ranges.rain: unknown key\(s\) colour; known: density"):
        from_mapping(DegradationRanges, {"rain": {"colour": [0, 1]}}, "degrade.ranges")
    with pytest.raises(ConfigError, match=r"degrade.ranges: unknown key\(s\) hail; known: noise, rain, haze"):
        from_mapping(DegradationRanges, {"hail": {"size": [0, 1]}}, "degrade.ranges")
    with pytest.raises(ConfigError, match=r"degrade.ranges.haze.beta must be \[low, high\]"):
        from_mapping(DegradationRanges, {"haze": {"beta": [2.5, 0.5]}}, "degrade.ranges")
    with pytest.raises(ConfigError, match=r"degrade.ranges.blur.kernel\[0\]: expected int, got 9.5"):
        from_mapping(DegradationRanges, {"blur": {"kernel": [9.5, 21]}}, "degrade.ranges")
    custom = from_mapping(DegradationRanges, {"haze": {"beta": [1, 1]}}, "degrade.ranges")
    _, records = degrade(torch.rand(2, 3, 32, 32), "dehaze", seed=0, ranges=custom)
    assert all(r["beta"] == 1.0 for r in records)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) tensor, got \(3, 8, 8\)"):
        degrade(torch.rand(3, 8, 8), "derain")
    with pytest.raises(ValueError, match="floating point"):
        degrade(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "derain")
    with pytest.raises(ValueError, match="unknown task 'dehail'"):
        degrade(torch.rand(1, 3, 8, 8), "dehail")
    with pytest.raises(ValueError, match="holds one family twice"):
        degrade(torch.rand(1, 3, 8, 8), "denoise_15_denoise_25")
    _, records = degrade(torch.rand(2, 3, 8, 8), "deblur", seed=0)
    with pytest.raises(ValueError, match="2 recorded params for a batch of 3"):
        degrade(torch.rand(3, 3, 8, 8), "deblur", params=records)


@pytest.mark.parametrize("task", list(COMPOSITE_TASKS))
def test_a_composite_is_its_degradations_applied_in_order(photos, task):
    """Each component's parameters are recorded under its name; replaying the components one after the other
    (each from its own seed, derived from the image's) gives the composite, and the other order does not."""
    composite, records = degrade(photos, task, seed=3)
    components = COMPOSITE_TASKS[task]
    assert records[0]["class_id"] == "+".join(str(TASK_TO_CLASS[component]) for component in components)

    def replay(images: torch.Tensor, order: tuple[str, ...]) -> torch.Tensor:
        for component in order:
            prefix = f"{component}."
            component_records = [{"task": component, "image_seed": derive_seed(record["image_seed"], component)}
                                 | {key.removeprefix(prefix): value for key, value in record.items()
                                    if key.startswith(prefix)} for record in records]
            assert len(component_records[0]) > 2  # the component's own parameters were recorded
            images, _ = degrade(images, component, params=component_records)
        return images

    torch.testing.assert_close(replay(photos, components), composite, rtol=0, atol=1e-6)
    assert (replay(photos, components[::-1]) - composite).abs().mean() > 1e-3


def test_unseeded_calls_draw_a_fresh_seed_and_record_it():
    images = torch.rand(1, 3, 16, 16)
    first, records = degrade(images, "denoise_15")
    second, other_records = degrade(images, "denoise_15")
    assert records[0]["seed"] != other_records[0]["seed"] and not torch.equal(first, second)
    again, _ = degrade(images, "denoise_15", seed=records[0]["seed"])
    assert torch.equal(first, again) and isinstance(records[0]["seed"], int)


RANDOM_OPS = ("aten::rand", "aten::randn", "aten::randint", "aten::normal", "aten::uniform", "aten::random_",
              "aten::bernoulli", "aten::multinomial", "aten::randperm")


class RandomDraws(TorchDispatchMode):
    """Records the device of every random draw."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        if func._schema.name.startswith(RANDOM_OPS):
            self.devices.append(output.device.type)
        return output


@pytest.mark.parametrize("task", ALL_TASKS)
def test_draws_are_made_on_the_cpu_whatever_the_device(photos, task):
    """Degrading on another device (meta: no values) draws the same parameters and fields, on the CPU, and reads
    nothing back from the device; image i depends only on its own seed, not on its batch."""
    expected, records = degrade(photos, task, seed=5)
    with RandomDraws() as draws, DeviceReads("meta") as reads:
        elsewhere, meta_records = degrade(photos.to("meta"), task, seed=5)
    assert meta_records == records and elsewhere.device.type == "meta" and elsewhere.shape == photos.shape
    assert set(draws.devices) == {"cpu"} and reads.reads == []
    alone, _ = degrade(photos[1:2], task, params=records[1:2])
    torch.testing.assert_close(alone, expected[1:2], rtol=0, atol=1e-6)


# Every range a single point far from the defaults: a fresh draw under these differs from any default draw.
ELSEWHERE = DegradationRanges(
    rain=RainRanges(density=(0.03, 0.03), length=(5, 5), angle=(80.0, 80.0), width=(2.0, 2.0),
                    intensity=(0.2, 0.2)),
    haze=HazeRanges(beta=(4.0, 4.0), airlight=(0.3, 0.3)),
    blur=BlurRanges(kernel=(3, 3), angle=(0.0, 0.0), direction=(0.0, 0.0)),
    lowlight=LowlightRanges(gamma=(1.0, 1.0), exposure=(0.9, 0.9), shot=(0.05, 0.05), read=(0.05, 0.05)))


@pytest.mark.parametrize("task", ["derain", "dehaze", "deblur", "lowlight", "derain_dehaze"])
def test_a_replay_uses_the_recorded_parameters_whatever_the_ranges(task):
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    recorded, records = degrade(images, task, seed=7)
    fresh, _ = degrade(images, task, seed=7, ranges=ELSEWHERE)
    assert (fresh - recorded).abs().amax() > 1e-3  # these ranges do draw other parameters
    replayed, replay_records = degrade(images, task, params=records, ranges=ELSEWHERE)
    torch.testing.assert_close(replayed, recorded, rtol=0, atol=0)
    assert replay_records == records


def test_a_replay_applies_an_edited_record():
    """Edited haze parameters give the scattering model's image with the new values (depth given); an edited noise
    sigma scales the very same noise field."""
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    depth = torch.linspace(0, 1, 16)[None, None, :, None].expand(1, 1, 16, 16)
    _, records = degrade(images, "dehaze", seed=3, depth=depth)
    edited = [records[0] | {"beta": 3.5, "airlight": 0.25}]
    hazy, replay_records = degrade(images, "dehaze", params=edited, depth=depth)
    transmission = torch.exp(-3.5 * depth)
    torch.testing.assert_close(hazy, images * transmission + 0.25 * (1 - transmission))
    assert replay_records[0]["beta"] == 3.5 and replay_records[0]["airlight"] == 0.25

    grey = torch.full((1, 3, 16, 16), 0.5)
    noisy, records = degrade(grey, "denoise_25", seed=3)  # unclipped at this sigma
    quieter, _ = degrade(grey, "denoise_25", params=[records[0] | {"sigma": 5.0}])
    torch.testing.assert_close(quieter - grey, (noisy - grey) * 5 / 25, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_is_sigma_over_255_times_the_image_generators_standard_normal_draw(sigma):
    """Noise has no sampled parameter: the first draw of the image's generator (seeded by its recorded
    ``image_seed``) is its standard normal field, scaled by sigma/255 and added, then clipped."""
    clean = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    noisy, records = degrade(clean, f"denoise_{sigma}", seed=11)
    for image, record in enumerate(records):
        field = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(record["image_seed"]))
        expected = (clean[image] + field[0] * sigma / 255).clamp(0, 1)
        torch.testing.assert_close(noisy[image], expected, rtol=0, atol=1e-6)
