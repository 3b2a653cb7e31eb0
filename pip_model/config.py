"""Reading ``params.yaml``, the one source of configuration, into typed sections.

Each stage reads its own section into a frozen dataclass with :func:`load_section`.
Unknown keys and wrongly typed values are errors that name the key, the value and what
is allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A ``params.yaml`` value that is missing, unknown or of the wrong type."""


class CommandLine(argparse.ArgumentParser):
    """The argument parser of every entry point: ``--help`` lists the arguments, choices and an example and exits
    0 without doing any work; a bad or unknown argument gets one line (``prog: error: ...``) and exit code 2."""

    def __init__(self, *, example: str = "", **keywords: Any) -> None:
        keywords.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if example:
            keywords["epilog"] = "\n".join(filter(None, [keywords.get("epilog"), f"example:\n  {example}"]))
        super().__init__(**keywords)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def read_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The whole ``params.yaml`` as a dict."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such parameters file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in (a for a in arguments if a is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {annotation}")
    if origin is typing.Literal:
        if value not in arguments:
            raise ConfigError(f"{where}: {value!r} is not allowed; expected one of {', '.join(map(repr, arguments))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(item, arguments[0], f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) != len(arguments):
            raise ConfigError(f"{where}: expected {len(arguments)} values, got {list(value)}")
        return tuple(_convert(item, kind, f"{where}[{i}]") for i, (item, kind) in enumerate(zip(value, arguments)))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = arguments
        return {_convert(k, key_type, where): _convert(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return from_mapping(annotation, value, where)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is Any or (isinstance(annotation, type) and isinstance(value, annotation)):
        if annotation is int and isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{where}: expected {name}, got {value!r}")


def from_mapping(cls: type[T], values: Any, where: str) -> T:
    """Builds the dataclass ``cls`` from a mapping, checking every key and type.

    Args:
        cls: a dataclass whose fields have defaults or are given in ``values``.
        values: the mapping from ``params.yaml`` (None means all defaults).
        where: the dotted name of the section, for error messages.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    converted = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in values.items()}
    try:
        return cls(**converted)
    except TypeError as error:  # a required field is missing
        raise ConfigError(f"{where}: {error}") from None
    except ValueError as error:  # the dataclass's own validation
        raise ConfigError(str(error)) from None


def load_section(cls: type[T], section: str, path: str | os.PathLike = "params.yaml") -> T:
    """Reads one top-level section of ``params.yaml`` into the dataclass ``cls``."""
    return from_mapping(cls, read_params(path).get(section), section)


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """``params.yaml: base``, shared by every stage.

    Attributes:
        seed: the root of every seed in the pipeline.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    seed: int = 0
    device: typing.Literal["auto", "cpu", "cuda"] = "auto"

    def torch_device(self) -> str:
        """The device to compute on; raises :class:`ConfigError` for ``cuda`` where torch sees no GPU."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"base.device is cuda, but torch {torch.__version__} sees no CUDA device here; "
                              "set base.device: auto or cpu")
        return self.device
