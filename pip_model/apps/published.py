"""The published all-in-one restoration figures the paper table sets beside ours, each row with its source.

Two protocols, as the PIP paper (Li et al., arXiv 2312.05038) and its peers report them: ``3task`` (BSD68 noise at
sigma 15/25/50, Rain100L, SOTS outdoor) and ``5task`` (BSD68 sigma 25, Rain100L, SOTS, GoPro, LOL). Every row keeps
its five (PSNR, SSIM) pairs and the average it prints; the table shows the average computed from the five (as ours
is) beside the printed one, and notes a printed average that rounding cannot explain. Also here: the training
budgets the published code runs, for the line under the table that says how far a run is from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SURVEY = ("Jiang et al., A Survey on All-in-One Image Restoration, TPAMI 2025, leaderboard "
          "(github.com/Harbinzzy/All-in-One-Image-Restoration-Survey)")
PROMPTIR = "PromptIR's repository, results table (github.com/va1shn9v/PromptIR)"
INSTRUCTIR = "InstructIR's repository, results table (github.com/mv-lab/InstructIR)"
ADAIR = "AdaIR's repository, results table (github.com/c-yn/AdaIR)"
MOCEIR = "MoCE-IR's repository, results table (github.com/eduardzamfir/MoCE-IR)"

# Every figure is printed to 0.01 dB and 0.001 SSIM: the mean of five rounded figures lies within half a unit of
# the unrounded mean, and the printed average within another half unit, so up to one unit apart is rounding.
PSNR_ROUNDING = 0.01
SSIM_ROUNDING = 0.001


@dataclass(frozen=True, kw_only=True)
class PublishedRow:
    """One method's published row under one protocol.

    Attributes:
        method: the method as its table names it.
        source: where the figures were read.
        figures: (PSNR in dB, SSIM) per task of the protocol, in the protocol's order.
        printed_average: the (PSNR, SSIM) average the source prints.
    """

    method: str
    source: str
    figures: Mapping[str, tuple[float, float]]
    printed_average: tuple[float, float]

    def average(self) -> tuple[float, float]:
        """The mean of the row's PSNRs and the mean of its SSIMs (how our row's average is computed)."""
        return (float(np.mean([psnr for psnr, _ in self.figures.values()])),
                float(np.mean([ssim for _, ssim in self.figures.values()])))

    def average_note(self) -> str:
        """Empty when the printed average is the mean of the five up to rounding, else what differs."""
        (psnr, ssim), (printed_psnr, printed_ssim) = self.average(), self.printed_average
        if abs(psnr - printed_psnr) <= PSNR_ROUNDING + 1e-9 and abs(ssim - printed_ssim) <= SSIM_ROUNDING + 1e-9:
            return ""
        return (f"printed average {printed_psnr:.2f}/{printed_ssim:.3f} is not the mean of its {len(self.figures)} "
                f"figures ({psnr:.2f}/{ssim:.3f})")


@dataclass(frozen=True, kw_only=True)
class PublishedProtocol:
    """One protocol's published table.

    Attributes:
        tasks: our task names of its columns, in the published order.
        test_sets: the column headings (test set and noise level) per task.
        datasets: the test set each task is published on (the datasets folder's name for it).
        rows: the published rows.
    """

    tasks: tuple[str, ...]
    test_sets: Mapping[str, str]
    datasets: Mapping[str, str]
    rows: tuple[PublishedRow, ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if tuple(row.figures) != self.tasks:
                raise ValueError(f"published row {row.method!r}: tasks {tuple(row.figures)} are not {self.tasks}")


def _row(method: str, source: str, tasks: tuple[str, ...], cells: str, printed: tuple[float, float]
         ) -> PublishedRow:
    """A row from its cells written as the tables print them, ``"34.24/0.936 31.60/0.893 ..."``."""
    pairs = [tuple(float(value) for value in cell.split("/")) for cell in cells.split()]
    return PublishedRow(method=method, source=source, figures=dict(zip(tasks, pairs, strict=True)),
                        printed_average=printed)


TEST_SETS = {"denoise_15": "BSD68 s15", "denoise_25": "BSD68 s25", "denoise_50": "BSD68 s50",
             "derain": "Rain100L", "dehaze": "SOTS", "deblur": "GoPro", "lowlight": "LOL"}
DATASETS = {"denoise_15": "BSD68", "denoise_25": "BSD68", "denoise_50": "BSD68", "derain": "Rain100L",
            "dehaze": "SOTS", "deblur": "GoPro", "lowlight": "LOL"}
THREE = ("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")
FIVE = ("denoise_25", "derain", "dehaze", "deblur", "lowlight")

PUBLISHED: dict[str, PublishedProtocol] = {
    "3task": PublishedProtocol(tasks=THREE, test_sets=TEST_SETS, datasets=DATASETS, rows=(
        _row("PIP-Restormer", SURVEY, THREE, "34.24/0.936 31.60/0.893 28.35/0.806 38.29/0.984 32.09/0.981",
             (32.91, 0.920)),
        _row("PromptIR", PROMPTIR, THREE, "33.98/0.933 31.31/0.888 28.06/0.799 36.37/0.972 30.58/0.974",
             (32.06, 0.913)),
        _row("AirNet", PROMPTIR, THREE, "33.92/0.933 31.26/0.888 28.00/0.797 34.90/0.967 27.94/0.962",
             (31.20, 0.910)),
        _row("InstructIR-3D", INSTRUCTIR, THREE, "34.15/0.933 31.52/0.890 28.30/0.804 37.98/0.978 30.22/0.959",
             (32.43, 0.913)),
        _row("AdaIR", ADAIR, THREE, "34.12/0.935 31.45/0.892 28.19/0.802 38.64/0.983 31.06/0.980", (32.69, 0.918)),
        _row("MoCE-IR", MOCEIR, THREE, "34.11/0.932 31.45/0.888 28.18/0.800 38.57/0.984 31.34/0.979",
             (32.73, 0.917)),
    )),
    "5task": PublishedProtocol(tasks=FIVE, test_sets=TEST_SETS, datasets=DATASETS, rows=(
        _row("PIP-Restormer", SURVEY, FIVE, "30.94/0.877 38.09/0.983 32.11/0.979 28.61/0.861 24.06/0.859",
             (30.81, 0.901)),
        _row("AirNet", INSTRUCTIR, FIVE, "30.91/0.882 32.98/0.951 21.04/0.884 24.35/0.781 18.18/0.735",
             (25.49, 0.846)),
        _row("Restormer", INSTRUCTIR, FIVE, "31.49/0.884 34.81/0.962 24.09/0.927 27.22/0.829 20.41/0.806",
             (27.60, 0.881)),
        _row("NAFNet", INSTRUCTIR, FIVE, "31.02/0.883 35.56/0.967 25.23/0.939 26.53/0.808 20.49/0.809",
             (27.76, 0.881)),
        _row("InstructIR-5D", INSTRUCTIR, FIVE, "31.40/0.887 36.84/0.973 27.10/0.956 29.40/0.886 23.00/0.836",
             (29.55, 0.907)),
        _row("AdaIR", ADAIR, FIVE, "31.35/0.889 38.02/0.981 30.53/0.978 28.12/0.858 23.00/0.845", (30.20, 0.910)),
        _row("MoCE-IR", MOCEIR, FIVE, "31.34/0.887 38.04/0.982 30.48/0.974 30.05/0.899 23.00/0.852",
             (30.58, 0.919)),
    )),
}


# The published row a model of the registry is compared with, by the method's name in the tables: the released
# checkpoints of PIP-Restormer and PromptIR are these networks (pip_model.networks.reference).
PUBLISHED_METHODS = {"pip_restormer": "PIP-Restormer", "promptir": "PromptIR", "restormer": "Restormer",
                     "nafnet": "NAFNet"}


def published_row(protocol: str, model_name: str) -> PublishedRow | None:
    """The published row of a registry model under a protocol (``promptir`` -> PromptIR's), or None where the
    protocol's table has none (PromptIR under 5task)."""
    method = PUBLISHED_METHODS.get(model_name)
    return next((row for row in PUBLISHED[protocol].rows if row.method == method), None)


@dataclass(frozen=True, kw_only=True)
class PublishedBudget:
    """How many training patches a published run sees.

    Attributes:
        method: whose training.
        patches: 128-pixel training patches over the whole run.
        how: where the figure comes from.
    """

    method: str
    patches: float
    how: str


# One 3-task epoch of the published data lists: BSD400 + WED (5144 images) x 3 per noise level x 3 levels, the 199
# Rain100L training pairs x 120, the 72135 OTS pairs of hazy_outside.txt: 142311 patches of 128 px.
BUDGETS = (
    PublishedBudget(method="PIP", patches=200 * 142_311,
                    how="200 epochs x 142 k patches, src/Main_trainer.py"),
    PublishedBudget(method="PromptIR", patches=120 * 142_311,
                    how="120 epochs x 142 k patches, options.py"),
)
