"""The paper's table as a reviewer expects it: every published row of the protocol with its source, ours beside them,
and the lines under it that say what this run is (its budget against the published ones, the training lists, the
test sets found). A model scored without training (a released checkpoint, ``flows.paper --evaluate-only``) gets the
same table and, beside it, its published row with the difference per column (:func:`published_comparison`).

Every average, published or ours, is the mean of the row's PSNRs and of its SSIMs; a source's printed average stays
beside it, with a note where rounding cannot explain the difference (:mod:`pip_model.apps.published`). A row whose
source prints only its average shows that alone. Under ``cdd11`` each column is one CDD-11 subset, read from the
metrics key of its test set (``lowlight@CDD-11 low``), with SSIM to four digits as OneRestore's table prints it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pip_model.apps.published import BUDGETS, PUBLISHED, TEST_SETS, PublishedProtocol, published_row
from pip_model.config import from_mapping
from pip_model.engine.recipes import TrainConfig
from pip_model.evaluation.benchmark import split_key
from pip_model.tasks import ALL_TASKS

EXTRA_COLUMNS = ["average", "printed average", "source", "note"]
OUR_SOURCE = "this run"
OUR_NOTES = {"input": "the degraded input, unrestored", "classical": "classical restorers, untrained"}


def _cell(figures: tuple[float, float | None] | None, digits: int = 3) -> str:
    """``PSNR/SSIM`` (``-`` for a missing figure), SSIM to ``digits`` digits."""
    if figures is None:
        return "-"
    return f"{figures[0]:.2f}/" + ("-" if figures[1] is None else f"{figures[1]:.{digits}f}")


def extra_keys(metrics: Mapping[str, Mapping[str, Any]], protocol: str | None = None) -> list[str]:
    """The results on test sets the paper's table lacks (``denoise_25@Urban100``): one set after the other, each in
    the paper's task order. The keys of ``protocol``'s own columns (CDD-11's) are not among them."""
    columns = {PUBLISHED[protocol].key(task) for task in PUBLISHED[protocol].tasks} if protocol else set()
    keys = list(dict.fromkeys(key for per_task in metrics.values() for key in per_task
                              if split_key(key)[1] and key not in columns))
    sets = list(dict.fromkeys(split_key(key)[1] for key in keys))
    return sorted(keys, key=lambda key: (sets.index(split_key(key)[1]), ALL_TASKS.index(split_key(key)[0])))


def extra_column(key: str) -> str:
    """The column of a task on a test set the paper's table lacks: ``denoise_25@Urban100`` -> ``Urban100 s25``,
    ``derain@Rain100H`` -> ``Rain100H``, ``derain_dehaze@Urban100`` -> ``Urban100 derain_dehaze``."""
    task, test_set = split_key(key)
    if task.startswith("denoise_"):
        return f"{test_set} s{task.removeprefix('denoise_')}"
    return test_set if task in TEST_SETS else f"{test_set} {task}"


def _our_row(model: str, per_task: Mapping[str, Mapping[str, float]], published: PublishedProtocol,
             extras: Sequence[str] = ()) -> list[str]:
    """Our cells, their mean and a note naming the test sets without a result (then the mean is not comparable)."""
    keys = {task: published.key(task) for task in published.tasks}
    values = {task: (per_task[keys[task]]["psnr"], per_task[keys[task]]["ssim"]) for task in published.tasks
              if keys[task] in per_task}
    average = ((float(np.mean([psnr for psnr, _ in values.values()])),
                float(np.mean([ssim for _, ssim in values.values()]))) if values else None)
    notes = [OUR_NOTES["input"] if model == "input" else OUR_NOTES["classical"] if model == "classical"
             else "prompts from the degradation sensor (blind)" if model.endswith("_blind") else ""]
    missing = [published.test_sets[task] for task in published.tasks if task not in values]
    if missing:
        notes.append(f"average of {len(values)} of the {len(published.tasks)} test sets (no result on "
                     f"{', '.join(missing)}): not comparable")
    digits = published.ssim_digits
    cells = [_cell(values.get(task), digits) for task in published.tasks]
    others = [_cell((per_task[key]["psnr"], per_task[key]["ssim"]), digits) if key in per_task else "-"
              for key in extras]
    return [*cells, _cell(average, digits), "-", OUR_SOURCE, "; ".join(note for note in notes if note), *others]


def paper_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]], protocol: str,
                parameters: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The paper's table layout: one row per method, the published ones then ours, ``PSNR/SSIM`` per test set of
    the protocol (in the published order), the average (the mean of the row's PSNRs and of its SSIMs), the
    average the source prints, the source, and a note (a printed average that is not the mean of its figures,
    a test set we have no result on).

    Args:
        metrics: ``evaluate``'s metrics.json: per model, per task, ``psnr`` and ``ssim``.
        protocol: a key of :data:`pip_model.apps.published.PUBLISHED`.
        parameters: ``evaluate``'s parameters.json: with it, a last column of each of our models' parameters
            (the ``experts`` row: every task expert's, the storage a set of them takes).
    """
    published = PUBLISHED[protocol]
    extras = extra_keys(metrics, protocol)
    columns = [published.test_sets[task] for task in published.tasks] + EXTRA_COLUMNS + [extra_column(key)
                                                                                        for key in extras]
    digits = published.ssim_digits
    rows: dict[str, list[str]] = {}
    for row in published.rows:
        rows[row.method] = [*(_cell(row.figures.get(task), digits) for task in published.tasks),
                            _cell(row.average(), digits), _cell(row.printed_average, digits), row.source,
                            row.average_note(), *["-"] * len(extras)]
    for model, per_task in metrics.items():
        rows[model if model not in rows else f"{model} ({OUR_SOURCE})"] = _our_row(model, per_task, published,
                                                                                   extras)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    if parameters is not None:
        counts = {**{row.method: "-" for row in published.rows}, **{
            name: f"{parameters[model] / 1e6:.3f} M" if model in parameters else "-"
            for name, model in zip(list(rows)[len(published.rows):], metrics)}}
        table[PARAMETERS_COLUMN] = pd.Series(counts)
    return table


PARAMETERS_COLUMN = "parameters"
# How the denoising columns' noisy images are made (``degrade.test_noise``); the published all-in-one rows used
# PromptIR's, a published task expert's row usually the float protocol.
NOISE_PROTOCOLS = {
    "pipeline": "this pipeline's (float noise clamped to [0, 1] and rounded to 8 bits, a seed per image and task)",
    "published": "PromptIR's test code's (uint8-truncated, one seed-0 stream per test set), as the all-in-one "
                 "tables",
    "float": "the task experts' classic protocol (float Gaussian noise, neither clipped nor rounded: DnCNN, FFDNet, "
             "BM3D); the all-in-one tables used PromptIR's uint8-truncated noise, on which the same network scores "
             "lower",
}


def noise_line(params: Mapping[str, Any]) -> str:
    """Which noise protocol the denoising columns of this run were scored under (``degrade.test_noise``); a
    protocol without them says how its figures were scored instead (:func:`run_lines`)."""
    protocol = str((params.get("degrade") or {}).get("test_noise", "pipeline"))
    return f"Noise of the denoising columns: {protocol}, {NOISE_PROTOCOLS.get(protocol, 'not a known protocol')}."


def missing_line(benchmark: pd.DataFrame | None, protocol: str) -> str:
    """The protocol's test sets the benchmark holds no pair of: not scored (their cells stay ``-``)."""
    if benchmark is None:
        return "Missing test sets: not recorded (no benchmark manifest)."
    published = PUBLISHED[protocol]
    test = benchmark[benchmark["split"] == "test"] if "split" in benchmark else benchmark
    missing = dict.fromkeys(published.datasets[task] for task in published.tasks
                            if _column_pairs(test, published, task).empty)
    return ("Missing test sets, not scored: " + ", ".join(missing) + " (not under prepare.datasets_root)." if missing
            else "Every test set of the protocol was found.")


def _listing(value: Any) -> str:
    """A params value as one phrase: a list joined, a mapping as ``key: value`` pairs, nothing as ``none``."""
    if not value:
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {_listing(item)}" for key, item in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(str(item) for item in value)
    return str(value)


def _column_pairs(test: pd.DataFrame, published: PublishedProtocol, task: str) -> pd.DataFrame:
    """The benchmark's pairs that a column of ``task`` scores: the task's (on its own test set, when the protocol
    keys its columns by test set)."""
    pairs = test[test["task"] == task]
    if published.keyed_by_test_set and "test_set" in pairs:
        pairs = pairs[pairs["test_set"].fillna("").astype(str) == published.datasets[task]]
    return pairs


def budget_line(params: Mapping[str, Any], protocol: str = "3task") -> str:
    """Steps and training patches of this run (``params.yaml: train``) against the published runs' budgets of
    ``protocol``."""
    train = from_mapping(TrainConfig, params.get("train"), "train")
    patches = train.steps * train.batch_size
    budgets = PUBLISHED[protocol].budgets if protocol in PUBLISHED else BUDGETS
    shares = "; ".join(f"{budget.method} about {budget.patches / 1e6:.0f} M, {budget.how}: "
                       f"{patches / budget.patches:.1%} of it" for budget in budgets)
    count = f"{patches / 1e6:.2f} M" if patches >= 1e6 else f"{patches:,}"
    return (f"Training: {train.steps:,} steps x batch {train.batch_size} = {count} patches of "
            f"{train.patch} px, against the published 128 px runs: {shares}.")


def lists_line(params: Mapping[str, Any], prepared_dir: Path | None) -> str:
    """The training lists applied (``prepare.train_lists``) and what ``prepare`` kept for training."""
    lists = _listing((params.get("prepare") or {}).get("train_lists"))
    manifest = prepared_dir / "manifest.csv" if prepared_dir is not None else None
    if manifest is None or not manifest.is_file():
        return f"Training lists: {lists}; training images: not recorded."
    images = pd.read_csv(manifest)
    clean = int((images["split"] == "train").sum()) if "split" in images else 0
    pairs_file = manifest.with_name("pairs.csv")
    pairs = pd.read_csv(pairs_file) if pairs_file.is_file() else pd.DataFrame(columns=["task", "split"])
    counts = pairs[pairs["split"] == "train"].groupby("task", sort=True).size()
    real = ", ".join(f"{task} {count}" for task, count in counts.items()) or "none"
    return f"Training lists: {lists}; training images: {clean} clean, real pairs: {real}."


def sets_found_line(benchmark: pd.DataFrame | None, protocol: str) -> str:
    """Per column of the table, the test sets the benchmark holds (its ``test_set`` column) and how many pairs,
    flagged where they are not the one the paper tests on."""
    if benchmark is None:
        return "Test sets: not recorded (no benchmark manifest)."
    published = PUBLISHED[protocol]
    test = benchmark[benchmark["split"] == "test"] if "split" in benchmark else benchmark
    parts = []
    for task in published.tasks:
        pairs = _column_pairs(test, published, task)
        heading = published.test_sets[task]
        if pairs.empty:
            parts.append(f"{heading}: none found")
        elif "test_set" not in pairs or pairs["test_set"].isna().all():
            parts.append(f"{heading}: {len(pairs)} pairs, set not recorded")
        else:
            counts = pairs["test_set"].fillna("not recorded").astype(str).value_counts(sort=False)
            found = " + ".join(f"{name} ({count})" for name, count in counts.items())
            expected = published.datasets[task]
            other = {name.lower() for name in counts.index} != {expected.lower()}
            parts.append(f"{heading}: {found}" + (f" (the paper: {expected} alone)" if other else ""))
    return "Test sets: " + "; ".join(parts) + "."


def run_lines(params: Mapping[str, Any], benchmark_dir: Path | None, prepared_dir: Path | None,
              protocol: str) -> list[str]:
    """The lines under the paper table that say what this run is: budget, training lists, test sets found, the
    noise protocol."""
    manifest = benchmark_dir / "manifest.csv" if benchmark_dir is not None else None
    benchmark = pd.read_csv(manifest) if manifest is not None and manifest.is_file() else None
    return [budget_line(params, protocol), lists_line(params, prepared_dir), sets_found_line(benchmark, protocol),
            scoring_line(params, protocol)]


def scoring_line(params: Mapping[str, Any], protocol: str) -> str:
    """How this run's figures were scored beside the published ones: the noise protocol of the denoising columns
    (:func:`noise_line`), or, for a protocol without them, how its published figures were scored and this run's
    ``evaluate.metrics``."""
    published = PUBLISHED[protocol]
    if not published.scoring:
        return noise_line(params)
    metrics = (params.get("evaluate") or {}).get("metrics", "kornia")
    return f"{published.scoring} This run: evaluate.metrics {metrics}."


def _difference(ours: tuple[float, float] | None, theirs: tuple[float, float] | None, digits: int = 3) -> str:
    if ours is None or theirs is None:
        return "-"
    return f"{ours[0] - theirs[0]:+.2f}/{ours[1] - theirs[1]:+.{digits}f}"


def published_comparison(metrics: Mapping[str, Mapping[str, Mapping[str, float]]], protocol: str,
                         model: str) -> pd.DataFrame | None:
    """Our row of ``model`` above its published one (:func:`pip_model.apps.published.published_row`) and the
    difference per column, ours minus published, as ``PSNR/SSIM``; the average only when every test set has a
    result. None when the protocol's table has no published row of that model.

    Args:
        metrics: ``evaluate``'s metrics.json.
        protocol: a key of :data:`pip_model.apps.published.PUBLISHED`.
        model: a row of ``metrics``, named by its registry name (``promptir``).
    """
    row = published_row(protocol, model)
    if row is None:
        return None
    published = PUBLISHED[protocol]
    ours = {task: (metrics[model][published.key(task)]["psnr"], metrics[model][published.key(task)]["ssim"])
            for task in published.tasks if published.key(task) in metrics[model]}
    theirs: dict[str, tuple[float, float] | None] = dict(row.figures)
    if len(ours) == len(published.tasks):  # else our average is over other test sets than theirs
        ours["average"] = (float(np.mean([psnr for psnr, _ in ours.values()])),
                           float(np.mean([ssim for _, ssim in ours.values()])))
    theirs["average"] = row.average()
    keys = [*published.tasks, "average"]
    columns = [published.test_sets[task] for task in published.tasks] + ["average"]
    digits = published.ssim_digits
    return pd.DataFrame([[_cell(ours.get(key), digits) for key in keys],
                         [_cell(theirs.get(key), digits) for key in keys],
                         [_difference(ours.get(key), theirs.get(key), digits) for key in keys]],
                        index=[f"{model} ({OUR_SOURCE})", f"{row.method} (published)", "difference"], columns=columns)


def write_evaluate_only(out_dir: Path, protocol: str, models: Mapping[str, str], benchmark_dir: Path | None,
                        params: Mapping[str, Any] | None = None) -> str:
    """The paper table of models scored as they are, nothing trained (``flows.paper --evaluate-only``), from
    ``out_dir/metrics.json``; each model beside its published row.

    Writes ``paper_table.csv``, ``paper_table_notes.txt`` and, per model with a published row under the protocol,
    ``<model>_vs_published.csv`` under ``out_dir``.

    Args:
        out_dir: where ``evaluate`` wrote ``metrics.json``.
        protocol: a key of :data:`pip_model.apps.published.PUBLISHED`.
        models: registry name -> what the file is, in words (``model.ckpt (published PromptIR checkpoint)``).
        benchmark_dir: the benchmark scored (for the lines on the test sets found and missing).
        params: the run's params.yaml (for the noise protocol's line).

    Returns:
        The tables and notes as text, to print.
    """
    metrics = json.loads((out_dir / "metrics.json").read_text())
    parameters_file = out_dir / "parameters.json"
    parameters = json.loads(parameters_file.read_text()) if parameters_file.is_file() else None
    table = paper_table(metrics, protocol, parameters)
    table.to_csv(out_dir / "paper_table.csv")
    manifest = benchmark_dir / "manifest.csv" if benchmark_dir is not None else None
    benchmark = pd.read_csv(manifest) if manifest is not None and manifest.is_file() else None
    scored = "; ".join(f"{name} = {what}" for name, what in models.items())
    notes = [f"Models: scored as they are, nothing trained: {scored}.", sets_found_line(benchmark, protocol),
             missing_line(benchmark, protocol), scoring_line(params or {}, protocol)]
    (out_dir / "paper_table_notes.txt").write_text("\n".join(notes) + "\n")
    parts = [f"PSNR/SSIM in the paper's {protocol} layout ({out_dir / 'paper_table.csv'})", table.to_string(), *notes]
    for name in models:
        comparison = published_comparison(metrics, protocol, name)
        if comparison is None:
            parts.append(f"{name}: the {protocol} table has no published row of it to compare with.")
            continue
        comparison.to_csv(out_dir / f"{name}_vs_published.csv")
        parts += [f"{name} beside its published row (difference: this run minus published, PSNR dB/SSIM):",
                  comparison.to_string()]
    return "\n".join(parts)
