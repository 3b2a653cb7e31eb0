"""Non-learned restorers, one per task: what a user would reach for without a network.

noise: non-local means with an estimated sigma; rain: a median filter; haze: the dark
channel prior (He et al.) with a guided-filter refinement; blur: Richardson-Lucy with a
motion kernel estimated from the image; low light: a gamma chosen from the mean level.
All take and return (H, W, 3) float arrays in [0, 1]. A composite task chains them.
"""

from __future__ import annotations

import kornia
import numpy as np
import torch
from scipy import ndimage
from skimage import restoration

from pip_model.tasks import task_classes


def denoise(image: np.ndarray) -> np.ndarray:
    """Non-local means, its strength set from a wavelet estimate of the noise sigma."""
    sigma = float(restoration.estimate_sigma(image, channel_axis=-1, average_sigmas=True))
    return restoration.denoise_nl_means(image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                        patch_distance=6, channel_axis=-1)


def derain(image: np.ndarray, size: int = 5) -> np.ndarray:
    """A per-channel median filter, which removes thin bright streaks."""
    return ndimage.median_filter(image, size=(size, size, 1), mode="reflect")


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int = 8, eps: float = 1e-3) -> np.ndarray:
    """Edge-preserving smoothing of ``source`` following a grey ``guide`` (He et al.)."""
    mean_guide, mean_source = _box(guide, radius), _box(source, radius)
    covariance = _box(guide * source, radius) - mean_guide * mean_source
    variance = _box(guide * guide, radius) - mean_guide**2
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    return _box(a, radius) * guide + _box(b, radius)


def dehaze(image: np.ndarray, patch: int = 7, omega: float = 0.95, floor: float = 0.1) -> np.ndarray:
    """Dark channel prior: estimate airlight and transmission, refine it, invert the haze model."""
    dark = ndimage.minimum_filter(image.min(axis=-1), size=patch, mode="nearest")
    brightest = dark.ravel().argsort()[-max(1, dark.size // 1000) :]
    airlight = image.reshape(-1, 3)[brightest].mean(axis=0).clip(0.05, 1.0)
    normalised_dark = ndimage.minimum_filter((image / airlight).min(axis=-1), size=patch, mode="nearest")
    transmission = guided_filter(image.mean(axis=-1), 1 - omega * normalised_dark)
    transmission = np.maximum(transmission, floor)[..., None]
    return np.clip((image - airlight) / transmission + airlight, 0, 1)


def estimate_motion_kernel(image: np.ndarray, sizes: range = range(3, 26, 2)) -> np.ndarray:
    """Motion kernel from the image alone.

    The angle is where the directional derivative has least energy (blur removes detail
    along the motion); the length is the lag of the most negative autocorrelation of that
    derivative along the motion (a box blur of length L makes the derivative two spikes L
    apart with opposite signs).
    """
    grey = torch.from_numpy(image.mean(axis=-1, dtype=np.float32))[None, None]
    gradients = kornia.filters.spatial_gradient(grey)[0, 0]
    angles = np.arange(0, 180, 5)
    energy = [float(((np.cos(np.deg2rad(a)) * gradients[0] - np.sin(np.deg2rad(a)) * gradients[1]) ** 2).mean())
              for a in angles]
    angle = float(angles[int(np.argmin(energy))])
    aligned = kornia.geometry.rotate(grey, torch.tensor([-angle]))[0, 0].numpy()  # motion now horizontal
    derivative = np.diff(aligned, axis=1)[8:-8, 8:-8]
    derivative = derivative - derivative.mean()
    correlation = [float((derivative[:, :-lag] * derivative[:, lag:]).mean()) for lag in sizes]
    length = int(list(sizes)[int(np.argmin(correlation))])
    length += 1 - length % 2
    return kornia.filters.get_motion_kernel2d(length, torch.tensor([angle]), mode="bilinear")[0].numpy()


def deblur(image: np.ndarray, iterations: int = 15) -> np.ndarray:
    """Richardson-Lucy deconvolution, per channel, with an estimated motion kernel.

    The image is first extended by reflection, so the deconvolution sees no dark frame
    around it (zero padding rings from the borders inwards), and cropped back after.
    """
    kernel = estimate_motion_kernel(image)
    margin = 2 * kernel.shape[0]
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    channels = [restoration.richardson_lucy(padded[..., c], kernel, num_iter=iterations, clip=True) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1)[margin:-margin, margin:-margin], 0, 1)


def brighten(image: np.ndarray, target_mean: float = 0.45) -> np.ndarray:
    """Gamma correction whose exponent brings the mean level to ``target_mean``."""
    mean = float(np.clip(image.mean(), 1e-4, 0.99))
    gamma = float(np.clip(np.log(target_mean) / np.log(mean), 0.2, 1.0))
    return np.clip(image, 0, 1) ** gamma


CLASSICAL_BY_CLASS = {0: denoise, 1: derain, 2: dehaze, 3: deblur, 4: brighten}


def classical_restore(image: np.ndarray, task: str) -> np.ndarray:
    """The classical restorer of a task; a composite's restorers run chained, the last degradation undone first.

    Shape:
        (H, W, 3) -> (H, W, 3)
    """
    restored = image.astype(np.float64)
    for class_id in reversed(task_classes(task)):
        restored = CLASSICAL_BY_CLASS[class_id](restored)
    return restored.astype(np.float32)
