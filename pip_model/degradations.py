"""Synthetic degradations for the five PIP classes, composed from Kornia ops.

Like Kornia's augmentations, each degradation is split in two: sampling its parameters
(:func:`sample_params`) and applying them (:func:`apply_degradation`). :func:`degrade`
joins them and returns one dict per image with every sampled value, so a degradation can
be replayed bit for bit (``degrade(images, task, params=recorded)``).

Everything runs batched on the images' device; Python loops run only over the handful
of distinct kernel sizes in a batch, never over images.

Random fields (noise, rain seeds, the haze depth field) are drawn from one generator
per batch whose seed (``field_seed``) is recorded with every image; replaying them
needs the same batch, in the same order.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kornia
import torch
import torch.nn.functional as F

from pip_model.tasks import task_class

NOISE_SIGMAS: dict[str, float] = {"denoise_15": 15.0, "denoise_25": 25.0, "denoise_50": 50.0}
# Keys of a record that describe it rather than parameterise the degradation.
RECORD_CONTEXT = frozenset({"task", "class_id", "seed", "depth_source"})


@dataclass(frozen=True)
class DegradationRanges:
    """Sampling ranges (low, high) of every degradation parameter: ``params.yaml: degrade.ranges``.

    Attributes:
        rain_density: fraction of pixels that seed a streak.
        rain_length: streak length in pixels (odd lengths are drawn).
        rain_angle: streak angle in degrees from vertical; positive leans like ``/``.
        rain_width: Gaussian sigma that widens the streaks, in pixels.
        rain_intensity: opacity of the streak layer (screen blend).
        haze_beta: scattering coefficient; transmission is ``exp(-beta * depth)``.
        haze_airlight: atmospheric light A.
        blur_kernel: motion-blur kernel size in pixels (odd sizes are drawn).
        blur_angle: motion direction in degrees from horizontal.
        blur_direction: Kornia's motion asymmetry, -1 (backward) to 1 (forward).
        lowlight_gamma: exponent that darkens mid-tones.
        lowlight_exposure: scale applied after the gamma.
        lowlight_shot: shot-noise variance per unit of signal.
        lowlight_read: read-noise standard deviation.
    """

    rain_density: tuple[float, float] = (0.005, 0.01)
    rain_length: tuple[int, int] = (20, 40)
    rain_angle: tuple[float, float] = (-45.0, 45.0)
    rain_width: tuple[float, float] = (0.5, 1.0)
    rain_intensity: tuple[float, float] = (0.7, 1.0)
    haze_beta: tuple[float, float] = (0.5, 2.5)
    haze_airlight: tuple[float, float] = (0.8, 1.0)
    blur_kernel: tuple[int, int] = (9, 21)
    blur_angle: tuple[float, float] = (-90.0, 90.0)
    blur_direction: tuple[float, float] = (-1.0, 1.0)
    lowlight_gamma: tuple[float, float] = (1.5, 3.0)
    lowlight_exposure: tuple[float, float] = (0.2, 0.6)
    lowlight_shot: tuple[float, float] = (0.001, 0.01)
    lowlight_read: tuple[float, float] = (0.002, 0.01)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"degrade.ranges.{field.name} must be [low, high] with low <= high, got {list(value)}")
        for name in ("rain_length", "blur_kernel"):
            if getattr(self, name)[0] < 3:
                raise ValueError(f"degrade.ranges.{name} must start at 3 or more, got {list(getattr(self, name))}")


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any printable parts (e.g. base seed, image id, task)."""
    return zlib.crc32("/".join(str(part) for part in parts).encode())


def motion_kernels(sizes: torch.Tensor, angles: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Kornia motion-blur kernels of per-image size, zero-padded to the largest size.

    Args:
        sizes: odd kernel sizes.
        angles: line angles in degrees, counter-clockwise from horizontal.
        directions: Kornia's asymmetry in [-1, 1]; 0 is a uniform line.

    Returns:
        One kernel per image, each summing to 1.

    Shape:
        (B,), (B,), (B,) -> (B, K, K) with K = max(sizes)
    """
    largest = int(sizes.max())
    kernels = torch.zeros(sizes.shape[0], largest, largest, device=angles.device, dtype=angles.dtype)
    for size in sizes.unique().tolist():  # a few distinct sizes per batch
        chosen = sizes == size
        kernel = kornia.filters.get_motion_kernel2d(int(size), angles[chosen], directions[chosen], mode="bilinear")
        margin = (largest - int(size)) // 2
        kernels[chosen] = F.pad(kernel, (margin, margin, margin, margin))
    return kernels


def _uniform(generator: torch.Generator, batch: int, bounds: tuple[float, float], device: torch.device) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(batch, generator=generator, device=device)


def _odd_integers(generator: torch.Generator, batch: int, bounds: tuple[int, int], device: torch.device) -> torch.Tensor:
    low = bounds[0] + (bounds[0] + 1) % 2  # first odd value in range
    choices = (bounds[1] - low) // 2 + 1
    return low + 2 * torch.randint(0, max(choices, 1), (batch,), generator=generator, device=device)


def sample_params(
    task: str, batch: int, *, generator: torch.Generator, ranges: DegradationRanges, device: torch.device
) -> dict[str, torch.Tensor]:
    """Draws the parameters of ``task`` for a batch; every value is a (B,) tensor.

    ``field_seed`` seeds the generator of the batch's random fields.
    """
    task_class(task)  # validates the name
    r = ranges
    params: dict[str, torch.Tensor] = {}
    if task in NOISE_SIGMAS:
        params["sigma"] = torch.full((batch,), NOISE_SIGMAS[task], device=device)
    elif task == "derain":
        params["density"] = _uniform(generator, batch, r.rain_density, device)
        params["length"] = _odd_integers(generator, batch, r.rain_length, device)
        params["angle"] = _uniform(generator, batch, r.rain_angle, device)
        params["width"] = _uniform(generator, batch, r.rain_width, device)
        params["intensity"] = _uniform(generator, batch, r.rain_intensity, device)
    elif task == "dehaze":
        params["beta"] = _uniform(generator, batch, r.haze_beta, device)
        params["airlight"] = _uniform(generator, batch, r.haze_airlight, device)
    elif task == "deblur":
        params["kernel_size"] = _odd_integers(generator, batch, r.blur_kernel, device)
        params["angle"] = _uniform(generator, batch, r.blur_angle, device)
        params["direction"] = _uniform(generator, batch, r.blur_direction, device)
    elif task == "lowlight":
        params["gamma"] = _uniform(generator, batch, r.lowlight_gamma, device)
        params["exposure"] = _uniform(generator, batch, r.lowlight_exposure, device)
        params["shot"] = _uniform(generator, batch, r.lowlight_shot, device)
        params["read"] = _uniform(generator, batch, r.lowlight_read, device)
    field_seed = torch.randint(0, 2**62, (1,), generator=generator, device=device)
    params["field_seed"] = field_seed.expand(batch)
    return params


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values[:, None, None, None]


def add_gaussian_noise(images: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma``/255, clipped to [0, 1]."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + noise * _per_image(sigma) / 255.0).clamp(0, 1)


def add_rain(images: torch.Tensor, params: Mapping[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Bright rain streaks: sparse seeds smeared along one angle, widened, screen-blended."""
    batch, _, height, width = images.shape
    field = torch.rand(batch, 1, height, width, generator=generator, device=images.device, dtype=images.dtype)
    density = _per_image(params["density"])
    # Below the density threshold, field/density is uniform in [0, 1): it doubles as brightness.
    seeds = torch.where(field < density, 0.6 + 0.4 * field / density, torch.zeros_like(field))
    kernels = motion_kernels(params["length"], 90.0 - params["angle"], torch.zeros_like(params["angle"]))
    kernels = kernels / kernels.amax(dim=(-2, -1), keepdim=True)  # a streak as bright as its seed
    streaks = kornia.filters.filter2d(seeds, kernels, border_type="constant")
    sigma = params["width"][:, None].expand(batch, 2)
    widened = kornia.filters.gaussian_blur2d(streaks, (5, 5), sigma, border_type="constant")
    # Restore the centre-line brightness that the 1-D spread of the blur takes away.
    rain = (widened * math.sqrt(2 * math.pi) * _per_image(params["width"])).clamp(0, 1)
    return 1 - (1 - images) * (1 - _per_image(params["intensity"]) * rain)


def plasma_depth(batch: int, height: int, width: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A smooth random depth field in [0, 1]: a top-to-bottom ramp (far sky) plus fractal plasma.

    Shape:
        -> (B, 1, H, W)
    """

    def draw(shape: Sequence[int], device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)

    plasma = kornia.contrib.diamond_square(
        (batch, 1, height, width), roughness=0.6, random_fn=draw, normalize_range=(0.0, 1.0), device=device
    )
    ramp = torch.linspace(1.0, 0.0, height, device=device)[None, None, :, None]
    return 0.5 * ramp + 0.5 * plasma


def add_haze(
    images: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    generator: torch.Generator,
    depth: torch.Tensor | None = None,
) -> torch.Tensor:
    """Atmospheric scattering ``I = J t + A (1 - t)`` with ``t = exp(-beta d)``."""
    batch, _, height, width = images.shape
    if depth is None:
        depth = plasma_depth(batch, height, width, generator, images.device)
    transmission = torch.exp(-_per_image(params["beta"]) * depth.to(images.dtype))
    airlight = _per_image(params["airlight"])
    return (images * transmission + airlight * (1 - transmission)).clamp(0, 1)


def add_motion_blur(images: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Kornia motion blur with a per-image kernel size, angle and direction."""
    kernels = motion_kernels(params["kernel_size"], params["angle"], params["direction"])
    # Replicated borders work for any image size, unlike reflection.
    return kornia.filters.filter2d(images, kernels.to(images.dtype), border_type="replicate").clamp(0, 1)


def darken(images: torch.Tensor, params: Mapping[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """Low light: gamma and exposure, then signal-dependent shot noise plus read noise."""
    dark = _per_image(params["exposure"]) * images.clamp(0, 1) ** _per_image(params["gamma"])
    variance = _per_image(params["shot"]) * dark + _per_image(params["read"]) ** 2
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (dark + noise * variance.sqrt()).clamp(0, 1)


def apply_degradation(
    images: torch.Tensor, task: str, params: Mapping[str, torch.Tensor], *, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies sampled parameters; deterministic given ``params`` (including ``field_seed``).

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]
    """
    generator = torch.Generator(device=images.device).manual_seed(int(params["field_seed"][0]))
    if task in NOISE_SIGMAS:
        return add_gaussian_noise(images, params["sigma"], generator)
    if task == "derain":
        return add_rain(images, params, generator)
    if task == "dehaze":
        return add_haze(images, params, generator, depth)
    if task == "deblur":
        return add_motion_blur(images, params)
    if task == "lowlight":
        return darken(images, params, generator)
    task_class(task)  # raises for an unknown name
    raise AssertionError(f"task {task!r} has a class but no degradation")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")


def _collate(records: Sequence[Mapping[str, Any]], task: str, device: torch.device) -> dict[str, torch.Tensor]:
    if any(record.get("task") != task for record in records):
        raise ValueError(f"recorded params belong to other tasks than {task!r}")
    numeric = [
        key for key, value in records[0].items() if isinstance(value, (int, float)) and key not in RECORD_CONTEXT
    ]
    params = {key: torch.tensor([record[key] for record in records], device=device) for key in numeric}
    for key in ("length", "kernel_size", "field_seed"):
        if key in params:
            params[key] = params[key].long()
    for key, values in params.items():
        if values.is_floating_point():
            params[key] = values.float()
    return params


def degrade(
    images: torch.Tensor,
    task: str,
    *,
    seed: int | None = None,
    depth: torch.Tensor | None = None,
    ranges: DegradationRanges | None = None,
    params: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Degrades a batch of clean images for one task.

    Args:
        images: clean images in [0, 1], on any device.
        task: one of :data:`pip_model.TASKS`.
        seed: the same seed gives bit-identical output on the same device; None draws one
            (and records it).
        depth: for ``dehaze``, a depth map in [0, 1] (B, 1, H, W); otherwise a random
            smooth field is used.
        ranges: sampling ranges; the defaults of :class:`DegradationRanges` if None.
        params: the records returned by an earlier call, to replay it exactly.

    Returns:
        The degraded images and one dict per image with every sampled value, the task,
        its class id and the seed.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]

    Examples:
        >>> degraded, records = degrade(torch.full((1, 3, 8, 8), 0.5), "denoise_25", seed=0)
        >>> records[0]["sigma"], degraded.shape
        (25.0, torch.Size([1, 3, 8, 8]))
    """
    _check_images(images)
    task_class(task)
    batch = images.shape[0]
    if params is None:
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
        generator = torch.Generator(device=images.device).manual_seed(seed)
        sampled = sample_params(task, batch, generator=generator, ranges=ranges or DegradationRanges(), device=images.device)
    else:
        if len(params) != batch:
            raise ValueError(f"got {len(params)} recorded params for a batch of {batch}")
        sampled = _collate(params, task, images.device)
        seed = params[0].get("seed")
    degraded = apply_degradation(images, task, sampled, depth=depth)
    values = {key: tensor.tolist() for key, tensor in sampled.items()}
    context: dict[str, Any] = {"task": task, "class_id": task_class(task), "seed": seed}
    if task == "dehaze":
        context["depth_source"] = "given" if depth is not None else "plasma"
    records = [context | {key: column[index] for key, column in values.items()} for index in range(batch)]
    return degraded, records
