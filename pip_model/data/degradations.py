"""Synthetic degradations for the five PIP classes, composed from Kornia ops.

A composite task (``derain_dehaze``, ...) applies its single degradations one after the
other; its records hold every component's parameters under ``<component>.<name>``.

Like Kornia's augmentations, each degradation is split in two: sampling its parameters
(:func:`sample_params`) and applying them (:func:`apply_degradation`). :func:`degrade`
joins them and returns one dict per image with every sampled value, so a degradation can
be replayed bit for bit (``degrade(images, task, params=recorded)``).

Everything random is drawn on the CPU, one generator per image seeded by that image's
recorded ``image_seed`` (:func:`draw_degradation`): the same seed gives the same
parameters and random fields on any device and in any batch, so a benchmark built on a
GPU equals the CPU-built one that ``dvc.lock`` records, and a DDP rank can degrade its own
slice of a batch alone. Applying them runs batched on the images' device, and never reads
a device value back on the host; Python loops run only over the handful of distinct
kernel sizes in a batch, never over images.
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

from pip_model.tasks import NOISE_SIGMAS, task_components, task_label

# Keys of a record that describe it rather than parameterise the degradation.
RECORD_CONTEXT = frozenset({"task", "class_id", "seed", "image_seed", "depth_source"})


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
        sizes: odd kernel sizes (read on the host: keep them on the CPU to spare a device sync).
        angles: line angles in degrees, counter-clockwise from horizontal.
        directions: Kornia's asymmetry in [-1, 1]; 0 is a uniform line.

    Returns:
        One kernel per image, each summing to 1.

    Shape:
        (B,), (B,), (B,) -> (B, K, K) with K = max(sizes)
    """
    sizes = sizes.tolist()
    largest = max(sizes)
    kernels = []
    for start, stop, size in equal_runs(sizes):  # a few distinct sizes per batch; slices, never a device mask
        kernel = kornia.filters.get_motion_kernel2d(size, angles[start:stop], directions[start:stop], mode="bilinear")
        margin = (largest - size) // 2
        kernels.append(F.pad(kernel, (margin, margin, margin, margin)))
    return torch.cat(kernels)


def equal_runs(values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(start, stop, value) of each run of equal neighbours."""
    runs: list[tuple[int, int, Any]] = []
    for index, value in enumerate(values):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], index + 1, value)
        else:
            runs.append((index, index + 1, value))
    return runs


def _uniform(generator: torch.Generator, batch: int, bounds: tuple[float, float]) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(batch, generator=generator)


def _odd_integers(generator: torch.Generator, batch: int, bounds: tuple[int, int]) -> torch.Tensor:
    low = bounds[0] + (bounds[0] + 1) % 2  # first odd value in range
    choices = (bounds[1] - low) // 2 + 1
    return low + 2 * torch.randint(0, max(choices, 1), (batch,), generator=generator)


def sample_params(task: str, batch: int, *, generator: torch.Generator, ranges: DegradationRanges
                  ) -> dict[str, torch.Tensor]:
    """Draws the parameters of a single ``task`` for a batch from a CPU generator; every value is a (B,) CPU
    tensor."""
    if task_components(task) != (task,):
        raise ValueError(f"{task!r} is a composite task: draw it with draw_degradation")
    r = ranges
    params: dict[str, torch.Tensor] = {}
    if task in NOISE_SIGMAS:
        params["sigma"] = torch.full((batch,), NOISE_SIGMAS[task])
    elif task == "derain":
        params["density"] = _uniform(generator, batch, r.rain_density)
        params["length"] = _odd_integers(generator, batch, r.rain_length)
        params["angle"] = _uniform(generator, batch, r.rain_angle)
        params["width"] = _uniform(generator, batch, r.rain_width)
        params["intensity"] = _uniform(generator, batch, r.rain_intensity)
    elif task == "dehaze":
        params["beta"] = _uniform(generator, batch, r.haze_beta)
        params["airlight"] = _uniform(generator, batch, r.haze_airlight)
    elif task == "deblur":
        params["kernel_size"] = _odd_integers(generator, batch, r.blur_kernel)
        params["angle"] = _uniform(generator, batch, r.blur_angle)
        params["direction"] = _uniform(generator, batch, r.blur_direction)
    elif task == "lowlight":
        params["gamma"] = _uniform(generator, batch, r.lowlight_gamma)
        params["exposure"] = _uniform(generator, batch, r.lowlight_exposure)
        params["shot"] = _uniform(generator, batch, r.lowlight_shot)
        params["read"] = _uniform(generator, batch, r.lowlight_read)
    return params


def random_field(task: str, height: int, width: int, generator: torch.Generator) -> torch.Tensor | None:
    """The random field of one image, drawn on the CPU: noise (denoise, lowlight), streak seeds (derain),
    a plasma depth map (dehaze), none (deblur).

    Shape:
        -> (1, 3, H, W) noise, (1, 1, H, W) otherwise
    """
    if task in NOISE_SIGMAS or task == "lowlight":
        return torch.randn(1, 3, height, width, generator=generator)
    if task == "derain":
        return torch.rand(1, 1, height, width, generator=generator)
    if task == "dehaze":
        return plasma_depth(1, height, width, generator)
    return None


@dataclass
class DegradationDraw:
    """Everything random about degrading a batch for one task, drawn on the CPU.

    Attributes:
        params: sampled parameters, (B,) CPU tensors; a composite's are its parts' under ``<component>.<name>``.
        field: the random fields (see :func:`random_field`), or None (deblur, haze with a given depth, composites).
        parts: a composite's draw of each component, in application order; empty for a single task.
    """

    params: dict[str, torch.Tensor]
    field: torch.Tensor | None
    parts: tuple[DegradationDraw, ...] = ()

    @classmethod
    def concat(cls, draws: Sequence[DegradationDraw]) -> DegradationDraw:
        fields = [draw.field for draw in draws]
        return cls({key: torch.cat([draw.params[key] for draw in draws]) for key in draws[0].params},
                   None if fields[0] is None else torch.cat(fields),  # type: ignore[arg-type]
                   tuple(cls.concat(parts) for parts in zip(*(draw.parts for draw in draws))))

    @classmethod
    def composite(cls, components: Sequence[str], parts: Sequence[DegradationDraw]) -> DegradationDraw:
        params = {f"{component}.{key}": value for component, part in zip(components, parts)
                  for key, value in part.params.items()}
        return cls(params, None, tuple(parts))

    def pin_memory(self) -> DegradationDraw:
        return DegradationDraw({key: value.pin_memory() for key, value in self.params.items()},
                               None if self.field is None else self.field.pin_memory(),
                               tuple(part.pin_memory() for part in self.parts))


def draw_degradation(task: str, *, height: int, width: int, image_seeds: Sequence[int],
                     ranges: DegradationRanges | None = None, with_field: bool = True) -> DegradationDraw:
    """Draws the parameters and random field of each image from its own CPU generator.

    Image ``i`` depends only on ``image_seeds[i]``: not on the device, the batch or its
    neighbours. Each component of a composite task draws from its own seed, derived from the
    image's and the component's name.
    """
    ranges = ranges or DegradationRanges()
    components = task_components(task)
    if len(components) > 1:
        return DegradationDraw.composite(components, [
            draw_degradation(component, height=height, width=width, ranges=ranges,
                             image_seeds=[derive_seed(image_seed, component) for image_seed in image_seeds],
                             with_field=with_field or component != "dehaze")
            for component in components])
    draws = []
    for image_seed in image_seeds:
        generator = torch.Generator().manual_seed(int(image_seed))
        params = sample_params(task, 1, generator=generator, ranges=ranges)
        draws.append(DegradationDraw(params, random_field(task, height, width, generator) if with_field else None))
    return DegradationDraw.concat(draws)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) values as (B, 1, 1, 1) on ``like``'s device and dtype (an asynchronous copy from the CPU)."""
    return values.to(like.device, like.dtype, non_blocking=True)[:, None, None, None]


def _on(field: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return field.to(like.device, like.dtype, non_blocking=True)


def add_gaussian_noise(images: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma``/255 (``noise`` is standard normal), clipped."""
    return (images + _on(noise, images) * _per_image(sigma, images) / 255.0).clamp(0, 1)


def add_rain(images: torch.Tensor, params: Mapping[str, torch.Tensor], field: torch.Tensor) -> torch.Tensor:
    """Bright rain streaks: sparse seeds (where the uniform ``field`` is below the density) smeared along one
    angle, widened, screen-blended."""
    batch = images.shape[0]
    field = _on(field, images)
    density = _per_image(params["density"], images)
    # Below the density threshold, field/density is uniform in [0, 1): it doubles as brightness.
    seeds = torch.where(field < density, 0.6 + 0.4 * field / density, torch.zeros_like(field))
    angles = _on(params["angle"], images)
    kernels = motion_kernels(params["length"], 90.0 - angles, torch.zeros_like(angles))
    kernels = kernels / kernels.amax(dim=(-2, -1), keepdim=True)  # a streak as bright as its seed
    streaks = kornia.filters.filter2d(seeds, kernels, border_type="constant")
    # Kornia checks a CPU sigma on the host and copies it over asynchronously.
    sigma = params["width"].cpu()[:, None].expand(batch, 2)
    widened = kornia.filters.gaussian_blur2d(streaks, (5, 5), sigma, border_type="constant")
    # Restore the centre-line brightness that the 1-D spread of the blur takes away.
    rain = (widened * math.sqrt(2 * math.pi) * _per_image(params["width"], images)).clamp(0, 1)
    return 1 - (1 - images) * (1 - _per_image(params["intensity"], images) * rain)


def plasma_depth(batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random depth field in [0, 1], on the CPU: a top-to-bottom ramp (far sky) plus fractal plasma.

    Shape:
        -> (B, 1, H, W)
    """

    def draw(shape: Sequence[int], device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)

    plasma = kornia.contrib.diamond_square(
        (batch, 1, height, width), roughness=0.6, random_fn=draw, normalize_range=(0.0, 1.0)
    )
    ramp = torch.linspace(1.0, 0.0, height)[None, None, :, None]
    return 0.5 * ramp + 0.5 * plasma


def add_haze(images: torch.Tensor, params: Mapping[str, torch.Tensor], depth: torch.Tensor) -> torch.Tensor:
    """Atmospheric scattering ``I = J t + A (1 - t)`` with ``t = exp(-beta d)``."""
    transmission = torch.exp(-_per_image(params["beta"], images) * _on(depth, images))
    airlight = _per_image(params["airlight"], images)
    return (images * transmission + airlight * (1 - transmission)).clamp(0, 1)


def add_motion_blur(images: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Kornia motion blur with a per-image kernel size, angle and direction."""
    kernels = motion_kernels(params["kernel_size"], _on(params["angle"], images), _on(params["direction"], images))
    # Replicated borders work for any image size, unlike reflection.
    return kornia.filters.filter2d(images, kernels, border_type="replicate").clamp(0, 1)


def darken(images: torch.Tensor, params: Mapping[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """Low light: gamma and exposure, then signal-dependent shot noise plus read noise (``noise`` standard normal)."""
    dark = _per_image(params["exposure"], images) * images.clamp(0, 1) ** _per_image(params["gamma"], images)
    variance = _per_image(params["shot"], images) * dark + _per_image(params["read"], images) ** 2
    return (dark + _on(noise, images) * variance.sqrt()).clamp(0, 1)


def apply_degradation(
    images: torch.Tensor, task: str, draw: DegradationDraw, *, depth: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies a draw on the images' device; deterministic, and free of host-device synchronisation.

    Args:
        images: clean images in [0, 1].
        task: one of :data:`pip_model.TASKS` or a composite task.
        draw: its parameters and random fields (CPU tensors, or already on the device; kernel sizes are best
            left on the CPU).
        depth: for ``dehaze``, a depth map that replaces the drawn one.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]
    """
    params, field = draw.params, draw.field
    components = task_components(task)  # raises for an unknown name
    if len(components) > 1:
        for component, part in zip(components, draw.parts, strict=True):
            images = apply_degradation(images, component, part, depth=depth if component == "dehaze" else None)
        return images
    if task in NOISE_SIGMAS:
        return add_gaussian_noise(images, params["sigma"], field)
    if task == "derain":
        return add_rain(images, params, field)
    if task == "dehaze":
        return add_haze(images, params, depth if depth is not None else field)
    if task == "deblur":
        return add_motion_blur(images, params)
    if task == "lowlight":
        return darken(images, params, field)
    raise AssertionError(f"task {task!r} has a class but no degradation")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")


def _collate(records: Sequence[Mapping[str, Any]], task: str) -> dict[str, torch.Tensor]:
    if any(record.get("task") != task for record in records):
        raise ValueError(f"recorded params belong to other tasks than {task!r}")
    numeric = [
        key for key, value in records[0].items() if isinstance(value, (int, float)) and key not in RECORD_CONTEXT
    ]
    params = {key: torch.tensor([record[key] for record in records]) for key in numeric}
    for key, values in params.items():
        if key.rsplit(".", 1)[-1] in ("length", "kernel_size"):
            params[key] = values.long()
        elif values.is_floating_point():
            params[key] = values.float()
    return params


def _replace_params(draw: DegradationDraw, task: str, params: dict[str, torch.Tensor]) -> DegradationDraw:
    """The draw with recorded parameters in place of the sampled ones (its random fields kept)."""
    components = task_components(task)
    if len(components) == 1:
        return DegradationDraw(params, draw.field)
    parts = [_replace_params(part, component, {key.split(".", 1)[1]: value for key, value in params.items()
                                               if key.startswith(f"{component}.")})
             for component, part in zip(components, draw.parts)]
    return DegradationDraw.composite(components, parts)


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
        task: one of :data:`pip_model.TASKS`, or a composite task (see :data:`pip_model.COMPOSITE_TASKS`).
        seed: the same seed gives the same draws on any device (image ``i`` draws from its own
            ``image_seed``, derived from ``seed`` and ``i``); None draws one (and records it).
        depth: for ``dehaze``, a depth map in [0, 1] (B, 1, H, W); otherwise a random
            smooth field is used.
        ranges: sampling ranges; the defaults of :class:`DegradationRanges` if None.
        params: the records returned by an earlier call, to replay it exactly (one image alone, too).

    Returns:
        The degraded images and one dict per image with every sampled value, the task,
        its class id (``"1+2"`` for a composite), the seed and the image's own seed.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]

    Examples:
        >>> degraded, records = degrade(torch.full((1, 3, 8, 8), 0.5), "denoise_25", seed=0)
        >>> records[0]["sigma"], degraded.shape
        (25.0, torch.Size([1, 3, 8, 8]))
    """
    _check_images(images)
    task_components(task)  # raises for an unknown name
    batch, _, height, width = images.shape
    if params is None:
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)))
        image_seeds = [derive_seed(seed, "image", index) for index in range(batch)]
    else:
        if len(params) != batch:
            raise ValueError(f"got {len(params)} recorded params for a batch of {batch}")
        seed, image_seeds = params[0].get("seed"), [record["image_seed"] for record in params]
    draw = draw_degradation(task, height=height, width=width, image_seeds=image_seeds, ranges=ranges,
                            with_field=depth is None or "dehaze" not in task_components(task))
    if params is not None:
        draw = _replace_params(draw, task, _collate(params, task))
    degraded = apply_degradation(images, task, draw, depth=depth)
    values = {key: tensor.tolist() for key, tensor in draw.params.items()}  # CPU tensors: no device sync
    label = task_label(task)
    context: dict[str, Any] = {"task": task, "class_id": int(label) if label.isdigit() else label, "seed": seed}
    if "dehaze" in task_components(task):
        context["depth_source"] = "given" if depth is not None else "plasma"
    return degraded, [context | {key: column[index] for key, column in values.items()}
                      | {"image_seed": image_seeds[index]} for index in range(batch)]
