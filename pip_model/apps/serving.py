"""The registered form of a restorer: what MLflow stores, serves and loads back.

``mlflow.pytorch.load_model(uri)`` returns a :class:`ServedRestorer`, called like the models
of :func:`pip_model.build_model`: ``served(images, degradation)``. MLflow's pyfunc passes its
inference params to the same call as keywords, so a prompt can also be named in words:

    mlflow.pyfunc.load_model(uri).predict(images, params={"task": "derain"})

and ``mlflow models serve`` answers ``{"inputs": images, "params": {"task": "derain"}}``. The
task is a task name, a composite (``derain_dehaze``), a class, a mixture
(``rain=0.7,haze=0.3``), or ``auto``: the degradation sensor bundled into the model at
registration scores each image and its scores make the prompt.

What a request can do is bounded: it names a prompt and nothing that loads a file or a URL
(the sensor is part of the model: a request's ``sensor`` may only repeat its name); pixels
must be finite and in [0, 1]; an image is restored in tiles above ``tile`` pixels a side, a
request over ``max_pixels`` pixels is refused with 413, and one that runs past the server's
timeout stops within one batch of tiles. The server's operator sets these limits with the
environment variables ``PIP_SERVE_MAX_PIXELS``, ``PIP_SERVE_TILE`` and MLflow's
``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``. Every refusal is one line; an unexpected error is
logged with its traceback on the server and answered with one line.
"""

from __future__ import annotations

import logging
import os
import time

import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, DEADLINE_EXCEEDED, INTERNAL_ERROR, RESOURCE_EXHAUSTED
from torch import nn

from pip_model.evaluation.inference import restore
from pip_model.networks.pip import degradation_weights
from pip_model.networks.registry import spec_of_model
from pip_model.tasks import model_classes, parse_prompt

# 16 megapixels a request: four 2048x2048 images; the JSON of that many pixels is about 1 GB already.
DEFAULT_MAX_PIXELS = 16 * 2**20
DEFAULT_TILE = 512
TILE_OVERLAP = 32
# MLflow's scoring server answers 504 after this many seconds (MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT).
DEFAULT_TIMEOUT_S = 60
# A pixel this far outside [0, 1] is not rounding: the request is on another scale.
RANGE_TOLERANCE = 1e-3

_log = logging.getLogger(__name__)


class RequestRefused(MlflowException, ValueError):
    """A request the served model will not run, answered with one line and its HTTP status.

    MLflow's scoring server prefixes the message of an error raised in ``predict`` with the whole input; this
    keeps the one line (and sends no traceback).
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        code = {400: BAD_REQUEST, 413: BAD_REQUEST, 504: DEADLINE_EXCEEDED, 429: RESOURCE_EXHAUSTED}.get(
            status, INTERNAL_ERROR)
        super().__init__(message, error_code=code)
        self._line, self.status = message, status

    @property
    def message(self) -> str:  # type: ignore[override]
        return self._line

    @message.setter
    def message(self, _: str) -> None:
        pass  # the scoring server's rewrite, which would echo the request's pixels

    def get_http_status_code(self) -> int:
        return self.status


def _limit(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text else default
    except ValueError:
        _log.warning("%s=%r is not a whole number; using %d", name, text, default)
        return default


class ServedRestorer(nn.Module):
    """A restorer that also takes its prompt by name, with the sensor that ``task="auto"`` uses inside it.

    Args:
        model: the restorer (a PIP model or a plain backbone).
        sensor: the degradation sensor bundled for ``task="auto"``; None when registered without one.
        sensor_name: the sensor's registry name, the only value a request's ``sensor`` param may take.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W), values in [0, 1]
    """

    def __init__(self, model: nn.Module, *, sensor: nn.Module | None = None, sensor_name: str = "") -> None:
        super().__init__()
        self.model = model
        self.sensor = sensor
        self.sensor_name = sensor_name if sensor is not None else ""

    @property
    def uses_prompts(self) -> bool:
        return spec_of_model(self.model).uses_prompts

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None, *, task: str = "",
                sensor: str = "") -> torch.Tensor:
        try:
            return self._restore(images, degradation, task, sensor)
        except RequestRefused:
            raise
        except Exception as error:  # a bug or an exhausted machine: the log keeps the traceback, the client a line
            _log.exception("restoring a request failed")
            raise RequestRefused(f"the model failed on this request ({type(error).__name__}); the server's log has "
                                 "the details", status=500) from None

    def _restore(self, images: torch.Tensor, degradation: torch.Tensor | None, task: str,
                 sensor: str) -> torch.Tensor:
        started = time.monotonic()
        if sensor and sensor != self.sensor_name:
            bundled = f"its bundled sensor {self.sensor_name!r}" if self.sensor is not None else "no sensor"
            raise RequestRefused(f"params.sensor={sensor!r}: a request cannot load a model, a file or a URL; this "
                                 f"model serves with {bundled} (leave sensor out)")
        check_pixels(images)
        max_pixels = _limit("PIP_SERVE_MAX_PIXELS", DEFAULT_MAX_PIXELS)
        batch, _, height, width = images.shape
        if batch * height * width > max_pixels:
            raise RequestRefused(f"{batch} image(s) of {width}x{height} make {batch * height * width:,} pixels, over "
                                 f"this server's limit of {max_pixels:,} pixels a request (PIP_SERVE_MAX_PIXELS): "
                                 "send fewer or smaller images", status=413)
        spec = spec_of_model(self.model)
        prompt, sensor_used, tasks = None, None, None
        if spec.uses_prompts:
            if degradation is not None:
                prompt = degradation_weights(degradation, batch_size=batch, num_classes=len(model_classes(self.model)),
                                             device=degradation.device)
            elif task == "auto":
                if self.sensor is None:
                    raise RequestRefused("task=auto: this model was registered without a degradation sensor; name "
                                         "the task")
                sensor_used = self.sensor
            else:
                prompt = self._prompt(task, model_classes(self.model))
        elif spec.call == "non_blind":
            if task not in spec.tasks:
                raise RequestRefused(f"params.task: this task expert restores {', '.join(spec.tasks)}; name one of "
                                     f"them (got {task!r})")
            tasks = [task]
        timeout = _limit("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", DEFAULT_TIMEOUT_S)
        tile = max(_limit("PIP_SERVE_TILE", DEFAULT_TILE), 2 * TILE_OVERLAP + 1)
        try:
            restored = restore(self.model, images, spec=spec, prompt=prompt, sensor=sensor_used, tasks=tasks,
                               tile=tile, overlap=TILE_OVERLAP, deadline=started + timeout)
        except TimeoutError:
            raise RequestRefused(f"stopped after {time.monotonic() - started:.0f} s, past this server's timeout "
                                 f"of {timeout} s (MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT): send smaller "
                                 "images", status=504) from None
        return restored.images.clamp(0, 1)

    @staticmethod
    def _prompt(task: str, classes: tuple[str, ...]) -> torch.Tensor:
        if not task:
            raise RequestRefused("this PIP model needs a prompt: degradation= (class ids or weights) or task= "
                                 "(a task, a class, a mixture such as rain=0.7,haze=0.3, or auto)")
        try:
            return parse_prompt(task, classes)
        except ValueError as error:
            raise RequestRefused(f"params.task: {error}") from None


def check_pixels(images: torch.Tensor) -> None:
    """Refuses images that are not finite or not on the [0, 1] scale, with one line that says which.

    Raises:
        RequestRefused: 400, with a hint when the values look like 0-255.

    Shape:
        images: (B, 3, H, W)
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise RequestRefused(f"expected images of shape (batch, 3, height, width), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise RequestRefused(f"expected float pixels in [0, 1], got {images.dtype}")
    if images.numel() == 0:
        raise RequestRefused(f"the request holds no pixels (shape {tuple(images.shape)})")
    finite = torch.isfinite(images)
    if not finite.all():
        raise RequestRefused(f"{int((~finite).sum()):,} pixel values are NaN or infinite; send finite values in "
                             "[0, 1]")
    low, high = float(images.min()), float(images.max())
    if low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        return
    hint = "; they look like 0-255 values: divide them by 255" if low >= 0 and high <= 255 else ""
    raise RequestRefused(f"pixel values must lie in [0, 1]; these span {low:.4g} to {high:.4g}{hint}")
