"""PIP: Prompt-In-Prompt learning for universal image restoration.

The public surface: the model registry, the reference loader, the degradations, the
task/class mapping and the prompt regulariser.
"""

from pip_model.degradations import degrade
from pip_model.losses import prompt_regularization
from pip_model.pip import PIPConfig
from pip_model.reference import load_reference
from pip_model.registry import build_model, list_models
from pip_model.tasks import DEGRADATION_CLASSES, NUM_CLASSES, TASK_TO_CLASS, TASKS, task_class

__all__ = [
    "DEGRADATION_CLASSES",
    "NUM_CLASSES",
    "TASKS",
    "TASK_TO_CLASS",
    "PIPConfig",
    "build_model",
    "degrade",
    "list_models",
    "load_reference",
    "prompt_regularization",
    "task_class",
]
