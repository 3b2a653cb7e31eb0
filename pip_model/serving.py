"""The registered form of a restorer: what MLflow stores, serves and loads back.

``mlflow.pytorch.load_model(uri)`` returns a :class:`ServedRestorer`, called like the models
of :func:`pip_model.build_model`: ``served(images, degradation)``. MLflow's pyfunc passes its
inference params to the same call as keywords, so a prompt can also be named in words:

    mlflow.pyfunc.load_model(uri).predict(images, params={"task": "derain"})

and ``mlflow models serve`` answers ``{"inputs": images, "params": {"task": "derain"}}``. The
task is a task name, a composite (``derain_dehaze``), a class, a mixture
(``rain=0.7,haze=0.3``), or ``auto``: the registered degradation sensor (``sensor``, an MLflow
model URI) scores each image and its scores make the prompt.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pip_model.tasks import parse_prompt
from pip_model.tracking import mlflow_uri_problem


class ServedRestorer(nn.Module):
    """A restorer that also takes its prompt by name.

    Args:
        model: the restorer (a PIP model or a plain backbone).
        sensor_uri: the MLflow model URI of the sensor that ``task="auto"`` uses unless the call names another.

    Shape:
        (B, 3, H, W) -> (B, 3, H, W)
    """

    def __init__(self, model: nn.Module, *, sensor_uri: str = "") -> None:
        super().__init__()
        self.model = model
        self.sensor_uri = sensor_uri
        self._sensors: dict[str, Any] = {}  # loaded on first use; a dict, so the sensors are not pickled with us

    @property
    def uses_prompts(self) -> bool:
        return bool(getattr(self.model, "uses_prompts", False))

    def forward(self, images: torch.Tensor, degradation: torch.Tensor | None = None, *, task: str = "",
                sensor: str = "") -> torch.Tensor:
        if not self.uses_prompts:
            return self.model(images)
        if degradation is None:
            if not task:
                raise ValueError("this PIP model needs a prompt: degradation= (class ids or weights) or task= "
                                 "(a task, a class, a mixture such as rain=0.7,haze=0.3, or auto)")
            degradation = self._sensor_prompt(images, sensor or self.sensor_uri) if task == "auto" else (
                parse_prompt(task).expand(images.shape[0], -1))
        return self.model(images, degradation)

    def _sensor_prompt(self, images: torch.Tensor, uri: str) -> torch.Tensor:
        if not uri:
            raise ValueError("task=auto needs a degradation sensor: pass params sensor=models:/NAME@ALIAS")
        if uri not in self._sensors:
            import mlflow.pytorch

            try:
                self._sensors[uri] = mlflow.pytorch.load_model(uri, map_location=images.device).eval()
            except Exception as error:  # MlflowException, OSError...: one line saying what the store holds
                raise ValueError(f"task=auto: {mlflow_uri_problem(uri, error)}") from None
        return self._sensors[uri].prompt(images)[1]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_sensors": {}}
