"""The studio's latency as a person feels it: from releasing a prompt slider to the new image on the page.

Starts ``python -m pip_model studio`` on a free loopback port, opens it in headless Chromium (Debian's
``/usr/bin/chromium``, driven by Playwright), uploads a rainy 512x512 photo, and moves the rain slider with the mouse
to each of a sweep of positions. For each move it times, in the browser's own clock, the release of the mouse button
until the restored image of the before/after comparison has changed and decoded: first the preview (``--preview``
pixels a side), then the full-size image. Prints the median and worst of each over the sweep.

    python bench/studio_latency.py                                   # models/pip_restormer_tiny.pt, or a random one
    python bench/studio_latency.py --model models/pip_restormer_tiny.pt --positions 10 --json latency.json

Without a trained model file the same network with random weights is timed: the time does not depend on the
weights. The goal on this project's 2-core CPU is at most 1 s to the first new image.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PIP_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _inputs(folder: Path, model: str | None, size: int) -> tuple[Path, Path]:
    """The model file (the given one, the pipeline's, or a random pip_restormer_tiny) and a rainy photo."""
    import skimage.data
    import torch

    from pip_model import build_model, degrade
    from pip_model.data.images import to_array
    from pip_model.image_files import write_png
    from pip_model.networks.checkpoints import save_model_file

    trained = ROOT / "models" / "pip_restormer_tiny.pt"
    if model:
        model_path = Path(model)
    elif trained.is_file():
        model_path = trained
    else:
        torch.manual_seed(0)
        model_path = folder / "pip_restormer_tiny.pt"
        save_model_file(model_path, build_model("pip_restormer_tiny").eval(), model_name="pip_restormer_tiny")
        print(f"studio_latency: no {trained.relative_to(ROOT)}: timing pip_restormer_tiny with random weights")
    photo = torch.from_numpy(skimage.data.astronaut()[:size, :size].copy()).permute(2, 0, 1)[None].float() / 255
    rainy, _ = degrade(photo, "derain", seed=0)
    write_png(folder / "rainy.png", to_array(rainy[0]))
    return model_path, folder / "rainy.png"


WAIT_FOR_NEW_IMAGE = """([before, full, side]) => new Promise(resolve => {
  const check = () => {
    const images = document.querySelectorAll('#studio-compare img');
    const image = images.length > 1 ? images[1] : null;
    if (image && image.src !== before && image.complete && image.naturalWidth > 0
        && (full ? image.naturalWidth === side : true)) {
      resolve([performance.now(), image.src, image.naturalWidth]);
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})"""


def measure(url: str, photo: Path, *, positions: int, side: int, timeout_s: float) -> list[dict[str, float]]:
    """Per slider position: milliseconds from the mouse's release to the preview and to the full-size image."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(timeout_s * 1000)
        page.goto(url, wait_until="load")
        page.locator("#studio-upload input[type=file]").set_input_files(str(photo))
        page.evaluate(WAIT_FOR_NEW_IMAGE, ["", True, side])  # the upload's full-size restoration, before the sweep
        track = page.locator("#studio-slider-rain input[type=range]")
        track.scroll_into_view_if_needed()
        box = track.bounding_box()
        for number in range(positions):
            share = 0.1 + 0.85 * number / max(1, positions - 1)
            x, y = box["x"] + share * box["width"], box["y"] + box["height"] / 2
            before = page.evaluate("() => { const i = document.querySelectorAll('#studio-compare img'); "
                                   "return i.length > 1 ? i[1].src : ''; }")
            page.mouse.move(x, y)
            page.mouse.down()
            # The release's time in the page's clock, taken by the page itself as the pointer comes up.
            page.evaluate("() => { window.__released = null; document.addEventListener('pointerup', "
                          "() => { window.__released = performance.now(); }, {once: true, capture: true}); }")
            page.mouse.up()
            preview_at, preview_src, preview_width = page.evaluate(WAIT_FOR_NEW_IMAGE, [before, False, side])
            released = page.evaluate("() => window.__released")
            if preview_width == side:  # the image was no larger than the preview: one restoration
                full_at = preview_at
            else:
                full_at, _, _ = page.evaluate(WAIT_FOR_NEW_IMAGE, [preview_src, True, side])
            value = float(track.input_value())
            rows.append({"rain": value, "first_image_ms": preview_at - released, "full_image_ms": full_at - released})
            print(f"studio_latency: rain {value:.2f}: first image {rows[-1]['first_image_ms']:.0f} ms "
                  f"({preview_width} px wide), full size {rows[-1]['full_image_ms']:.0f} ms", flush=True)
        browser.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: models/pip_restormer_tiny.pt, or a random one)")
    parser.add_argument("--size", type=int, default=512, help="side of the square test image (default 512)")
    parser.add_argument("--positions", type=int, default=8, help="slider positions in the sweep (default 8)")
    parser.add_argument("--preview", type=int, default=None, help="the studio's --preview (default: its own)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for one image (default 120)")
    parser.add_argument("--json", type=Path, help="write the per-position figures here")
    arguments = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"studio_latency: no Chromium at {CHROMIUM} (apt-get install -y chromium, or set PIP_CHROMIUM)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        model_path, photo = _inputs(Path(scratch), arguments.model, arguments.size)
        port = _free_port()
        command = [sys.executable, "-m", "pip_model", "studio", "--model", str(model_path), "--port", str(port),
                   "--benchmark", str(Path(scratch) / "none")]
        if arguments.preview:
            command += ["--preview", str(arguments.preview)]
        server = subprocess.Popen(command, cwd=scratch, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        print("studio_latency: the studio did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.5)
            rows = measure(url, photo, positions=arguments.positions, side=arguments.size,
                           timeout_s=arguments.timeout)
        finally:
            server.terminate()
            server.wait(timeout=30)
    first = [row["first_image_ms"] for row in rows]
    full = [row["full_image_ms"] for row in rows]
    print(f"studio_latency: {arguments.size}x{arguments.size}, {model_path.name}, {len(rows)} slider positions, "
          f"{os.cpu_count()} CPU cores")
    print(f"studio_latency: slider release -> first new image (preview): median {statistics.median(first):.0f} ms, "
          f"worst {max(first):.0f} ms")
    print(f"studio_latency: slider release -> full-size image: median {statistics.median(full):.0f} ms, "
          f"worst {max(full):.0f} ms")
    if arguments.json:
        arguments.json.write_text(json.dumps({"size": arguments.size, "model": str(model_path), "rows": rows,
                                              "first_median_ms": statistics.median(first),
                                              "first_worst_ms": max(first),
                                              "full_median_ms": statistics.median(full),
                                              "full_worst_ms": max(full)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
