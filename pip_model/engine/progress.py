"""One progress line per logged step, readable in a terminal and in a log."""

from __future__ import annotations

import sys
from collections.abc import Mapping

PROGRESS_FORMATS = {"loss": "loss {:.4f}", "psnr": "psnr {:.2f} dB", "accuracy": "accuracy {:.3f}",
                    "lr": "lr {:.2e}", "patches_per_s": "{:.1f} patches/s"}


class Progress:
    """A progress bar on a terminal; plain periodic lines otherwise (CI, DVC, logs)."""

    def __init__(self, total: int, start: int, every: int, enabled: bool) -> None:
        self.every, self.enabled, self.bar = every, enabled, None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
        self.total = total

    def update(self, step: int, figures: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        text = " ".join(PROGRESS_FORMATS[key].format(value) for key, value in figures.items()
                        if key in PROGRESS_FORMATS)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text)
        elif step % self.every == 0 or step == self.total:
            print(f"train: step {step}/{self.total} {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

