"""The paper's experiments as ``params.yaml: protocols`` holds them: which protocols and methods exist, and the params
overrides that make one of them (``flows.paper`` runs them as DVC experiments; ``bench/device_check.py`` trains one
on a GPU without DVC or Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pip_model.config import read_params

NOT_PROTOCOLS = frozenset({"recipe", "methods"})  # the keys of params.yaml: protocols that are no protocol
DEFAULT_METHOD = "pip"


def known_protocols(protocols: dict[str, Any]) -> list[str]:
    return sorted(name for name in protocols if name not in NOT_PROTOCOLS)


def protocol_overrides(repo: Path, protocol: str, datasets_root: str, overrides: dict[str, Any] | None = None,
                       method: str | None = DEFAULT_METHOD) -> dict[str, Any]:
    """The params overrides of one protocol trained by one method's recipe, in the order they apply (later keys
    win): ``recipe``, ``methods.<method>``, the protocol's, the datasets root, ``overrides``. ``method=None`` leaves
    every method's recipe out (``--evaluate-only`` trains nothing)."""
    protocols = read_params(repo / "params.yaml").get("protocols") or {}
    known = known_protocols(protocols)
    if protocol not in known:
        raise ValueError(f"unknown protocol {protocol!r}; params.yaml's protocols has {', '.join(known) or 'none'}")
    methods = protocols.get("methods") or {}
    if method is not None and method not in methods:
        raise ValueError(f"unknown method {method!r}; params.yaml's protocols.methods has "
                         f"{', '.join(sorted(methods)) or 'none'}")
    return {**(protocols.get("recipe") or {}), **((methods[method] or {}) if method else {}), **protocols[protocol],
            "prepare.datasets_root": datasets_root, **(overrides or {})}
