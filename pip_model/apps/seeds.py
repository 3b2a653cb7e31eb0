"""Is PIP better than its plain backbone, and than PromptIR? The same experiment over several seeds, summarised.

One seed cannot tell a 0.3 dB gain from noise. The ``seeds`` flow runs the pipeline once per
``base.seed`` (a sweep of DVC experiments); :func:`seed_summary` turns the sweep's table into
the mean and standard deviation of every model's score per task, and the per-task difference
between each PIP model and each of its rivals (:func:`pip_rivals`: its plain backbone and PromptIR of its
size, as its spec names them), paired by seed, with its spread. :func:`write_seed_results` writes both tables and
their bar chart with error bars to ``results/seeds``, which the report shows.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pip_model.apps.colours import method_colours  # noqa: E402
from pip_model.networks.registry import model_spec  # noqa: E402

SUMMARY_FILE, DIFFERENCE_FILE, CHART_FILE = "summary.csv", "difference.csv", "seeds.png"
PROVENANCE_FILE = "provenance.json"
# The params sections that change a result (the seed aside, which the sweep varies).
RESULT_SECTIONS = ("base", "prepare", "degrade", "train", "sensor", "evaluate")
DIFFERENCE_COLUMNS = ["model", "rival", "task", "mean", "std", "seeds"]


def pip_rivals(model: str, names: Collection[str]) -> list[str]:
    """What a PIP model is measured against, those of ``names`` present, as its spec says: its plain backbone, then
    its peers (PromptIR of its size); none for any other method."""
    try:
        spec = model_spec(model)
    except ValueError:  # a result's other rows (input, a blind twin, a model not registered here)
        return []
    return spec.rivals(names) if spec.role == "pip" else []


def gap_label(model: str, rival: str) -> str:
    """How a difference is named in tables and legends."""
    return f"{model} − {rival}"


def scores(table: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """One row per (seed, model, task) with its score, from a sweep table's ``model.task.metric`` columns."""
    rows = []
    for column in table.columns:
        parts = str(column).split(".")
        if len(parts) != 3 or parts[2] != metric:
            continue
        for seed, value in zip(table["base.seed"], table[column]):
            if pd.notna(value):
                rows.append({"seed": int(seed), "model": parts[0], "task": parts[1], "score": float(value)})
    if not rows:
        raise ValueError(f"the sweep table has no <model>.<task>.{metric} columns: did its experiments finish?")
    return pd.DataFrame(rows)


def seed_summary(table: pd.DataFrame, metric: str = "psnr") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and standard deviation over seeds per (model, task), and the paired PIP-minus-rival differences.

    Args:
        table: a sweep table (``flows.sweep``), one row per experiment, with ``base.seed`` and
            ``<model>.<task>.<metric>`` columns.
        metric: ``psnr`` or ``ssim``.

    Returns:
        (summary: model, task, mean, std, seeds; difference: model, rival, task, mean, std, seeds).
    """
    long = scores(table, metric)
    tasks = list(dict.fromkeys(long["task"]))
    grouped = long.groupby(["model", "task"], sort=False)["score"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    wide = long.pivot_table(index=["seed", "task"], columns="model", values="score")
    differences = []
    for model in wide.columns:
        for rival in pip_rivals(model, wide.columns):
            gap = (wide[model] - wide[rival]).dropna().groupby(level="task")
            frame = gap.agg(["mean", "std", "count"]).reindex(tasks).dropna(how="all").reset_index()
            frame.columns = ["task", "mean", "std", "seeds"]
            differences.append(frame.assign(model=model, rival=rival))
    difference = (pd.concat(differences, ignore_index=True)[DIFFERENCE_COLUMNS]
                  if differences else pd.DataFrame(columns=DIFFERENCE_COLUMNS))
    return summary, difference


def _labelled(difference: pd.DataFrame) -> pd.DataFrame:
    """``difference`` with its ``label`` column; a file written before PromptIR named the rival ``backbone``."""
    difference = difference.rename(columns={"backbone": "rival"})
    return difference.assign(label=[gap_label(m, r) for m, r in zip(difference["model"], difference["rival"])])


def seed_chart(summary: pd.DataFrame, difference: pd.DataFrame, path: Path, *, metric: str = "psnr",
               dpi: int = 110, colours: Mapping[str, str] | None = None) -> Path:
    """Bars of every model's mean per task with one-standard-deviation error bars, each model in its colour
    (``colours``, default :func:`method_colours` of the models); beside them, PIP minus each rival per task, with
    its spread, in the rival's colour."""
    panels = 2 if not difference.empty else 1
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 3.8), squeeze=False)
    means = summary.pivot(index="task", columns="model", values="mean").reindex(summary["task"].unique())
    spreads = summary.pivot(index="task", columns="model", values="std").reindex(means.index)
    colours = dict(colours or method_colours(means.columns))
    means.plot.bar(ax=axes[0][0], yerr=spreads, capsize=2, width=0.8, color=[colours[m] for m in means.columns])
    seeds = int(summary["seeds"].max())
    unit = f"{metric.upper()} (dB)" if metric == "psnr" else metric.upper()
    axes[0][0].set(ylabel=unit, title=f"{metric.upper()} per task, mean and std over {seeds} seeds")
    axes[0][0].legend(fontsize=7, ncols=2)
    if panels == 2:
        difference = _labelled(difference)
        gap = difference.pivot(index="task", columns="label", values="mean").reindex(
            [task for task in means.index if task in set(difference["task"])])
        gap_spread = difference.pivot(index="task", columns="label", values="std").reindex(gap.index)
        rival_of = dict(zip(difference["label"], difference["rival"]))
        gap.plot.bar(ax=axes[0][1], yerr=gap_spread, capsize=3, width=0.6,
                     color=[colours.get(rival_of[label], "#555555") for label in gap.columns])
        axes[0][1].axhline(0, color="black", linewidth=0.8)
        axes[0][1].legend(fontsize=7)
        axes[0][1].set(ylabel=f"{unit} difference", title="PIP minus each rival (paired by seed)")
    for axis in axes[0]:
        axis.tick_params(axis="x", rotation=30)
        axis.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def write_seed_results(table: pd.DataFrame, out_dir: Path, *, metric: str = "psnr") -> tuple[pd.DataFrame,
                                                                                             pd.DataFrame]:
    """Writes ``summary.csv``, ``difference.csv`` and ``seeds.png`` under ``out_dir``; returns the two tables."""
    summary, difference = seed_summary(table, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out_dir / SUMMARY_FILE, index=False)
    difference.to_csv(out_dir / DIFFERENCE_FILE, index=False)
    seed_chart(summary, difference, out_dir / CHART_FILE, metric=metric)
    return summary, difference


def result_params(params: Mapping[str, Any]) -> dict[str, str]:
    """The settings that change a result, flattened (``train.lr``), without ``base.seed``."""
    from pip_model.tracking.lineage import flatten

    flat = flatten({section: params[section] for section in RESULT_SECTIONS if section in params})
    flat.pop("base.seed", None)
    return flat


def write_provenance(out_dir: Path, *, commit: str, params: Mapping[str, Any], seeds: list[int]) -> Path:
    """Records beside the seeds results what made them: the commit, the date, the seeds and the settings."""
    path = out_dir / PROVENANCE_FILE
    path.write_text(json.dumps({"commit": commit, "date": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"), "seeds": seeds, "params": result_params(params)}, indent=2, sort_keys=True) + "\n")
    return path


def staleness(folder: Path, *, commit: str, params: Mapping[str, Any]) -> str | None:
    """Why the seeds results in ``folder`` may not describe this commit and these settings, in a sentence; None
    when they were computed here, with these settings."""
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return ("These figures carry no record of the commit and settings that made them (they predate that "
                "record), so they may not match the tables above. `python -m flows.seeds` recomputes them.")
    made = json.loads(path.read_text())
    current = result_params(params)
    changed = sorted(key for key in set(current) | set(made.get("params", {}))
                     if current.get(key) != made.get("params", {}).get(key))
    reasons = []
    if made.get("commit") != commit:
        reasons.append(f"at commit {str(made.get('commit'))[:10]} ({made.get('date', 'date unknown')}), not this "
                       f"report's {commit[:10]}")
    if changed:
        reasons.append(f"with other settings ({', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''})")
    if not reasons:
        return None
    return (f"Computed {' and '.join(reasons)}: they may not match the tables above. `python -m flows.seeds` "
            "recomputes them.")


def seed_section(folder: Path, out_dir: Path, *, colours: Mapping[str, str] | None = None,
                 stale: str | None = None) -> list[str]:
    """The report's HTML for the seeds results in ``folder`` (none when the seeds flow has not run), its chart
    drawn afresh in the report's colours, and ``stale`` (see :func:`staleness`) as a warning over it."""
    if not (folder / SUMMARY_FILE).is_file():
        return []
    summary, difference = pd.read_csv(folder / SUMMARY_FILE), pd.read_csv(folder / DIFFERENCE_FILE)
    cells = summary.assign(value=[f"{m:.2f} ± {s:.2f}" for m, s in zip(summary["mean"], summary["std"].fillna(0))])
    table = cells.pivot(index="task", columns="model", values="value").reindex(summary["task"].unique())
    sections = [f"<h2>Over {int(summary['seeds'].max())} seeds: mean ± std (results/seeds)</h2>"]
    if stale:
        sections.append(f"<p class='stale'><b>Stale:</b> {html.escape(stale)}</p>")
    sections.append(table.to_html())
    if not difference.empty:
        gaps = _labelled(difference)
        gaps = gaps.assign(value=[f"{m:+.2f} ± {s:.2f}" for m, s in zip(gaps["mean"], gaps["std"].fillna(0))])
        sections += ["<h3>PIP minus its plain backbone and PromptIR, paired by seed</h3>",
                     gaps.pivot(index="task", columns="label", values="value").to_html()]
    names = list(summary["model"].unique())
    seed_chart(summary, difference, out_dir / CHART_FILE, colours={**method_colours(names), **(colours or {})})
    sections.append(f"<img src='{html.escape(CHART_FILE)}' style='max-width:100%'>")
    return sections
