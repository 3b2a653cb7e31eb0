"""The published all-in-one restoration figures the paper table sets beside ours, each row with its source.

Three protocols: ``3task`` (BSD68 noise at sigma 15/25/50, Rain100L, SOTS outdoor) and ``5task`` (BSD68 sigma 25,
Rain100L, SOTS, GoPro, LOL), as the PIP paper (Li et al., arXiv 2312.05038) and its peers report them, and ``cdd11``
(OneRestore's CDD-11: low light, haze, rain, snow and seven of their combinations, Guo et al., ECCV 2024). Every row
keeps its (PSNR, SSIM) pairs and the average it prints; the table shows the average computed from the pairs (as ours
is) beside the printed one, and notes a printed average that rounding cannot explain. A row whose source prints only
its average (a CDD-11 row of a later paper) keeps that alone. Also here: the training budgets the published code
runs, for the line under the table that says how far a run is from them.
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
ONERESTORE = ("OneRestore's repository, img_file/metrics_CDD-11_psnr_ssim.xlsx (per subset; the averages its README "
              "prints) (github.com/gy65896/OneRestore)")
MOCEIR_CDD11 = "Zamfir et al., MoCE-IR, CVPR 2025, CDD-11 table (average only)"
MIRAGE_CDD11 = "MIRAGE's paper, CDD-11 table (average only)"
BIOIR_CDD11 = "BioIR's repository, Single_Composite/CDD.xlsx: the mean of its 11 subsets (average only)"
DCPT_CDD11 = "DCPT's paper, CDD-11 table, DCPT-NAFNet (average only)"

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
        figures: (PSNR in dB, SSIM) per task of the protocol, in the protocol's order; empty for a row whose source
            prints only its average.
        printed_average: the (PSNR, SSIM) average the source prints (SSIM None where it prints none).
    """

    method: str
    source: str
    figures: Mapping[str, tuple[float, float]]
    printed_average: tuple[float, float | None]

    def average(self) -> tuple[float, float] | None:
        """The mean of the row's PSNRs and the mean of its SSIMs (how our row's average is computed); None for an
        average-only row."""
        if not self.figures:
            return None
        return (float(np.mean([psnr for psnr, _ in self.figures.values()])),
                float(np.mean([ssim for _, ssim in self.figures.values()])))

    def average_note(self) -> str:
        """Empty when the printed average is the mean of the figures up to rounding, else what differs (or that the
        source prints the average alone)."""
        average = self.average()
        if average is None:
            return "its source prints the average alone, no figure per test set"
        (psnr, ssim), (printed_psnr, printed_ssim) = average, self.printed_average
        if abs(psnr - printed_psnr) <= PSNR_ROUNDING + 1e-9 and (
                printed_ssim is None or abs(ssim - printed_ssim) <= SSIM_ROUNDING + 1e-9):
            return ""
        printed = f"{printed_psnr:.2f}/" + ("-" if printed_ssim is None else f"{printed_ssim:.3f}")
        return f"printed average {printed} is not the mean of its {len(self.figures)} figures ({psnr:.2f}/{ssim:.3f})"


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


@dataclass(frozen=True, kw_only=True)
class PublishedProtocol:
    """One protocol's published table.

    Attributes:
        tasks: our task names of its columns, in the published order.
        test_sets: the column headings (test set and noise level) per task.
        datasets: the test set each task is published on (the datasets folder's name for it).
        rows: the published rows.
        keyed_by_test_set: each column reads the metrics key ``<task>@<test set>`` (``lowlight@CDD-11 low``), as
            ``evaluate`` keys a test set outside the 3-/5-task tables; else the task's own key.
        ssim_digits: the SSIM digits its tables print (and ours, beside them).
        budgets: the published training runs of its tasks, for the line on this run's budget.
        scoring: how the published figures were scored, for a line under the table ("" for none).
    """

    tasks: tuple[str, ...]
    test_sets: Mapping[str, str]
    datasets: Mapping[str, str]
    rows: tuple[PublishedRow, ...]
    keyed_by_test_set: bool = False
    ssim_digits: int = 3
    budgets: tuple[PublishedBudget, ...] = ()
    scoring: str = ""

    def __post_init__(self) -> None:
        for row in self.rows:
            if row.figures and tuple(row.figures) != self.tasks:
                raise ValueError(f"published row {row.method!r}: tasks {tuple(row.figures)} are not {self.tasks}")

    def key(self, task: str) -> str:
        """The metrics key of ``evaluate``'s results that a column of ``task`` shows."""
        return f"{task}@{self.datasets[task]}" if self.keyed_by_test_set else task


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

# One 3-task epoch of the published data lists: BSD400 + WED (5144 images) x 3 per noise level x 3 levels, the 199
# Rain100L training pairs x 120, the 72135 OTS pairs of hazy_outside.txt: 142311 patches of 128 px.
BUDGETS = (
    PublishedBudget(method="PIP", patches=200 * 142_311,
                    how="200 epochs x 142 k patches, src/Main_trainer.py"),
    PublishedBudget(method="PromptIR", patches=120 * 142_311,
                    how="120 epochs x 142 k patches, options.py"),
    PublishedBudget(method="AdaIR", patches=150 * 142_311,
                    how="150 epochs x 142 k patches, options.py"),
    PublishedBudget(method="MoCE-IR", patches=120 * 142_311,
                    how="120 epochs x 142 k patches, src/options.py"),
)

# CDD-11 (OneRestore, ECCV 2024): its subsets in the published column order (L, H, R, S, L+H, L+R, L+S, H+R, H+S,
# L+H+R, L+H+S), each our task of its degradations in the order they are applied, scored in its own test set.
CDD11_SUBSETS = {"lowlight": "low", "dehaze": "haze", "derain": "rain", "desnow": "snow", "lowlight_dehaze": "low_haze",
                 "lowlight_derain": "low_rain", "lowlight_desnow": "low_snow", "derain_dehaze": "haze_rain",
                 "desnow_dehaze": "haze_snow", "lowlight_derain_dehaze": "low_haze_rain",
                 "lowlight_desnow_dehaze": "low_haze_snow"}
CDD11 = tuple(CDD11_SUBSETS)
CDD11_HEADINGS = {task: "+".join(part[0].upper() for part in subset.split("_"))
                  for task, subset in CDD11_SUBSETS.items()}
CDD11_SETS = {task: f"CDD-11 {subset}" for task, subset in CDD11_SUBSETS.items()}
# MoCE-IR's CDD-11 run (src/train.py, src/data/dataset_utils.py CDD11): 120 epochs, each 2 x the degraded training
# images (13,013: 1,183 scenes x 11 subsets, the size OneRestore's paper gives; not readable here).
CDD11_BUDGETS = (PublishedBudget(method="MoCE-IR", patches=120 * 2 * 13_013,
                                 how="120 epochs x 2 x 13,013 training images, src/train.py and CDD11 loader"),)
CDD11_SCORING = ("Published figures: OneRestore's cal_psnr_ssim.py on the restored images saved as 8-bit PNG and read "
                 "back: scikit-image PSNR (data_range 1) and SSIM (7x7 uniform window, mean over RGB), per image, "
                 "then the mean per subset; the average rows of MoCE-IR, MIRAGE, BioIR and DCPT come from their own "
                 "test code.")


def _cdd11_row(method: str, cells: str, printed: tuple[float, float]) -> PublishedRow:
    return _row(method, ONERESTORE, CDD11, cells, printed)


def _average_only(method: str, source: str, psnr: float) -> PublishedRow:
    return PublishedRow(method=method, source=source, figures={}, printed_average=(psnr, None))


PUBLISHED: dict[str, PublishedProtocol] = {
    "3task": PublishedProtocol(tasks=THREE, test_sets=TEST_SETS, datasets=DATASETS, budgets=BUDGETS, rows=(
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
    "5task": PublishedProtocol(tasks=FIVE, test_sets=TEST_SETS, datasets=DATASETS, budgets=BUDGETS, rows=(
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
    "cdd11": PublishedProtocol(
        tasks=CDD11, test_sets=CDD11_HEADINGS, datasets=CDD11_SETS, keyed_by_test_set=True, ssim_digits=4,
        budgets=CDD11_BUDGETS, scoring=CDD11_SCORING, rows=(
            _cdd11_row("Input", "12.00/0.3685 15.87/0.8082 22.02/0.7923 23.62/0.8791 14.94/0.5306 14.61/0.4157 "
                                "13.50/0.3830 14.78/0.7144 14.79/0.7391 15.25/0.4834 14.63/0.4949", (16.00, 0.6008)),
            _cdd11_row("MIRNet", "25.89/0.8056 26.51/0.9639 31.72/0.9411 31.77/0.9571 24.09/0.7898 24.66/0.7639 "
                                 "24.29/0.7561 24.97/0.9170 24.98/0.9243 23.43/0.7523 23.33/0.7503", (25.97, 0.8474)),
            _cdd11_row("MPRNet", "26.34/0.8150 24.36/0.9624 31.81/0.9530 31.60/0.9623 23.80/0.7986 24.48/0.7740 "
                                 "24.72/0.7707 23.43/0.9205 23.88/0.9307 22.81/0.7619 22.92/0.7615", (25.47, 0.8555)),
            _cdd11_row("MIRNetv2", "26.09/0.7987 25.30/0.9615 31.25/0.9312 31.19/0.9511 23.35/0.7667 24.75/0.7587 "
                                   "24.33/0.7451 24.27/0.9017 23.83/0.9153 22.43/0.7182 22.27/0.7202",
                       (25.37, 0.8335)),
            _cdd11_row("Restormer", "26.29/0.8165 28.35/0.9813 33.10/0.9576 33.43/0.9675 24.80/0.8034 25.28/0.7864 "
                                    "24.99/0.7746 26.80/0.9431 26.15/0.9475 23.90/0.7693 23.82/0.7638",
                       (26.99, 0.8646)),
            _cdd11_row("DGUNet", "26.03/0.8030 29.06/0.9736 32.06/0.9474 32.10/0.9579 24.74/0.8005 25.17/0.7720 "
                                 "24.83/0.7627 27.32/0.9336 26.92/0.9387 24.19/0.7653 23.72/0.7600", (26.92, 0.8559)),
            _cdd11_row("NAFNet", "24.50/0.7363 25.34/0.9600 29.24/0.8990 29.54/0.9310 21.91/0.7469 22.75/0.6648 "
                                 "22.79/0.6760 23.67/0.8709 23.86/0.9042 21.03/0.6815 20.82/0.6901", (24.13, 0.7964)),
            _cdd11_row("SRUDC", "25.92/0.8081 32.06/0.9896 32.87/0.9536 33.89/0.9674 24.96/0.8008 24.82/0.7657 "
                                "24.46/0.7599 28.29/0.9434 28.79/0.9557 23.95/0.7574 24.01/0.7589", (27.64, 0.8600)),
            _cdd11_row("Fourmer", "24.91/0.7607 22.35/0.9191 28.76/0.8849 28.28/0.9203 21.75/0.7312 23.47/0.6916 "
                                  "23.28/0.7015 21.68/0.8391 21.20/0.8710 21.21/0.6746 20.91/0.6791", (23.44, 0.7885)),
            _cdd11_row("OKNet", "25.64/0.8132 28.27/0.9829 30.98/0.9467 32.35/0.9629 24.08/0.8083 24.54/0.7727 "
                                "24.20/0.7655 25.83/0.9336 27.14/0.9493 23.13/0.7655 23.48/0.7643", (26.33, 0.8605)),
            _cdd11_row("AirNet", "24.83/0.7775 24.21/0.9513 26.55/0.8914 26.79/0.9193 23.23/0.7785 22.82/0.7099 "
                                 "23.29/0.7230 22.21/0.8679 23.29/0.9012 21.80/0.7084 22.24/0.7249", (23.75, 0.8140)),
            _cdd11_row("TransWeather", "23.39/0.7253 23.95/0.9241 26.69/0.8986 25.74/0.8903 22.24/0.7208 "
                                       "22.62/0.6944 21.80/0.6608 23.10/0.8761 22.34/0.8678 21.55/0.6776 "
                                       "21.01/0.6549", (23.13, 0.7810)),
            _cdd11_row("WeatherDiff", "23.58/0.7627 21.99/0.9035 24.85/0.8853 24.80/0.8883 21.83/0.7558 "
                                      "22.69/0.7296 22.12/0.7072 21.25/0.8681 21.99/0.8683 21.23/0.7164 21.04/0.6983",
                       (22.49, 0.7985)),
            _cdd11_row("PromptIR", "26.32/0.8054 26.10/0.9686 31.56/0.9463 31.53/0.9595 24.49/0.7888 25.05/0.7712 "
                                   "24.51/0.7610 24.54/0.9237 23.70/0.9254 23.74/0.7523 23.33/0.7468",
                       (25.90, 0.8499)),
            _cdd11_row("WGWSNet", "24.39/0.7744 27.90/0.9824 33.15/0.9639 34.43/0.9728 24.27/0.8004 25.06/0.7722 "
                                  "24.60/0.7647 27.23/0.9546 27.65/0.9597 23.90/0.7715 23.97/0.7715", (26.96, 0.8626)),
            _cdd11_row("OneRestore (visual)", "26.48/0.8258 32.52/0.9895 33.40/0.9639 34.31/0.9725 25.79/0.8221 "
                                              "25.58/0.7995 25.19/0.7894 29.99/0.9570 30.21/0.9642 24.78/0.7880 "
                                              "24.90/0.7905", (28.47, 0.8784)),
            # OneRestore's README marks its text-embedder variant with a dagger.
            _cdd11_row("OneRestore\u2020 (text)", "26.55/0.8266 32.71/0.9912 33.48/0.9641 34.50/0.9742 26.15/0.8295 "
                                                 "25.83/0.8029 25.56/0.7966 30.27/0.9599 30.46/0.9663 25.18/0.7955 "
                                                 "25.28/0.7966", (28.72, 0.8821)),
            _average_only("MoCE-IR-S", MOCEIR_CDD11, 29.05),
            _average_only("MIRAGE-S", MIRAGE_CDD11, 29.33),
            _average_only("BioIR", BIOIR_CDD11, 29.52),
            _average_only("DCPT-NAFNet", DCPT_CDD11, 30.66),
        )),
}


def published_row(protocol: str, model_name: str) -> PublishedRow | None:
    """The published row of a registry model under a protocol, by the name its spec gives it in published tables
    (``promptir`` -> PromptIR's), or None where the protocol's table has none (PromptIR under 5task) or the model is
    not registered."""
    from pip_model.networks.registry import model_spec  # torch: only where a row is looked up

    try:
        method = model_spec(model_name).published
    except ValueError:
        return None
    return next((row for row in PUBLISHED[protocol].rows if method and row.method == method), None)
