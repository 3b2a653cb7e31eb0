"""The ``report`` stage's logic: a self-contained HTML page with PNG figures.

Contents: its provenance (commit, date, data, the settings that differ from the library
defaults), the per-task table of every model and baseline, a PSNR bar chart, the training
curves, a restored-examples grid (one row per task), the prompt-swap grid (one degraded image
restored under each of the five degradation prompts, which shows how PIP decouples the
degradation from the restoration), the sensor's section, and the seeds results, flagged when
another commit or other settings made them. Every chart gives a method the same colour.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pip_model.apps.colours import method_colours, method_order  # noqa: E402
from pip_model.apps.paper_table import paper_table, run_lines  # noqa: E402
from pip_model.apps.published import PUBLISHED  # noqa: E402
from pip_model.apps.seeds import gap_label, pip_rivals, seed_section, staleness  # noqa: E402
from pip_model.config import BaseConfig, from_mapping  # noqa: E402
from pip_model.data.corpus import PrepareConfig  # noqa: E402
from pip_model.data.images import read_degraded
from pip_model.data.pairs import DegradeConfig
from pip_model.engine.recipes import SensorConfig, TrainConfig
from pip_model.evaluation.benchmark import EvaluateConfig, split_key
from pip_model.evaluation.charts import confusion_chart, save_figure  # noqa: E402
from pip_model.evaluation.examples import read_index, read_restored  # noqa: E402
from pip_model.image_files import read_image  # noqa: E402
from pip_model.tasks import CLASSES, PAPER_CLASSES, parse_task  # noqa: E402
from pip_model.tracking.lineage import dvc_input_tags, flatten, git_commit, git_tags


@dataclass(frozen=True)
class ReportConfig:
    """``params.yaml: report``.

    Attributes:
        swap_tasks: tasks whose first test image gets a prompt-swap row.
        dpi: resolution of the figures.
    """

    swap_tasks: tuple[str, ...] = ("derain", "dehaze", "lowlight")
    dpi: int = 110
    protocol: str = ""

    def __post_init__(self) -> None:
        if self.protocol and self.protocol not in PUBLISHED:
            raise ValueError(f"report.protocol must be '' or one of {', '.join(PUBLISHED)}, got {self.protocol!r}")


def metrics_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]], name: str) -> pd.DataFrame:
    """Tasks as rows, models as columns, for one metric (``psnr`` or ``ssim``); the ``mean`` row averages the tasks on
    the paper's test sets (as ``mean_scores``), leaving a task's other test sets (``denoise_25@Urban100``) out."""
    table = pd.DataFrame({model: {task: values[name] for task, values in tasks.items()}
                          for model, tasks in metrics.items()})
    averaged = [key for key in table.index if not split_key(key)[1]] or list(table.index)
    table.loc["mean"] = table.loc[averaged].mean()
    return table


def bar_chart(psnr: pd.DataFrame, path: Path, dpi: int, colours: Mapping[str, str]) -> str:
    figure, axis = plt.subplots(figsize=(max(6, 1.3 * len(psnr)), 3.8))
    psnr.plot.bar(ax=axis, width=0.8, color=[colours[name] for name in psnr.columns])
    axis.set_ylabel("PSNR (dB)")
    axis.set_title("PSNR per task")
    axis.legend(fontsize=8, ncols=min(4, psnr.shape[1]))
    axis.tick_params(axis="x", rotation=30)
    axis.grid(axis="y", alpha=0.3)
    return save_figure(figure, path, dpi)


def rival_gaps(psnr: pd.DataFrame) -> pd.DataFrame:
    """PSNR of each PIP model minus each of its rivals (its plain backbone, PromptIR of its size) per task and on the
    mean, one column per pair (empty when no pair was evaluated)."""
    gaps = {gap_label(model, rival): psnr[model] - psnr[rival]
            for model in psnr.columns for rival in pip_rivals(model, psnr.columns)}
    return pd.DataFrame(gaps, index=psnr.index)


def rival_section(psnr: pd.DataFrame, path: Path, dpi: int, colours: Mapping[str, str]) -> list[str]:
    """The report's comparison the paper is about: the gaps of :func:`rival_gaps` as a table (with the tasks each
    pair wins) and a bar chart, each bar in the rival's colour."""
    gaps = rival_gaps(psnr)
    if gaps.empty:
        return []
    tasks = gaps.drop(index="mean")
    wins = {label: f"{int((column > 0).sum())} of {int(column.notna().sum())}" for label, column in tasks.items()}
    table = gaps.map(lambda value: f"{value:+.2f}")
    table.loc["tasks won"] = pd.Series(wins)
    rival_of = {gap_label(model, rival): rival for model in psnr.columns for rival in pip_rivals(model, psnr.columns)}
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(tasks)), 3.4))
    tasks.plot.bar(ax=axis, width=0.7, color=[colours.get(rival_of[label], "#555555") for label in tasks.columns])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set(ylabel="PSNR difference (dB)", title="PIP minus its plain backbone and minus PromptIR, per task")
    axis.legend(fontsize=8)
    axis.tick_params(axis="x", rotation=30)
    axis.grid(axis="y", alpha=0.3)
    chart = save_figure(figure, path, dpi)
    return ["<h2>PIP against its rivals: PSNR difference (dB), above 0 where PIP wins</h2>", table.to_html(),
            f"<img src='{chart}' style='max-width:100%'>"]


LOSS_LABELS = {
    "psnr": "loss: mean log10(MSE) per image\n(= -PSNR / 10 dB, so negative; lower is better)",
    "l1": "loss: mean absolute error (L1)", "smooth_l1": "loss: smooth L1 (Huber, beta 1)",
}


def curve_chart(curves: Mapping[str, pd.DataFrame], path: Path, dpi: int, colours: Mapping[str, str],
                loss: str = "") -> str:
    """Loss and training PSNR against the step, one line per model in its colour; the loss axis says which loss
    it is (``loss``: ``train.loss``)."""
    figure, (loss_axis, psnr_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, curve in curves.items():
        smooth = curve.rolling(10, min_periods=1).mean()
        loss_axis.plot(curve["step"], smooth["loss"], label=name, color=colours.get(name))
        psnr_axis.plot(curve["step"], smooth["psnr"], label=name, color=colours.get(name))
    # The PSNR loss (log10 MSE) is negative; only an all-positive loss gets a log axis.
    positive = all((curve["loss"] > 0).all() for curve in curves.values())
    loss_axis.set(xlabel="step", ylabel=LOSS_LABELS.get(loss, "training loss"),
                  yscale="log" if positive else "linear", title="Loss (10-step mean)")
    psnr_axis.set(xlabel="step", ylabel="training PSNR (dB)", title="Training PSNR (10-step mean)")
    psnr_axis.legend(fontsize=8)
    return save_figure(figure, path, dpi)


def image_grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], path: Path, dpi: int) -> str:
    """A grid of images with a title over each column and a label beside each row."""
    columns = max(len(cells) for _, cells in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(2.1 * columns, 2.2 * len(rows)), squeeze=False)
    for r, (label, cells) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.axis("off")
            if c < len(cells):
                title, image = cells[c]
                axis.imshow(np.clip(image, 0, 1))
                axis.set_title(title, fontsize=8)
        axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right",
                        fontsize=9)
    return save_figure(figure, path, dpi)


def _pair_images(benchmark_dir: Path, row: Any) -> tuple[np.ndarray, np.ndarray]:
    return read_degraded(benchmark_dir / row.degraded_path), read_image(benchmark_dir / row.clean_path).rgb


def examples_grid(benchmark_dir: Path, examples_dir: Path, path: Path, dpi: int) -> str | None:
    """Per task, its first kept pair (``evaluate``'s examples, :mod:`pip_model.evaluation.examples`): degraded |
    each model, in the report's order | classical | clean, with PSNR in the titles; None without examples."""
    index = read_index(examples_dir)
    index = index[~index["model"].str.contains("@")]
    rows = []
    for task, kept in index.groupby("task", sort=False):
        pair = kept[kept["id"] == kept.iloc[0]["id"]].set_index("model")
        degraded, clean = _pair_images(benchmark_dir, pair.iloc[0])
        first = f"degraded {pair.loc['input', 'psnr']:.1f}" if "input" in pair.index else "degraded"
        cells = [(first, degraded)]
        for name in [*method_order(set(pair.index) - {"input", "classical"}), *({"classical"} & set(pair.index))]:
            cells.append((f"{name} {pair.loc[name, 'psnr']:.1f}", read_restored(examples_dir, pair.loc[name])))
        rows.append((task, cells + [("clean", clean)]))
    return image_grid(rows, path, dpi) if rows else None


def prompt_swap_grid(benchmark_dir: Path, examples_dir: Path, tasks: Sequence[str], path: Path, dpi: int
                     ) -> str | None:
    """One degraded image per task, restored by the first PIP model under each degradation prompt in turn (the
    prompt swaps ``evaluate`` kept); None without them."""
    index = read_index(examples_dir)
    swaps = index[index["model"].str.contains("@")]
    rows = []
    for task in tasks:
        kept = swaps[swaps["task"] == task]
        if kept.empty:
            continue
        pair = kept[kept["id"] == kept.iloc[0]["id"]]
        by_prompt = {model.split("@", 1)[1]: row for model, row in zip(pair["model"], pair.itertuples())}
        degraded, clean = _pair_images(benchmark_dir, pair.iloc[0])
        cells = [("degraded", degraded)]
        for name in CLASSES:
            if name in by_prompt:
                marker = " (true)" if name in parse_task(task).classes else ""
                cells.append((f"{name} prompt{marker} {by_prompt[name].psnr:.1f}",
                              read_restored(examples_dir, by_prompt[name])))
        rows.append((task, cells + [("clean", clean)]))
    return image_grid(rows, path, dpi) if rows else None


def prompt_cost_table(prompts: Mapping[str, Mapping[str, Mapping[str, float]]], metrics: Mapping[str, Any]
                      ) -> pd.DataFrame:
    """PSNR of each single task under every fixed prompt (from ``evaluate``'s prompts.json), the true prompt's cell
    marked ``*``, and the sensor's prompt (the blind row) beside them; cells are text, two decimals."""
    model = next(iter(prompts)).split("@")[0]
    rows = {}
    for task in next(iter(prompts.values())):  # a task, or a task on another test set (derain@Rain100H)
        if parse_task(split_key(task)[0]).is_composite:
            continue
        row = {}
        for contender, per_task in prompts.items():
            prompt_name = contender.split("@", 1)[1]
            true = prompt_name in parse_task(split_key(task)[0]).classes
            row[prompt_name] = f"{per_task[task]['psnr']:.2f}{' *' if true else ''}"
        if task in metrics.get(f"{model}_blind", {}):
            row["sensor"] = f"{metrics[f'{model}_blind'][task]['psnr']:.2f}"
        rows[task] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def composite_table(metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
                    prompts: Mapping[str, Mapping[str, Mapping[str, float]]]) -> pd.DataFrame:
    """PSNR per composite task: the input, the classical restorers chained, the first PIP model under each single
    true prompt and the best of them, under the true mixture and under the sensor's, and whether the sensor's
    beats both the input and the best single prompt."""
    model = next(iter(prompts)).split("@")[0]
    rows = {}
    for task in (task for task in next(iter(metrics.values())) if parse_task(split_key(task)[0]).is_composite):
        singles = {name: prompts[f"{model}@{name}"][task]["psnr"] for name in parse_task(split_key(task)[0]).classes
                   if task in prompts.get(f"{model}@{name}", {})}
        if task not in metrics.get(model, {}) or not singles:  # a class the model has no prompt for
            continue
        row: dict[str, Any] = {"input": metrics["input"][task]["psnr"]}
        if "classical" in metrics:
            row["classical chained"] = metrics["classical"][task]["psnr"]
        row["single prompts"] = ", ".join(f"{name} {value:.2f}" for name, value in singles.items())
        row["best single"] = max(singles.values())
        row["true mixture"] = metrics[model][task]["psnr"]
        if f"{model}_blind" in metrics:
            row["sensor mixture"] = sensor = metrics[f"{model}_blind"][task]["psnr"]
            row["sensor beats input and best single"] = "yes" if sensor > max(row["input"], *singles.values()) else "no"
        rows[task] = row
    return pd.DataFrame.from_dict(rows, orient="index")


SECTION_CONFIGS = {"base": BaseConfig, "prepare": PrepareConfig, "degrade": DegradeConfig, "train": TrainConfig,
                   "sensor": SensorConfig, "evaluate": EvaluateConfig, "report": ReportConfig}


def changed_settings(params: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, value here, library default) for every setting of the pipeline's sections that differs from
    the default its config class gives it."""
    rows = []
    for section, config in SECTION_CONFIGS.items():
        default = flatten(dataclasses.asdict(from_mapping(config, None, section)), f"{section}.")
        here = flatten(dataclasses.asdict(from_mapping(config, params.get(section), section)), f"{section}.")
        rows += [(key, value, default.get(key, "")) for key, value in here.items() if default.get(key) != value]
    return rows


def provenance_header(root: Path, params: Mapping[str, Any], benchmark_dir: Path) -> str:
    """The page's first lines: the commit (and whether its source had uncommitted changes), the date, the data,
    and the settings that differ from the library defaults."""
    tags = git_tags(root)
    commit = tags.get("git.commit", "")
    state = (f"with uncommitted changes to {html.escape(tags.get('git.dirty_files', ''))}"
             if tags.get("git.dirty") == "True" else "source as committed")
    prepare = params.get("prepare") or {}
    source = prepare.get("source") or "scikit-image's bundled photographs"
    datasets = prepare.get("datasets_root") or "none"
    manifest = pd.read_csv(benchmark_dir / "manifest.csv")
    digest = dvc_input_tags(root, [str(benchmark_dir)]).get(f"dvc.{benchmark_dir}.md5", "not in dvc.lock")
    changed = changed_settings(params)
    rows = "".join(f"<tr><td style='text-align:left'>{html.escape(key)}</td><td>{html.escape(value)}</td>"
                   f"<td>{html.escape(default)}</td></tr>" for key, value, default in changed)
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<div class='provenance'>"
        f"<p><b>Commit</b> <code>{html.escape(commit[:12] or 'not a git repository')}</code> ({state}) · "
        f"<b>made</b> {made}<br><b>Data</b>: clean images from {html.escape(source)}; datasets folder "
        f"{html.escape(datasets)}; benchmark <code>{html.escape(str(benchmark_dir))}</code> "
        f"({len(manifest)} pairs, {manifest['task'].nunique()} tasks, DVC hash <code>{html.escape(digest)}</code>)"
        "</p><details><summary>Settings that differ from the library defaults "
        f"({len(changed)})</summary><table><tr><th>setting</th><th>here</th><th>default</th></tr>"
        f"{rows}</table></details></div>")


def sensor_section(headline_path: Path, out_dir: Path, dpi: int) -> list[str]:
    """The sensor's part of the page (from ``score_sensor``'s files): its headline figures, accuracy per class
    and per composite, the confusion matrix, and what it decided on every image."""
    detail_path = headline_path.with_name(f"{headline_path.stem}_detail.json")
    decisions_path = headline_path.with_name(f"{headline_path.stem}_decisions.csv")
    if not (headline_path.is_file() and detail_path.is_file()):
        return []
    headline, detail = json.loads(headline_path.read_text()), json.loads(detail_path.read_text())
    names = {"accuracy": "single tasks: top class right", "composites": "composites: exactly their classes found",
             "clean_kept": "clean crops left alone (nothing to restore)"}
    figures = "".join(f"<tr><td style='text-align:left'>{html.escape(names.get(key, key))}</td>"
                      f"<td>{value:.0%}</td></tr>" for key, value in headline.items())
    shares = {**{name: value for name, value in detail["per_class"].items() if value is not None},
              **detail["composites"]}
    per_class = "".join(f"<tr><td style='text-align:left'>{html.escape(name)}</td><td>{value:.0%}</td></tr>"
                        for name, value in shares.items())
    chart = confusion_chart(np.array(detail["confusion"]), detail.get("classes", PAPER_CLASSES),
                            out_dir / "sensor_confusion.png", dpi)
    sections = [
        "<h2>The degradation sensor (the blind rows' prompts)</h2>",
        "<p>It scores each class on its own. Classes scoring at least 0.6 are found and share the prompt; with "
        "every score under 0.3 it finds nothing and the image is left as it is.</p>",
        f"<table>{figures}</table><h3>Per class and composite</h3><table>{per_class}</table>",
        f"<img src='{chart}' style='max-width:420px'>",
    ]
    if decisions_path.is_file():
        decisions = pd.read_csv(decisions_path).fillna("")
        sections += ["<details><summary>What it decided on each image "
                     f"({len(decisions)}: the benchmark's pairs, then each clean crop once)</summary>",
                     decisions.round(2).to_html(index=False), "</details>"]
    return sections


def paper_section(metrics: Mapping[str, Mapping[str, Mapping[str, float]]], protocol: str, *,
                  params: Mapping[str, Any], benchmark_dir: Path, prepared_dir: Path | None, out_dir: Path,
                  parameters: Mapping[str, int] | None = None) -> list[str]:
    """The paper's table (every published row with its source, ours beside them) and the lines under it saying
    what this run is; writes them as ``paper_table.csv`` and ``paper_table_notes.txt`` under ``out_dir``."""
    paper = paper_table(metrics, protocol, parameters)
    lines = run_lines(params, benchmark_dir, prepared_dir, protocol)
    out_dir.mkdir(parents=True, exist_ok=True)
    paper.to_csv(out_dir / "paper_table.csv")
    (out_dir / "paper_table_notes.txt").write_text("\n".join(lines) + "\n")
    under = "".join(f"<p class='run'>{html.escape(line)}</p>" for line in lines)
    return [f"<h2>The paper's {html.escape(protocol)} table (PSNR/SSIM)</h2>",
            "<p>Published rows from their sources; averages are the mean of each row's PSNRs and of its SSIMs, the "
            "printed average beside them.</p>", paper.to_html(), under]


def storage_section(parameters: Mapping[str, int], psnr: pd.DataFrame) -> list[str]:
    """Each model's parameters beside its mean PSNR; the task experts' row sums theirs: the storage one all-in-one
    model saves over a set of task-specific ones (the paper's first argument)."""
    rows = {name: {"parameters (M)": round(count / 1e6, 3),
                   "mean PSNR (dB)": round(float(psnr.loc["mean", name]), 2) if name in psnr.columns else None}
            for name, count in ((name, parameters[name]) for name in method_order(parameters))}
    return ["<h2>Parameters (storage)</h2>", "<p>The experts' row counts every task expert's parameters.</p>",
            pd.DataFrame.from_dict(rows, orient="index").to_html()]


def write_report(
    *, metrics_path: Path, curves: Mapping[str, pd.DataFrame], benchmark_dir: Path, examples_dir: Path,
    config: ReportConfig, out_dir: Path, seeds_dir: Path | None = None, prompts_path: Path | None = None,
    sensor_path: Path | None = None, params: Mapping[str, Any] | None = None, root: Path | None = None,
    prepared_dir: Path | None = None, parameters_path: Path | None = None,
) -> Path:
    """Writes ``index.html`` and its PNG figures under ``out_dir``; returns the page's path.

    The example grids are drawn from what ``evaluate`` kept under ``examples_dir``: no network runs here.
    With ``params`` (all of params.yaml) and ``root`` (the repository), the page opens with its provenance
    (:func:`provenance_header`) and flags a seeds section computed at another commit or with other settings.
    With ``seeds_dir`` holding the ``seeds`` flow's results, the page shows them too; with ``prompts_path``
    (``evaluate``'s prompts.json), the cost of wrong and blended prompts and the composite tasks' comparison;
    with ``sensor_path`` (``score_sensor``'s headline JSON), the sensor's section. With ``config.protocol``, the
    paper's table (:func:`paper_section`); ``prepared_dir`` (``prepare``'s output) tells its training data.
    """
    params = params or {}
    metrics = json.loads(metrics_path.read_text())
    parameters = (json.loads(parameters_path.read_text()) if parameters_path is not None and parameters_path.is_file()
                  else None)
    prompts = json.loads(prompts_path.read_text()) if prompts_path is not None and prompts_path.is_file() else {}
    psnr, ssim = metrics_table(metrics, "psnr"), metrics_table(metrics, "ssim")
    colours = method_colours([*metrics, *curves])
    figures = [("PSNR per task", bar_chart(psnr.drop(index="mean"), out_dir / "psnr_by_task.png", config.dpi,
                                           colours))]
    if curves:
        loss = str((params.get("train") or {}).get("loss", ""))
        figures.append(("Training curves", curve_chart(curves, out_dir / "training_curves.png", config.dpi, colours,
                                                       loss)))
    grids = [("Restored examples (PSNR in dB)", examples_grid(benchmark_dir, examples_dir, out_dir / "examples.png",
                                                              config.dpi)),
             ("Prompt swap: one image under each degradation prompt",
              prompt_swap_grid(benchmark_dir, examples_dir, config.swap_tasks, out_dir / "prompt_swap.png",
                               config.dpi))]
    figures += [(title, name) for title, name in grids if name is not None]
    best = psnr.drop(index="mean").idxmax(axis=1)
    sections = [provenance_header(root, params, benchmark_dir)] if root is not None else []
    if config.protocol:
        sections += paper_section(metrics, config.protocol, params=params, benchmark_dir=benchmark_dir,
                                  prepared_dir=prepared_dir, out_dir=out_dir, parameters=parameters)
    sections += [
        "<h2>PSNR (dB)</h2>", psnr.round(2).to_html(), "<h2>SSIM</h2>", ssim.round(4).to_html(),
        "<p>Best PSNR per task: " + ", ".join(f"{html.escape(t)}: <b>{html.escape(m)}</b>" for t, m in best.items())
        + "</p>",
    ]
    sections += rival_section(psnr, out_dir / "rivals.png", config.dpi, colours)
    if parameters is not None:
        sections += storage_section(parameters, psnr)
    sections += [f"<h2>{html.escape(title)}</h2><img src='{name}' style='max-width:100%'>" for title, name in figures]
    if prompts:
        model = html.escape(next(iter(prompts)).split("@")[0])
        sections += [f"<h2>What a wrong or blended prompt costs: {model}, PSNR (dB) per fixed prompt</h2>",
                     "<p>* the true prompt; uniform: every class at 0.2; sensor: the blind row.</p>",
                     prompt_cost_table(prompts, metrics).to_html()]
        composites = composite_table(metrics, prompts)
        if not composites.empty:
            sections += [f"<h2>Composite degradations: {model}, PSNR (dB)</h2>", composites.round(2).to_html()]
    if sensor_path is not None:
        sections += sensor_section(sensor_path, out_dir, config.dpi)
    if seeds_dir is not None:
        stale = staleness(seeds_dir, commit=git_commit(root), params=params) if root is not None else None
        sections += seed_section(seeds_dir, out_dir, colours=colours, stale=stale)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>PIP report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px} table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            ".provenance{background:#f4f6f8;border:1px solid #d0d7de;padding:4px 12px;margin-bottom:1em}"
            ".stale{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px} .run{margin:3px 0;font-size:0.92em}"
            "</style></head><body>"
            "<h1>PIP universal restoration: report</h1>" + "\n".join(sections) + "</body></html>")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.html").write_text(page)
    (out_dir / "metrics_psnr.csv").write_text(psnr.to_csv())
    return out_dir / "index.html"
