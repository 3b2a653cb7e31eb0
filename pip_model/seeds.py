"""Is PIP better than its plain backbone? The same experiment over several seeds, summarised.

One seed cannot tell a 0.3 dB gain from noise. The ``seeds`` flow runs the pipeline once per
``base.seed`` (a sweep of DVC experiments); :func:`seed_summary` turns the sweep's table into
the mean and standard deviation of every model's score per task, and the per-task difference
between each PIP model and its plain backbone (``pip_X`` minus ``X``, paired by seed), with
its spread. :func:`write_seed_results` writes both tables and their bar chart with error bars
to ``results/seeds``, which the report shows.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

SUMMARY_FILE, DIFFERENCE_FILE, CHART_FILE = "summary.csv", "difference.csv", "seeds.png"
PIP_PREFIX = "pip_"


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
    """Mean and standard deviation over seeds per (model, task), and the paired PIP-minus-backbone differences.

    Args:
        table: a sweep table (``flows.sweep``), one row per experiment, with ``base.seed`` and
            ``<model>.<task>.<metric>`` columns.
        metric: ``psnr`` or ``ssim``.

    Returns:
        (summary: model, task, mean, std, seeds; difference: model, backbone, task, mean, std, seeds).
    """
    long = scores(table, metric)
    tasks = list(dict.fromkeys(long["task"]))
    grouped = long.groupby(["model", "task"], sort=False)["score"]
    summary = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    wide = long.pivot_table(index=["seed", "task"], columns="model", values="score")
    differences = []
    for model in (name for name in wide.columns if name.startswith(PIP_PREFIX)):
        backbone = model[len(PIP_PREFIX):]
        if backbone not in wide.columns:
            continue
        gap = (wide[model] - wide[backbone]).dropna().groupby(level="task")
        frame = gap.agg(["mean", "std", "count"]).reindex(tasks).dropna(how="all").reset_index()
        frame.columns = ["task", "mean", "std", "seeds"]
        differences.append(frame.assign(model=model, backbone=backbone))
    difference = (pd.concat(differences, ignore_index=True)[["model", "backbone", "task", "mean", "std", "seeds"]]
                  if differences else pd.DataFrame(columns=["model", "backbone", "task", "mean", "std", "seeds"]))
    return summary, difference


def seed_chart(summary: pd.DataFrame, difference: pd.DataFrame, path: Path, *, metric: str = "psnr",
               dpi: int = 110) -> Path:
    """Bars of every model's mean per task with one-standard-deviation error bars; beside them, PIP minus its
    backbone per task, with its spread."""
    panels = 2 if not difference.empty else 1
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 3.8), squeeze=False)
    means = summary.pivot(index="task", columns="model", values="mean").reindex(summary["task"].unique())
    spreads = summary.pivot(index="task", columns="model", values="std").reindex(means.index)
    means.plot.bar(ax=axes[0][0], yerr=spreads, capsize=2, width=0.8)
    seeds = int(summary["seeds"].max())
    unit = f"{metric.upper()} (dB)" if metric == "psnr" else metric.upper()
    axes[0][0].set(ylabel=unit, title=f"{metric.upper()} per task, mean and std over {seeds} seeds")
    axes[0][0].legend(fontsize=7, ncols=2)
    if panels == 2:
        gap = difference.pivot(index="task", columns="model", values="mean").reindex(
            [task for task in means.index if task in set(difference["task"])])
        gap_spread = difference.pivot(index="task", columns="model", values="std").reindex(gap.index)
        gap.plot.bar(ax=axes[0][1], yerr=gap_spread, capsize=3, width=0.6, color="tab:green")
        axes[0][1].axhline(0, color="black", linewidth=0.8)
        axes[0][1].set(ylabel=f"{unit} difference", title="PIP minus its plain backbone (paired by seed)")
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


def seed_section(folder: Path, out_dir: Path) -> list[str]:
    """The report's HTML for the seeds results in ``folder`` (none when the seeds flow has not run); copies the
    chart beside the page."""
    if not (folder / SUMMARY_FILE).is_file():
        return []
    summary, difference = pd.read_csv(folder / SUMMARY_FILE), pd.read_csv(folder / DIFFERENCE_FILE)
    cells = summary.assign(value=[f"{m:.2f} ± {s:.2f}" for m, s in zip(summary["mean"], summary["std"].fillna(0))])
    table = cells.pivot(index="task", columns="model", values="value").reindex(summary["task"].unique())
    sections = [f"<h2>Over {int(summary['seeds'].max())} seeds: mean ± std (results/seeds)</h2>", table.to_html()]
    if not difference.empty:
        gaps = difference.assign(value=[f"{m:+.2f} ± {s:.2f}" for m, s in zip(difference["mean"],
                                                                               difference["std"].fillna(0))])
        sections += ["<h3>PIP minus its plain backbone, paired by seed</h3>",
                     gaps.pivot(index="task", columns="model", values="value").to_html()]
    if (folder / CHART_FILE).is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CHART_FILE).write_bytes((folder / CHART_FILE).read_bytes())
        sections.append(f"<img src='{html.escape(CHART_FILE)}' style='max-width:100%'>")
    return sections
