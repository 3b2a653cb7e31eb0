"""The studio: a local web page where a person steers a PIP model's prompt and sees what it does.

    python -m pip_model studio [--model PATH | --model models:/NAME@ALIAS] [--sensor PATH]
                               [--benchmark data/benchmark] [--host 127.0.0.1] [--port 7860]

A slider per prompt class of the model (its own classes) sets the prompt mixture; "auto" lets the degradation sensor
choose and shows its score per class and its decision in words. The restored image is shown against the input with a
before/after slider; PSNR and SSIM against the clean image when the image has one (a benchmark example); the prompt
swap shows the image under each single class prompt; the download is a PNG whose text metadata holds its settings.

Every restoration goes through :func:`pip_model.evaluation.inference.restore`, under the same limits as
``prompt-restore`` and serving: the pixel limit checked from the file's header before decoding, finite pixels in
[0, 1] only, uploads capped in bytes, a time limit per request; a bad file is one line on the page. The browser never
names a path that is opened: uploads are the files Gradio received, examples are picked by name from a list the
server built. The page is served on the loopback interface unless ``--host`` says otherwise, with no analytics and
no font or script from outside (the page's requests are checked by ``tests/test_studio.py``).

While a slider moves, a preview at reduced size (``--preview`` pixels a side) comes back first, the full-size image
after it: on a 2-core CPU the tiny PIP model takes seconds for 512x512 (``bench/studio_latency.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pip_model.apps.restore import at_least
from pip_model.config import CommandLine
from pip_model.data.images import to_array, to_tensor
from pip_model.evaluation.inference import restore
from pip_model.evaluation.metrics import image_metrics
from pip_model.evaluation.tiling import for_inference
from pip_model.image_files import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageFileError, read_image, write_png
from pip_model.networks.checkpoints import load_model_file
from pip_model.networks.registry import spec_of_model
from pip_model.tasks import model_classes, parse_mix, task_prompt

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# An upload over this many bytes is refused by the server before it is stored (Gradio's max_file_size).
DEFAULT_MAX_UPLOAD_MB = 100
DEFAULT_TIME_LIMIT_S = 120
# The preview's longer side while a slider moves: the tiny PIP model restores 128x128 in ~0.3 s on 2 CPU cores.
DEFAULT_PREVIEW = 128
# Benchmark examples offered on the page: this many images of each task.
EXAMPLES_PER_TASK = 2
PNG_SETTINGS_KEY = "pip_model"
KEEP_FILES_S = 3600


class Superseded(Exception):
    """A newer slider position arrived while an older one's full-size image was being restored."""


class StudioError(ValueError):
    """A start-up choice that cannot work (no model, a sensor that is not one); the message says what to do."""


def project_version() -> str:
    """This package's version, as the download's metadata records it."""
    try:
        return version("pip-model")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class Opened:
    """An image open on the page: its pixels, its clean reference when it has one, and its name.

    Shape:
        rgb, clean: (H, W, 3) float32, rgb in [0, 1] (a benchmark's unclipped noise may pass 1 or 0)
    """

    name: str
    rgb: np.ndarray
    clean: np.ndarray | None = None
    bit_depth: int = 8


@dataclass
class Outcome:
    """One restoration as the page shows it."""

    image: np.ndarray
    settings: dict[str, Any]
    scores: dict[str, float] | None = None
    decision: str = ""
    metrics: str = ""


@dataclass
class Studio:
    """What the page runs on: the model, its sensor, the benchmark examples and the limits.

    Every handler of the page is a method here, so each can be called without a browser.
    """

    model: nn.Module
    description: str
    model_file: str
    sensor: nn.Module | None = None
    examples: dict[str, tuple[Path, Any]] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    preview: int = DEFAULT_PREVIEW
    tile: int = 512
    overlap: int = 32

    def __post_init__(self) -> None:
        self.spec = spec_of_model(self.model)
        self.classes: tuple[str, ...] = model_classes(self.model) if self.spec.uses_prompts else ()

    # Opening an image -------------------------------------------------------------------------------------------
    def open_upload(self, path: str | None, shown_name: str | None = None) -> Opened:
        """Reads a file the browser uploaded (Gradio stored it; its name is the uploader's).

        Raises:
            ImageFileError: one line naming the file (by its uploaded name) and the problem.
        """
        if not path:
            raise ImageFileError("upload", "no file")
        name = shown_name or Path(path).name
        try:
            image = read_image(path, max_pixels=self.max_pixels)
        except ImageFileError as error:
            raise ImageFileError(name, error.reason) from None
        check_values(image.rgb, name)
        return Opened(name=name, rgb=image.rgb, bit_depth=image.bit_depth)

    def open_example(self, name: str) -> Opened:
        """A benchmark pair picked by its name in the server's list (never by a path from the browser)."""
        if name not in self.examples:
            raise ImageFileError(name or "example", "not one of this page's examples")
        from pip_model.evaluation.benchmark import BenchmarkPair

        folder, row = self.examples[name]
        pair = BenchmarkPair(row, folder)
        try:
            degraded, clean = to_array(pair.degraded[0]), to_array(pair.clean[0])
        except (ImageFileError, ValueError, OSError) as error:
            raise ImageFileError(name, str(error)) from None
        if not np.isfinite(degraded).all():
            raise ImageFileError(name, "holds NaN or infinite pixel values")
        return Opened(name=name, rgb=degraded, clean=clean)

    # Restoring --------------------------------------------------------------------------------------------------
    def prompt_text(self, weights: Sequence[float]) -> str:
        """The sliders as ``prompt-restore --mix``'s value (``rain=0.7,haze=0.3``), or "" when all are zero."""
        return ",".join(f"{name}={float(weight):g}" for name, weight in zip(self.classes, weights) if weight > 0)

    def run(self, opened: Opened, *, auto: bool, weights: Sequence[float] = (), single: str = "",
            max_side: int = 0, on_tile: Callable[[int, int], None] | None = None) -> Outcome:
        """Restores ``opened`` steered by the sliders' mixture, one class (``single``) or the sensor (``auto``);
        at most ``max_side`` pixels a side (a preview; 0: full size). A large image is restored in tiles, and
        ``on_tile(done, total)`` is called after each batch of them.

        Raises:
            TimeoutError: past the time limit, in words.
            ValueError: a steering the model cannot take, in words.
        """
        started = time.monotonic()
        rgb, clean = opened.rgb, opened.clean
        if max_side and max(rgb.shape[:2]) > max_side:
            rgb, clean = _smaller(rgb, max_side), (None if clean is None else _smaller(clean, max_side))
        prompt, sensor, mix = None, None, ""
        if auto:
            if self.sensor is None:
                raise ValueError("auto needs a degradation sensor: start the studio with --sensor (none was found "
                                 "in sensors/)")
            sensor = self.sensor
        elif single:
            prompt = task_prompt(single, self.classes) if single not in self.classes else (
                torch.eye(len(self.classes))[self.classes.index(single)])
            mix = f"{single}=1"
        elif self.classes:
            mix = self.prompt_text(weights)
            prompt = parse_mix(mix, self.classes) if mix else torch.zeros(len(self.classes))  # zeros: left alone
        try:
            result = restore(self.model, to_tensor(rgb)[None], spec=self.spec, prompt=prompt, sensor=sensor,
                             tile=self.tile, overlap=self.overlap, on_tile=on_tile,
                             deadline=started + self.time_limit_s)
        except TimeoutError:
            raise TimeoutError(f"stopped after {time.monotonic() - started:.0f} s, past the studio's time limit of "
                               f"{self.time_limit_s:g} s (--time-limit): open a smaller image") from None
        restored = to_array(result.images[0].clamp(0, 1))
        settings: dict[str, Any] = {"source": opened.name, "model": self.description, "model_file": self.model_file,
                                    "pip_model_version": project_version()}
        scores, decision = None, ""
        if result.scores is not None:
            from pip_model.apps.restore import sensor_decision

            explained = sensor_decision(result.scores[0], result.weights[0], score_classes=result.sensor_classes,
                                        weight_classes=result.classes)
            scores, decision = dict(explained["scores"]), str(explained["decision"])
            settings["task"] = "auto"
            settings["sensor_prompt"] = explained["prompt"]
            settings["decision"] = decision
        elif self.classes:
            settings["mix"] = mix
            if not mix:
                decision = "every slider is at zero: no prompt names anything to restore; left as it is"
        if bool(result.left_alone[0]) and not decision:
            decision = "left as it is"
        if max_side and max(opened.rgb.shape[:2]) > max_side:
            settings["preview_side"] = max_side
        return Outcome(image=restored, settings=settings, scores=scores, decision=decision,
                       metrics=_metrics(rgb, restored, clean))

    def swap(self, opened: Opened, max_side: int = 0) -> list[tuple[np.ndarray, str]]:
        """The image under each single class prompt, labelled by class."""
        return [(self.run(opened, auto=False, single=name, max_side=max_side).image, name) for name in self.classes]

    def download(self, outcome: Outcome, opened: Opened, folder: Path) -> Path:
        """The result as a PNG (16-bit for a 16-bit input) whose text metadata holds its settings."""
        stem = Path(opened.name).stem or "image"
        path = folder / f"{stem}_restored.png"
        write_png(path, outcome.image, bit_depth=opened.bit_depth)
        settings = json.dumps(outcome.settings, sort_keys=True)
        path.write_bytes(png_with_text(path.read_bytes(), {PNG_SETTINGS_KEY: settings,
                                                           "Software": f"pip_model {project_version()}"}))
        return path


def check_values(rgb: np.ndarray, name: str) -> None:
    """Refuses pixels that are not finite or not in [0, 1] (a float TIFF may hold either), in one line.

    Raises:
        ImageFileError: naming the file and how many values are wrong.
    """
    finite = np.isfinite(rgb)
    if not finite.all():
        raise ImageFileError(name, f"{int((~finite).sum()):,} pixel values are NaN or infinite")
    low, high = float(rgb.min(initial=0.0)), float(rgb.max(initial=0.0))
    if low < 0 or high > 1:
        raise ImageFileError(name, f"pixel values must lie in [0, 1]; these span {low:.4g} to {high:.4g}")


def png_with_text(data: bytes, text: dict[str, str]) -> bytes:
    """A PNG's bytes with ``text`` added as uncompressed UTF-8 ``iTXt`` chunks right after its header chunk.

    Any PNG reader shows them (Pillow: ``Image.open(path).text``; ``exiftool``; ``identify -verbose``).
    """
    header_end = 8 + 4 + 4 + 13 + 4  # signature, IHDR's length, type, data and CRC
    chunks = b""
    for key, value in text.items():
        body = key.encode("latin-1") + b"\0\0\0" + b"\0" + b"\0" + value.encode("utf-8")
        chunks += len(body).to_bytes(4, "big") + b"iTXt" + body + zlib.crc32(b"iTXt" + body).to_bytes(4, "big")
    return data[:header_end] + chunks + data[header_end:]


def _smaller(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` area-downscaled so its longer side is ``max_side``."""
    scale = max_side / max(rgb.shape[:2])
    small = nn.functional.interpolate(to_tensor(np.clip(rgb, 0, 1))[None], scale_factor=scale, mode="area")
    return to_array(small[0])


def _metrics(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray | None) -> str:
    if clean is None or clean.shape != restored.shape:
        return "PSNR/SSIM: no clean reference for this image (benchmark examples have one)"
    before = image_metrics(to_tensor(np.clip(degraded, 0, 1))[None], to_tensor(clean)[None])
    after = image_metrics(to_tensor(restored)[None], to_tensor(clean)[None])
    return (f"against the clean image: restored PSNR {after[0]:.2f} dB, SSIM {after[1]:.4f} "
            f"(input PSNR {before[0]:.2f} dB, SSIM {before[1]:.4f})")


def _display(rgb: np.ndarray) -> np.ndarray:
    """8-bit pixels for the page."""
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def benchmark_examples(folder: Path, per_task: int = EXAMPLES_PER_TASK) -> dict[str, tuple[Path, Any]]:
    """Pairs of the benchmark the pipeline wrote (its ``manifest.csv``), by name (``dehaze: coffee-013a8175_c0``):
    for each task, the first pair of up to ``per_task`` images, test split first. They are the only files the page
    opens besides uploads."""
    if not (folder / "manifest.csv").is_file():
        return {}
    from pip_model.evaluation.benchmark import load_benchmark

    pairs = sorted(load_benchmark(folder), key=lambda pair: str(getattr(pair.row, "split", "")) != "test")
    examples: dict[str, tuple[Path, Any]] = {}
    images: dict[str, set[str]] = {}
    for pair in pairs:
        task, image = str(pair.row.task), str(getattr(pair.row, "image_id", pair.row.id))
        seen = images.setdefault(task, set())
        if image not in seen and len(seen) < per_task:
            seen.add(image)
            examples[f"{task}: {Path(str(pair.row.degraded_path)).stem}"] = (folder, pair.row)
    return dict(sorted(examples.items()))


def _fresh_folder(parent: Path, keep_s: float = 0) -> Path:
    """A new folder under ``parent``, after removing those older than ``keep_s`` seconds (an hour by default)."""
    import shutil

    cutoff = time.time() - (keep_s or KEEP_FILES_S)
    for old in parent.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=parent))


# The page -------------------------------------------------------------------------------------------------------
def _theme():
    import gradio as gr

    # The default theme's fonts would be fetched from outside; the system's are used instead.
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def _one_line(error: Exception) -> str:
    return f"**{' '.join(str(error).split())}**"


def _shown(opened: Opened, outcome: Outcome, max_side: int) -> tuple[Any, ...]:
    """The comparison, metrics, score bars and decision of one outcome, as the page's components take them."""
    import gradio as gr

    before = _smaller(opened.rgb, max_side) if max_side and max(opened.rgb.shape[:2]) > max_side else opened.rgb
    label = gr.Label(value=outcome.scores) if outcome.scores is not None else gr.Label(value=None)
    size = " (preview; the full-size image follows)" if "preview_side" in outcome.settings else ""
    return (gr.ImageSlider(value=(_display(before), _display(outcome.image))), outcome.metrics, label,
            (outcome.decision or "") + size)


def _on_open(opened: Opened | None, error: Exception | None) -> tuple[Any, ...]:
    import gradio as gr

    if error is not None:
        return gr.skip(), _one_line(error)
    return opened, f"opened {opened.name} ({opened.rgb.shape[1]}x{opened.rgb.shape[0]})"


def _restore_handler(studio: Studio, downloads: Path, *, full: bool):
    """The preview (``full`` False) or the full-size restoration that follows it. A preview starts a new request of
    the session; a full-size restoration of an older one stops at its next tile, or is not shown, so the page never
    goes back to an older prompt."""
    import gradio as gr

    def handler(session: dict[str, int], opened: Opened | None, use_auto: bool, *weights: float,
                progress=gr.Progress()):  # noqa: B008  (how Gradio hands a handler its progress bar)
        nothing = (gr.skip(),) * 6
        if not full:
            session["latest"] = session.get("latest", 0) + 1
        request = session.get("latest", 0)
        if opened is None:
            return nothing
        side = 0 if full else studio.preview
        if full and max(opened.rgb.shape[:2]) <= studio.preview:
            return nothing  # the preview was the full image

        def on_tile(done: int, total: int) -> None:
            if session.get("latest") != request:
                raise Superseded
            progress((done, total), desc="tiles", unit="tiles")

        try:
            if full and session.get("latest") != request:
                raise Superseded
            outcome = studio.run(opened, auto=use_auto, weights=weights, max_side=side, on_tile=on_tile)
            if full and session.get("latest") != request:
                raise Superseded
        except Superseded:
            return nothing
        except (ValueError, TimeoutError, MemoryError) as error:
            return (gr.skip(),) * 4 + (_one_line(error), gr.skip())
        file = (gr.DownloadButton(value=str(studio.download(outcome, opened, _fresh_folder(downloads))),
                                  interactive=True) if not side or max(opened.rgb.shape[:2]) <= side
                else gr.skip())
        return (*_shown(opened, outcome, side), f"restored {opened.name}", file)

    return handler


def _layout(studio: Studio) -> dict[str, Any]:
    """The page's components, by name (built inside the page's ``gr.Blocks``)."""
    import gradio as gr

    gr.Markdown(f"## PIP studio\nmodel: `{studio.description}`"
                + ("" if studio.classes else " (takes no prompt: the sliders are hidden)"))
    parts: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=1):
            parts["upload"] = gr.File(label="open an image", file_types=sorted(IMAGE_SUFFIXES), type="filepath",
                                      elem_id="studio-upload")
            parts["example"] = gr.Dropdown(choices=list(studio.examples), value=None, label="or a benchmark example",
                                           elem_id="studio-example", visible=bool(studio.examples))
            parts["message"] = gr.Markdown("open an image to begin", elem_id="studio-message")
            parts["auto"] = gr.Checkbox(label="auto: the sensor chooses the prompt", value=False,
                                        interactive=studio.sensor is not None, elem_id="studio-auto")
            parts["sliders"] = [gr.Slider(0, 1, value=0, step=0.05, label=name, elem_id=f"studio-slider-{name}")
                                for name in studio.classes]
            parts["swap"] = gr.Button("prompt swap: each single prompt", elem_id="studio-swap",
                                      visible=bool(studio.classes))
            parts["download"] = gr.DownloadButton("download the result (PNG with its settings)", value=None,
                                                  elem_id="studio-download", interactive=False)
        with gr.Column(scale=2):
            parts["compare"] = gr.ImageSlider(label="input | restored", type="numpy", format="png",
                                              elem_id="studio-compare", buttons=["fullscreen"])
            parts["metrics"] = gr.Markdown("", elem_id="studio-metrics")
            parts["scores"] = gr.Label(label="sensor scores per class",
                                       num_top_classes=max(1, len(studio.classes) or 8), elem_id="studio-scores",
                                       visible=studio.sensor is not None)
            parts["decision"] = gr.Markdown("", elem_id="studio-decision")
            parts["strip"] = gr.Gallery(label="prompt swap", columns=max(1, len(studio.classes)),
                                        elem_id="studio-strip", format="png", height=200, rows=1)
    return parts


def build_page(studio: Studio):
    """The Gradio page on ``studio``."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    downloads = Path(tempfile.mkdtemp(prefix="pip-studio-"))

    def open_upload(file: str | None):
        if file is None:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            opened = _on_open(studio.open_upload(file, Path(file).name), None)
        except ImageFileError as error:
            opened = _on_open(None, error)
        return (*opened, None)  # the upload box empties, ready for the next file

    def open_example(name: str | None):
        if not name:
            return gr.skip(), gr.skip()
        try:
            return _on_open(studio.open_example(name), None)
        except ImageFileError as error:
            return _on_open(None, error)

    def swap(opened: Opened | None):
        if opened is None:
            return gr.skip(), "open an image first"
        try:
            return [(_display(image), name) for image, name in studio.swap(opened)], f"prompt swap of {opened.name}"
        except (ValueError, TimeoutError, MemoryError) as error:
            return gr.skip(), _one_line(error)

    # Gradio's copies of uploads and results, and the downloads written here, are kept an hour.
    with gr.Blocks(title="PIP studio", analytics_enabled=False, delete_cache=(600, KEEP_FILES_S)) as page:
        opened_state = gr.State(None)
        session_state = gr.State({"latest": 0})  # shared by the session's handlers: the newest request
        parts = _layout(studio)
        preview, full = (_restore_handler(studio, downloads, full=value) for value in (False, True))
        outputs = [parts[name] for name in ("compare", "metrics", "scores", "decision", "message", "download")]
        steer = [session_state, opened_state, parts["auto"], *parts["sliders"]]
        upload_event = parts["upload"].upload(open_upload, [parts["upload"]],
                                              [opened_state, parts["message"], parts["upload"]])
        example_event = parts["example"].input(open_example, [parts["example"]], [opened_state, parts["message"]])
        for event in (upload_event, example_event):
            event.then(preview, steer, outputs, concurrency_id="preview").then(
                full, steer, outputs, concurrency_id="full")
        for trigger in [*(slider.release for slider in parts["sliders"]), parts["auto"].input]:
            trigger(preview, steer, outputs, concurrency_id="preview", trigger_mode="always_last").then(
                full, steer, outputs, concurrency_id="full", trigger_mode="always_last")
        parts["swap"].click(swap, [opened_state], [parts["strip"], parts["message"]], concurrency_id="full")
    return page


def launch(page, *, host: str, port: int, max_upload_mb: int, block: bool = True):
    """Serves ``page``; returns Gradio's (app, local URL, share URL) when not blocking."""
    return page.launch(server_name=host, server_port=port, max_file_size=f"{max_upload_mb}mb", theme=_theme(),
                       ssr_mode=False, share=False, prevent_thread_lock=not block, quiet=not block,
                       footer_links=[], mcp_server=False)


def load_studio(arguments: argparse.Namespace, root: Path) -> Studio:
    """The model, sensor and examples the arguments name (by default the pipeline's newest here).

    Raises:
        StudioError: naming what is missing or wrong.
    """
    from pip_model.apps.restore import RestoreError, load_restorer, newest_model, newest_sensor
    from pip_model.networks.registry import PluginError, use_plugins

    device = arguments.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise StudioError("--device cuda: this torch build or machine has no CUDA device; use --device cpu")
    try:
        use_plugins(arguments.plugin)
    except PluginError as error:
        raise StudioError(f"--plugin {error}") from None
    try:
        model_file = arguments.model or str(newest_model(root))
        model, description = load_restorer(model_file, device)
    except RestoreError as error:
        raise StudioError(str(error)) from None
    model = for_inference(model)
    spec = spec_of_model(model)
    if spec.call == "non_blind":
        raise StudioError(f"{description} is a task expert, steered by its task's parameters, not by a prompt: "
                          "give the studio a PIP model (or a blind one)")
    sensor = None
    sensor_file = arguments.sensor
    if sensor_file is None:
        try:
            sensor_file = str(newest_sensor(root))
        except RestoreError:
            sensor_file = None  # auto is then off on the page
    if sensor_file is not None:
        try:
            sensor, metadata = load_model_file(sensor_file)
        except (ValueError, FileNotFoundError) as error:
            raise StudioError(f"--sensor {error}") from None
        if not hasattr(sensor, "prompt"):
            raise StudioError(f"--sensor {sensor_file}: holds {metadata['model_name']}, a restorer, not a sensor")
        sensor = sensor.to(device).eval()
    return Studio(model=model, description=description, model_file=model_file, sensor=sensor,
                  examples=benchmark_examples(Path(arguments.benchmark)), max_pixels=arguments.max_pixels,
                  time_limit_s=arguments.time_limit, preview=arguments.preview, tile=arguments.tile,
                  overlap=arguments.overlap)


def parser(prog: str = "pip-studio") -> argparse.ArgumentParser:
    command = CommandLine(prog=prog, description=__doc__, example=f"{prog} --model models/pip_restormer_tiny.pt")
    command.add_argument("--model", help="model file or MLflow URI (models:/NAME@ALIAS); default: the newest PIP "
                                         "model in models/")
    command.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTRIBUTE",
                         help="register the models of a module of yours (repeatable; see docs/09-add-a-model.md)")
    command.add_argument("--sensor", help="degradation sensor for auto (default: the newest in sensors/, if any)")
    command.add_argument("--benchmark", default="data/benchmark",
                         help="the benchmark whose examples the page offers (default: data/benchmark)")
    command.add_argument("--host", default=DEFAULT_HOST,
                         help=f"interface to serve on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 lets "
                              "anyone who reaches this machine use the model)")
    command.add_argument("--port", type=at_least(1), default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    command.add_argument("--max-pixels", type=at_least(1), default=DEFAULT_MAX_PIXELS,
                         help=f"refuse images whose header declares more pixels (default {DEFAULT_MAX_PIXELS:,})")
    command.add_argument("--max-upload-mb", type=at_least(1), default=DEFAULT_MAX_UPLOAD_MB,
                         help=f"refuse larger uploads (default {DEFAULT_MAX_UPLOAD_MB} MB)")
    command.add_argument("--time-limit", type=at_least(1), default=DEFAULT_TIME_LIMIT_S,
                         help=f"seconds a restoration may take before it is stopped (default {DEFAULT_TIME_LIMIT_S})")
    command.add_argument("--preview", type=at_least(1), default=DEFAULT_PREVIEW,
                         help=f"longer side of the quick preview while a slider moves (default {DEFAULT_PREVIEW})")
    command.add_argument("--tile", type=at_least(1), default=512, help="tile side for large images (default 512)")
    command.add_argument("--overlap", type=at_least(1), default=32,
                         help="overlap between tiles (default 32; under half of --tile)")
    command.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when present")
    return command


def main(argv: Sequence[str] | None = None, prog: str = "pip-studio") -> int:
    command = parser(prog)
    arguments = command.parse_args(argv)
    if arguments.overlap >= arguments.tile // 2:
        command.error(f"--overlap ({arguments.overlap}) must be under half of --tile ({arguments.tile})")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        studio = load_studio(arguments, Path.cwd())
    except StudioError as error:
        print(f"studio: {error}", file=sys.stderr)
        return 2
    print(f"studio: model {studio.description}; sensor {'loaded' if studio.sensor is not None else 'none'}; "
          f"{len(studio.examples)} benchmark examples; http://{arguments.host}:{arguments.port}", flush=True)
    launch(build_page(studio), host=arguments.host, port=arguments.port, max_upload_mb=arguments.max_upload_mb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
