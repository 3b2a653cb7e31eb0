"""Restore a user's own images: ``prompt-restore`` or ``python -m pip_model restore``.

    prompt-restore INPUT... --out DIR [--task TASK | --task auto [--explain] | --mix derain=0.7,dehaze=0.3]
                   [--model PATH | --model models:/NAME@ALIAS] [--tile 512 --overlap 32] [--device cpu|cuda]

Inputs are files or folders (searched recursively; an output folder inside an input folder
is not searched). Outputs keep the input's relative path and name as a PNG (16-bit for
16-bit inputs, alpha carried through); two inputs that would share an output name keep more
of their path, or their extension in the name. Outputs are written atomically with the
umask's permissions, never replace an input, and are skipped when they exist unless
``--overwrite``. A file that cannot be read, or declares more than ``--max-pixels``, fails
alone; the exit code is 1 if any failed. With ``--task auto`` the sensor
scores each image and its scores become the prompt; each image's decision and how sure the
sensor is are printed, and ``--explain`` writes them beside the output (``NAME.scores.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pip_model import tasks
from pip_model.config import CommandLine
from pip_model.data.images import to_array, to_tensor
from pip_model.evaluation.inference import restore
from pip_model.evaluation.tiling import for_inference, layout_of
from pip_model.image_files import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageFileError,
    LoadedImage,
    labelled_strip,
    printable,
    read_image,
    remove_temporary_files,
    walk_files,
    write_png,
)
from pip_model.networks.checkpoints import load_model_file, safe_load
from pip_model.networks.registry import ModelSpec, PluginError, model_spec, spec_of_model, use_plugins
from pip_model.networks.sensor import ABSENT_SCORE, PRESENT_SCORE, nothing_found
from pip_model.tasks import ALL_TASKS, CLASSES, model_classes, task_prompt
from pip_model.tracking.uris import mlflow_uri_problem


class RestoreError(ValueError):
    """A command-line choice that cannot work; the message says what to do."""


def load_restorer(spec: str, device: str) -> tuple[nn.Module, str]:
    """A restorer from a model file of ours, a published PIP-Restormer or PromptIR checkpoint, or an MLflow URI."""
    if spec.startswith(("models:/", "runs:/")):
        import mlflow.pytorch

        try:
            loaded = mlflow.pytorch.load_model(spec, map_location=device)
        except Exception as error:  # MLflow raises MlflowException, OSError or others for a URI it cannot serve
            raise RestoreError(mlflow_uri_problem(spec, error)) from None
        return getattr(loaded, "model", loaded).to(device).eval(), f"MLflow model {spec}"
    from pip_model.networks.reference import describe_metadata, load_model_or_published

    path = Path(spec)
    try:
        model, metadata = load_model_or_published(path)
    except (ValueError, FileNotFoundError) as error:
        raise RestoreError(str(error)) from None
    return model.to(device), f"{path} ({describe_metadata(metadata)})"


def _newest_first(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)


def newest_model(root: Path) -> Path:
    """The newest model the pipeline trained under ``root/models``, PIP models first."""
    files = _newest_first(root / "models")
    if not files:
        raise RestoreError(f"no trained model in {root / 'models'}; run `dvc repro` first or pass --model")
    return next((path for path in files if _holds_prompted_model(path)), files[0])  # reads only as far as needed


def _holds_prompted_model(path: Path) -> bool:
    """Whether a model file holds a registered prompted model (a file that cannot be read, or names a model that
    is not registered, does not)."""
    try:
        name = safe_load(path).get("model_name")
        return model_spec(name).uses_prompts
    except (ValueError, FileNotFoundError, AttributeError):
        return False


def newest_sensor(root: Path) -> Path:
    """The newest sensor the pipeline trained under ``root/sensors``."""
    files = _newest_first(root / "sensors")
    if not files:
        raise RestoreError(f"--task auto needs a trained sensor: none in {root / 'sensors'}; run "
                           "`dvc repro train_sensor` or pass --sensor")
    return files[0]


def parse_mix(text: str, classes: Sequence[str]) -> torch.Tensor:
    """``--mix``'s value -> normalised prompt weights over ``classes`` (see :func:`pip_model.tasks.parse_mix`)."""
    try:
        return tasks.parse_mix(text, classes)
    except ValueError as error:
        raise RestoreError(f"--mix: {error}") from None


# A score is sure when it is this close to 0 or 1; otherwise the prompt is a blend, and the decision says so.
SURE_MARGIN = 0.2


def sensor_decision(scores: torch.Tensor, weights: torch.Tensor, *, score_classes: Sequence[str],
                    weight_classes: Sequence[str]) -> dict[str, dict[str, float] | str]:
    """What the sensor decided for one image, in words and numbers: its per-class scores (over ``score_classes``,
    the sensor's), the prompt weights they make (over ``weight_classes``, the model's), and whether it was sure.

    Shape:
        scores: (len(score_classes),), weights: (len(weight_classes),)
    """
    scores_by_class = {name: round(float(score), 4) for name, score in zip(score_classes, scores)}
    prompt = {name: round(float(weight), 4) for name, weight in zip(weight_classes, weights)}
    unsure = [name for name, score in scores_by_class.items() if SURE_MARGIN < score < 1 - SURE_MARGIN]
    found = [name for name, score in scores_by_class.items() if score >= PRESENT_SCORE]
    listed = "scores " + ", ".join(f"{name} {score:.2f}" for name, score in scores_by_class.items())
    if bool(nothing_found(weights[None])[0]):
        words = f"nothing to restore: no degradation scored {ABSENT_SCORE} or more ({listed}); left as it is"
    else:
        if found:
            state = f"unsure about {', '.join(unsure)}: blended prompt" if unsure else "sure"
            head = f"{' + '.join(found)} ({state})"
        else:
            head = f"faint signs of {', '.join(unsure) or 'several'}, none scored {PRESENT_SCORE}: blended prompt"
        words = (f"{head}; {listed}; prompt "
                 + " + ".join(f"{name} {weight:.2f}" for name, weight in prompt.items() if weight >= 0.005))
    return {"decision": words, "scores": scores_by_class, "prompt": prompt}


def collect_inputs(inputs: Sequence[Path], *, exclude: Path | None = None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, path relative to its input root) for every input; missing inputs and bad entries are reported.

    Folders are searched recursively, except ``exclude`` (the output folder) and what lies under it when it sits
    inside an input folder (when it is the input folder itself, nothing is left out: inputs are never replaced).
    """
    found, problems = [], []
    excluded = exclude.resolve() if exclude is not None else None
    for item in inputs:
        if item.is_dir():
            walk = walk_files(item, suffixes=IMAGE_SUFFIXES)
            inside = excluded is not None and excluded != item.resolve() and excluded.is_relative_to(item.resolve())
            found += [(path, path.relative_to(item)) for path in walk.files
                      if not (inside and path.resolve().is_relative_to(excluded))]
            problems += [f"{path}: {reason}" for path, reason in walk.problems]
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            problems.append(f"{printable(item)}: no such file or folder")
    seen: set[Path] = set()
    unique = [(path, relative) for path, relative in found  # a file given twice is restored once
              if not (path.resolve() in seen or seen.add(path.resolve()))]
    return unique, problems


def output_names(files: Sequence[tuple[Path, Path]]) -> list[Path]:
    """One distinct output path (relative, ``.png``) per input.

    An input keeps its relative path; inputs that would share one keep their path from the folder they have in
    common (``a/x.png``, ``b/x.png``), and those still alike (``y.jpg``, ``y.png``) their extension in the name
    (``y_jpg.png``, ``y_png.png``).
    """
    names = [relative.with_suffix(".png") for _, relative in files]
    for clash in _clashes(names):
        common = Path(os.path.commonpath([files[i][0].resolve().parent for i in clash]))
        for i in clash:
            names[i] = files[i][0].resolve().relative_to(common).with_suffix(".png")
    for clash in _clashes(names):
        for i in clash:
            source = files[i][0]
            names[i] = names[i].with_name(f"{source.stem}_{source.suffix.lstrip('.').lower()}.png")
    for clash in _clashes(names):  # a name made above that another input already has
        for number, i in enumerate(clash[1:], start=2):
            names[i] = names[i].with_name(f"{names[i].stem}_{number}.png")
    return names


def _clashes(names: Sequence[Path]) -> list[list[int]]:
    """Groups of indices whose names are equal (case-insensitively: on some file systems they are one file)."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name.as_posix().lower(), []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def check_writable(folder: Path) -> None:
    """Creates ``folder`` and proves a file can be written there, before any work.

    Raises:
        RestoreError: naming the folder and the reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise RestoreError(f"--out {folder}: cannot write there ({error.strerror or error})") from None


@dataclass
class Summary:
    """What a restore run did, file by file."""

    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    predictions: dict[str, dict[str, dict[str, float] | str]] = field(default_factory=dict)


def _progress(total: int):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="image")
    return None


def _steering(arguments: argparse.Namespace, spec: ModelSpec, classes: Sequence[str], root: Path, device: str
              ) -> tuple[nn.Module | None, torch.Tensor | None]:
    """The sensor (``--task auto``) or the fixed prompt weights (``--task``, ``--mix``) the model is steered with,
    as far as the model takes them.

    Raises:
        RestoreError: the model needs what was not given (a prompt, an expert's task), or the sensor is no sensor.
    """
    sensor, fixed = None, None
    if arguments.mix:
        fixed = parse_mix(arguments.mix, classes)
    elif arguments.task == "auto":
        sensor_path = Path(arguments.sensor) if arguments.sensor else newest_sensor(root)
        try:
            sensor, metadata = load_model_file(sensor_path)
        except (ValueError, FileNotFoundError) as error:
            raise RestoreError(f"--sensor {error}") from None
        if not hasattr(sensor, "prompt"):
            raise RestoreError(f"--sensor {sensor_path}: holds {metadata['model_name']}, a restorer, not a sensor")
        sensor = sensor.to(device)
        print(f"restore: degradation chosen per image by the sensor {sensor_path}", flush=True)
    elif arguments.task:
        try:
            fixed = task_prompt(arguments.task, classes)
        except ValueError as error:
            raise RestoreError(f"--task {error}") from None
    elif spec.uses_prompts:
        raise RestoreError("this PIP model needs a prompt: pass --task TASK, --task auto or --mix NAME=WEIGHT,...")
    if spec.call == "non_blind":
        if arguments.task not in spec.tasks:
            raise RestoreError(f"this task expert restores {', '.join(spec.tasks)}: pass --task with one of them")
        fixed = None
    elif fixed is not None and not spec.uses_prompts:
        # A blind model (PromptIR) or a plain one: a prompt would change nothing, and the compare label would lie.
        given = f"--task {arguments.task}" if arguments.task else f"--mix {arguments.mix}"
        print(f"restore: the model takes no prompt (blind or plain): {given} is not used", flush=True)
        fixed = None
    if arguments.explain and sensor is None:
        raise RestoreError("--explain shows the sensor's scores: use it with --task auto")
    return sensor, fixed


def run(arguments: argparse.Namespace) -> int:
    device = arguments.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RestoreError("--device cuda: this torch build or machine has no CUDA device; use --device cpu")
    root = Path.cwd()
    try:
        use_plugins(arguments.plugin)
    except PluginError as error:
        raise RestoreError(f"--plugin {error}") from None
    model, description = load_restorer(arguments.model or str(newest_model(root)), device)
    model = for_inference(model, channels_last=arguments.channels_last)
    spec = spec_of_model(model)
    layout = layout_of(model) + ("" if arguments.channels_last else " (--no-channels-last)")
    print(f"restore: model {description}{'' if arguments.model else ' (newest trained here)'}, {layout} memory format",
          flush=True)
    # A model without prompts takes none: any class names a prompt that is then left unused.
    sensor, fixed = _steering(arguments, spec, model_classes(model) if spec.uses_prompts else CLASSES, root, device)
    out = Path(arguments.out)
    check_writable(out)  # before any image is restored, not after the last one
    for left in remove_temporary_files(out):
        print(f"restore: removed {left}, left by an interrupted run", flush=True)
    files, missing = collect_inputs([Path(p) for p in arguments.inputs], exclude=out)
    summary = Summary(failed=list(missing))
    inputs = {path.resolve() for path, _ in files}
    bar = _progress(len(files))
    for number, ((path, _), name) in enumerate(zip(files, output_names(files)), start=1):
        target = out / name
        if bar is None:
            print(f"restore: [{number}/{len(files)}] {path}", flush=True)
        try:
            if target.resolve() in inputs:
                summary.skipped.append(f"{path}: its output {target} would replace an input")
            elif target.exists() and not arguments.overwrite:
                summary.skipped.append(f"{path}: {target} exists (use --overwrite)")
            else:
                _restore_one(path, target, model, sensor, fixed, arguments, summary)
                summary.restored.append(str(target))
        except (ImageFileError, OSError) as error:
            summary.failed.append(str(error) if isinstance(error, ImageFileError) else f"{path}: {error}")
        except MemoryError:
            summary.failed.append(f"{path}: restoring it needs more memory than this machine has; try a smaller "
                                  "--tile")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    (out / "restore_summary.json").write_text(json.dumps(
        {"model": description, "restored": summary.restored, "skipped": summary.skipped, "failed": summary.failed,
         "predictions": summary.predictions}, indent=2) + "\n")
    print(f"restore: {len(summary.restored)} restored, {len(summary.skipped)} skipped, {len(summary.failed)} failed")
    for line in summary.skipped:
        print(f"  skipped {line}")
    for line in summary.failed:
        print(f"  failed {line}")
    return 1 if summary.failed else 0


def _restore_one(path: Path, target: Path, model: nn.Module, sensor: nn.Module | None, fixed: torch.Tensor | None,
                 arguments: argparse.Namespace, summary: Summary) -> None:
    image = read_image(path, max_pixels=arguments.max_pixels)
    tiles = _progress(0) if max(image.size) > arguments.tile else None

    def on_tile(done: int, total: int) -> None:
        if tiles is not None:
            tiles.total = total
            tiles.update(1)

    result = restore(model, to_tensor(image.rgb)[None], prompt=fixed, sensor=sensor,
                     tasks=[arguments.task] if arguments.task not in (None, "auto") else None, tile=arguments.tile,
                     overlap=arguments.overlap, on_tile=on_tile)
    if tiles is not None:
        tiles.close()
    if result.scores is not None:
        decision = sensor_decision(result.scores[0], result.weights[0], score_classes=result.sensor_classes,
                                   weight_classes=result.classes)
        summary.predictions[str(path)] = decision
        print(f"restore: {path.name}: {decision['decision']}", flush=True)
        if arguments.explain:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name(f"{target.stem}.scores.json").write_text(json.dumps(decision, indent=2) + "\n")
    if bool(result.left_alone[0]):
        _write_outputs(target, image, image.rgb, "left as it is: nothing to restore", arguments, path)
        return
    prompted = result.weights if spec_of_model(model).uses_prompts else None  # a label only for what steered
    label = (f"restored ({decision_label})" if (decision_label := _prompt_label(prompted, result.classes))
             else "restored")
    _write_outputs(target, image, to_array(result.images[0].clamp(0, 1)), label, arguments, path)


def _write_outputs(target: Path, image: LoadedImage, result: np.ndarray, label: str, arguments: argparse.Namespace,
                   path: Path) -> None:
    # The compare image first: an output that exists is complete with it, and one cut short is redone whole.
    if arguments.compare:
        write_png(target.with_name(f"{target.stem}_compare.png"),
                  labelled_strip([image.rgb, result], [f"input: {path.name}", label]), bit_depth=image.bit_depth)
    write_png(target, result, alpha=image.alpha, bit_depth=image.bit_depth)


def at_least(low: int):
    """An argparse ``type=``: a whole number of at least ``low``, else one line saying why."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is under {low}")
        return value

    return parse


def _prompt_label(weights: torch.Tensor | None, classes: Sequence[str]) -> str:
    if weights is None:
        return ""
    return " + ".join(f"{name} {weight:.2f}" for name, weight in zip(classes, weights[0].tolist())
                      if weight >= 0.005)


def parser(prog: str = "prompt-restore") -> argparse.ArgumentParser:
    command = CommandLine(prog=prog, description=__doc__,
                          example=f"{prog} photos/ --out restored/ --task auto --explain")
    command.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    command.add_argument("--out", required=True, help="output folder")
    prompt = command.add_mutually_exclusive_group()
    prompt.add_argument("--task", choices=[*ALL_TASKS, "auto"],
                        help="the degradation(s) to remove, or auto (the sensor decides per image)")
    prompt.add_argument("--mix", help="prompt weights, e.g. derain=0.7,dehaze=0.3 (normalised)")
    command.add_argument("--model", help="model file, published checkpoint, or MLflow URI (models:/NAME@ALIAS)")
    command.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTRIBUTE",
                         help="register the models of a module of yours (repeatable; see docs/09-add-a-model.md)")
    command.add_argument("--sensor", help="sensor model file for --task auto (default: newest in sensors/)")
    command.add_argument("--explain", action="store_true",
                         help="with --task auto: write the sensor's per-class scores beside each output")
    command.add_argument("--tile", type=at_least(32), default=512, help="tile side for large images (>= 32)")
    command.add_argument("--overlap", type=at_least(0), default=32, help="overlap between tiles (>= 0)")
    command.add_argument("--max-pixels", type=at_least(1), default=DEFAULT_MAX_PIXELS,
                         help=f"refuse images whose header declares more pixels (default {DEFAULT_MAX_PIXELS:,})")
    command.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when present")
    command.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                         help="keep the default memory format (channels-last is faster on the CPU; used only where "
                              "it computes the same function)")
    command.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    command.add_argument("--compare", action="store_true", help="also write INPUT|RESTORED side by side")
    return command


def main(argv: Sequence[str] | None = None, prog: str = "prompt-restore") -> int:
    command = parser(prog)
    arguments = command.parse_args(argv)
    if arguments.overlap >= arguments.tile // 2:
        command.error(f"--overlap ({arguments.overlap}) must be under half of --tile ({arguments.tile})")
    try:
        return run(arguments)
    except RestoreError as error:
        print(f"restore: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
