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
        "pip_net.derain.psnr": [30.0, 31.0, 32.0], "net.derain.psnr": [29.0, 31.5, 30.0],
        "pip_net.dehaze.psnr": [20.0, 20.0, 23.0], "net.dehaze.psnr": [20.0, 21.0, 22.0],
        "input.derain.psnr": [25.0, 25.0, 25.0], "input.dehaze.psnr": [15.0, 15.0, 15.0],
        "pip_net.derain.ssim": [0.9, 0.9, 0.9], "train.lr": [0.002] * 3,
    })


def test_seed_summary_gives_mean_spread_and_paired_differences():
    summary, difference = seed_summary(_sweep_table())
    row = summary.set_index(["model", "task"]).loc[("pip_net", "derain")]
    assert (row["mean"], row["std"], row["seeds"]) == (31.0, 1.0, 3)
    assert summary.set_index(["model", "task"]).loc[("input", "dehaze"), "std"] == 0
    gaps = difference.set_index("task")
    # Paired by seed: derain differences 1.0, -0.5, 2.0; dehaze 0, -1, 1.
    assert gaps.loc["derain", "mean"] == pytest.approx(2.5 / 3) and gaps.loc["dehaze", "mean"] == 0
    assert gaps.loc["derain", "std"] == pytest.approx(pd.Series([1.0, -0.5, 2.0]).std())
    assert set(difference["model"]) == {"pip_net"} and set(difference["backbone"]) == {"net"}
    assert list(gaps.index) == ["derain", "dehaze"]  # the sweep's task order
    ssim, _ = seed_summary(_sweep_table(), "ssim")
    assert list(ssim["model"]) == ["pip_net"]
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
    from pip_model.apps.colours import method_colours

    names = ["input", "classical", "pip_net", "pip_net_blind", "net", "pip_other", "other"]
    colours = method_colours(names)
    assert len(set(colours.values())) == len(names)  # every method its own
    assert colours == method_colours(reversed(names))  # whatever the order they come in
    assert method_colours(["input", "classical"]) == {name: colours[name] for name in ("input", "classical")}
