"""The seeds experiment's summary: mean and spread per model and task, PIP minus its backbone paired by seed."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from pip_model.apps.seeds import seed_section, seed_summary, write_seed_results


def _sweep_table() -> pd.DataFrame:
    """What `flows.sweep` gathers from `dvc exp show`: one row per experiment (seed)."""
    return pd.DataFrame({
        "Experiment": ["sweep-1-0", "sweep-1-1", "sweep-1-2"],
        "base.seed": [0, 1, 2],
        "pip_nafnet_tiny.derain.psnr": [30.0, 31.0, 32.0], "nafnet_tiny.derain.psnr": [29.0, 31.5, 30.0],
        "pip_nafnet_tiny.dehaze.psnr": [20.0, 20.0, 23.0], "nafnet_tiny.dehaze.psnr": [20.0, 21.0, 22.0],
        "input.derain.psnr": [25.0, 25.0, 25.0], "input.dehaze.psnr": [15.0, 15.0, 15.0],
        "pip_nafnet_tiny.derain.ssim": [0.9, 0.9, 0.9], "train.lr": [0.002] * 3,
    })


def test_seed_summary_gives_mean_spread_and_paired_differences():
    summary, difference = seed_summary(_sweep_table())
    row = summary.set_index(["model", "task"]).loc[("pip_nafnet_tiny", "derain")]
    assert (row["mean"], row["std"], row["seeds"]) == (31.0, 1.0, 3)
    assert summary.set_index(["model", "task"]).loc[("input", "dehaze"), "std"] == 0
    gaps = difference.set_index("task")
    # Paired by seed: derain differences 1.0, -0.5, 2.0; dehaze 0, -1, 1.
    assert gaps.loc["derain", "mean"] == pytest.approx(2.5 / 3) and gaps.loc["dehaze", "mean"] == 0
    assert gaps.loc["derain", "std"] == pytest.approx(pd.Series([1.0, -0.5, 2.0]).std())
    assert set(difference["model"]) == {"pip_nafnet_tiny"} and set(difference["rival"]) == {"nafnet_tiny"}
    assert list(gaps.index) == ["derain", "dehaze"]  # the sweep's task order
    ssim, _ = seed_summary(_sweep_table(), "ssim")
    assert list(ssim["model"]) == ["pip_nafnet_tiny"]
    with pytest.raises(ValueError, match="no <model>.<task>.psnr columns"):
        seed_summary(_sweep_table()[["Experiment", "base.seed"]])


def test_seed_results_are_written_and_shown_in_the_report(tmp_path):
    assert seed_section(tmp_path / "seeds", tmp_path / "report") == []  # before the flow has run: no section
    write_seed_results(_sweep_table(), tmp_path / "seeds")
    chart = Image.open(tmp_path / "seeds" / "seeds.png")
    assert chart.size[0] > 1000  # two panels: the scores and the differences
    html = "\n".join(seed_section(tmp_path / "seeds", tmp_path / "report"))
    assert "Over 3 seeds" in html and "31.00 ± 1.00" in html and "+0.83 ± 1.26" in html
    assert "<img src='seeds.png'" in html and (tmp_path / "report" / "seeds.png").is_file()


def test_seeds_results_say_when_another_commit_or_other_settings_made_them(tmp_path):
    from pip_model.apps.seeds import staleness, write_provenance

    params = {"base": {"seed": 0}, "train": {"lr": 0.002, "steps": 1000}, "tracking": {"uri": ""}}
    folder = tmp_path / "seeds"
    write_seed_results(_sweep_table(), folder)
    assert "carry no record of the commit and settings" in staleness(folder, commit="a" * 40, params=params)
    write_provenance(folder, commit="a" * 40, params=params, seeds=[0, 1, 2])
    assert staleness(folder, commit="a" * 40, params=params) is None
    # The seed and the tracking settings change no result: still current.
    assert staleness(folder, commit="a" * 40, params={**params, "base": {"seed": 5}, "tracking": {"uri": "x"}}) is None
    moved = staleness(folder, commit="b" * 40, params={**params, "train": {"lr": 0.001, "steps": 1000}})
    assert "at commit aaaaaaaaaa" in moved and "not this report's bbbbbbbbbb" in moved and "(train.lr)" in moved
    html = "\n".join(seed_section(folder, tmp_path / "report", stale=moved))
    assert "<b>Stale:</b> Computed at commit aaaaaaaaaa" in html


def test_a_method_keeps_its_colour_in_every_chart():
    from pip_model.apps.colours import method_colours, method_order

    names = ["input", "classical", "pip_restormer_tiny", "pip_restormer_tiny_blind", "restormer_tiny", "pip_nafnet",
             "nafnet", "promptir_tiny", "promptir", "pip_restormer", "experts"]
    colours = method_colours(names)
    assert len(set(colours.values())) == len(names)  # every method its own
    assert colours == method_colours(reversed(names))  # whatever the order they come in
    assert method_colours(["input", "classical"]) == {name: colours[name] for name in ("input", "classical")}
    assert method_colours(["pip_restormer_tiny_blind", "pip_restormer_tiny"]) == {  # its spec's, and lighter
        "pip_restormer_tiny": "#1f77b4", "pip_restormer_tiny_blind": "#8fbbd9"}
    # The order comes from the specs' roles: baselines, PIP (each before its blind twin), peers, plain, experts.
    assert method_order(reversed(names)) == [
        "input", "classical", "pip_nafnet", "pip_restormer", "pip_restormer_tiny", "pip_restormer_tiny_blind",
        "promptir", "promptir_tiny", "nafnet", "restormer_tiny", "experts"]


def test_pip_is_measured_against_its_backbone_and_promptir_of_its_size(tmp_path):
    from pip_model.apps.report import rival_gaps, rival_section
    from pip_model.apps.seeds import pip_rivals

    names = ["pip_restormer_tiny", "restormer_tiny", "promptir_tiny", "promptir", "pip_restormer_tiny_blind", "input"]
    assert pip_rivals("pip_restormer_tiny", names) == ["restormer_tiny", "promptir_tiny"]
    assert pip_rivals("pip_restormer", names) == ["promptir"] and pip_rivals("promptir_tiny", names) == []
    assert pip_rivals("pip_restormer_tiny_blind", names) == []
    table = pd.DataFrame({"base.seed": [0, 1], "pip_restormer_tiny.derain.psnr": [30.0, 32.0],
                          "restormer_tiny.derain.psnr": [29.0, 30.0], "promptir_tiny.derain.psnr": [31.0, 31.0]})
    _, difference = seed_summary(table)
    gaps = difference.set_index("rival")
    assert gaps.loc["restormer_tiny", "mean"] == 1.5 and gaps.loc["promptir_tiny", "mean"] == 0
    assert gaps.loc["promptir_tiny", "std"] == pytest.approx(2 ** 0.5)  # -1 then +1
    write_seed_results(table, tmp_path / "seeds")
    html = "\n".join(seed_section(tmp_path / "seeds", tmp_path / "report"))
    assert "pip_restormer_tiny − promptir_tiny" in html and "+0.00 ± 1.41" in html
    # A difference.csv written before PromptIR (its rival column was `backbone`) is still shown.
    old = pd.read_csv(tmp_path / "seeds" / "difference.csv").rename(columns={"rival": "backbone"})
    old.to_csv(tmp_path / "seeds" / "difference.csv", index=False)
    assert "pip_restormer_tiny − restormer_tiny" in "\n".join(seed_section(tmp_path / "seeds", tmp_path / "report"))

    psnr = pd.DataFrame({"input": [20.0, 10.0], "pip_restormer_tiny": [25.0, 12.0], "restormer_tiny": [24.0, 13.0],
                         "promptir_tiny": [26.0, 11.0]}, index=["derain", "dehaze"])
    psnr.loc["mean"] = psnr.mean()
    gap = rival_gaps(psnr)
    assert list(gap.columns) == ["pip_restormer_tiny − restormer_tiny", "pip_restormer_tiny − promptir_tiny"]
    assert gap.loc["derain", "pip_restormer_tiny − promptir_tiny"] == -1 and gap.loc["mean"].tolist() == [0, 0]
    from pip_model.apps.colours import method_colours

    section = "\n".join(rival_section(psnr, tmp_path / "rivals.png", 80, method_colours(psnr.columns)))
    assert "1 of 2" in section and "-1.00" in section and (tmp_path / "rivals.png").is_file()
    assert rival_section(psnr[["input", "promptir_tiny"]], tmp_path / "none.png", 80, {}) == []
