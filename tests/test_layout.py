"""The package's shape: sub-packages by concern, a small top level, short functions, no import cycle, and stage
dependencies in dvc.yaml that cover every module each stage imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

import pip_model

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pip_model"
LONGEST_FUNCTION = 80


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__.py``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path: Path, modules: dict[str, Path], *, parents: bool = True) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it; with ``parents``, also the packages above them
    (importing ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pip_model"):
            named |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                      for alias in node.names}
        elif isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names if alias.name.startswith("pip_model")}
    if not parents:
        return named & set(modules)
    return {".".join(name.split(".")[:end]) for name in named for end in range(1, name.count(".") + 2)
            if ".".join(name.split(".")[:end]) in modules}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_the_package_has_sub_packages_by_concern_and_a_small_top_level():
    top_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    sub_packages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    # The top level holds what every concern uses: config, tasks, image files, protocols, the CPU kernels' pin.
    assert len(top_modules) <= 7, top_modules
    assert {"networks", "data", "engine", "evaluation", "tracking", "apps"} <= set(sub_packages), sub_packages


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert long == []


def test_no_module_imports_itself_through_others():
    # A package's __init__ importing its own modules is no cycle: Python has the package when they run.
    modules = module_files()
    graph = {name: imported_modules(path, modules, parents=False) - {name} for name, path in modules.items()}
    assert import_cycles(graph) == []
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds one


# Modules a stage imports whose edits cannot change its result, and what stands in for them. A train stage depends
# on its model's fingerprint (stage `models`, pip_model/networks/fingerprint.py: the code of the model's own
# modules) instead of every network; logging, sample grids and progress lines are no part of a trained model.
TRAINING_NEUTRAL = {
    "pip_model.networks": "the model's own code is in data/model_code/<model>.json",
    "pip_model.evaluation": "only the logged sample grids restore (pip_model.engine.previews)",
    "pip_model.tracking": "MLflow logging",
    "pip_model.engine.previews": "the sample grids logged to MLflow",
    "pip_model.engine.progress": "the progress line",
    "pip_model.apps": "nothing of the apps trains",
}
NOT_DEPENDENCIES = {"train": TRAINING_NEUTRAL, "train_sensor": TRAINING_NEUTRAL}
KEPT = {"pip_model.networks.checkpoints"}  # the model file's format: a train stage's output


def _neutral(stage: str, module: str) -> bool:
    return module not in KEPT and any(module == prefix or module.startswith(f"{prefix}.")
                                      for prefix in NOT_DEPENDENCIES.get(stage, {}))


def _stage_commands() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(_stage_commands()))
def test_every_module_a_stage_imports_is_one_of_its_dependencies(stage):
    """A module a stage runs but does not list would let an edit change results that DVC calls up to date."""
    definition = _stage_commands()[stage]
    definition = definition.get("do", definition)
    script = ROOT / definition["cmd"].split()[1]
    deps = [ROOT / dep for dep in definition["deps"]]
    modules = module_files()
    closure, todo = set(), list(imported_modules(script, modules))
    while todo:
        module = todo.pop()
        if module not in closure and not _neutral(stage, module):
            closure.add(module)
            todo += imported_modules(modules[module], modules)
    missing = sorted(name for name in closure
                     if not any(modules[name] == dep or dep in modules[name].parents for dep in deps))
    assert missing == [], f"{stage} imports {missing} but dvc.yaml does not list them"


def test_the_public_names_and_the_old_module_names_still_import():
    for name in ("build_model", "list_models", "degrade", "load_reference", "prompt_regularization", "task_prompt",
                 "COMPOSITE_TASKS", "TASKS", "PIPConfig"):
        assert getattr(pip_model, name) is not None
    # A model registered before the sub-packages is a pickle naming classes by their old modules.
    for old, new in pip_model.MOVED_MODULES.items():
        assert importlib.import_module(old) is importlib.import_module(new)
    from pip_model.pip import PIPSkips  # noqa: F401  (the old spelling of pip_model.networks.pip)
