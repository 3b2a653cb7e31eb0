"""The studio page in a real browser: Debian's Chromium, headless, driven by Playwright.

One studio serves the whole module (in this process, on a free loopback port) on an untrained PIP model with a
random output layer, whose result moves with the prompt, and a sensor whose only evidence is the image's darkest
tenth: a veil of haze lifts it, so it scores haze on the hazy example and nothing on the clean photo.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from PIL import Image

from pip_model import build_model, degrade
from pip_model.apps.studio import PNG_SETTINGS_KEY, check_values, main, png_with_text
from pip_model.data.images import to_array
from pip_model.image_files import ImageFileError, write_png
from pip_model.networks.checkpoints import save_model_file
from pip_model.networks.sensor import EXPOSURE_QUANTILES
from pip_model.tasks import PAPER_CLASSES
from tests.helpers.models import randomise_output

CHROMIUM = os.environ.get("PIP_CHROMIUM", "/usr/bin/chromium")
# Each step waits at most this long for the page (the tiny model restores a 96x96 image in well under a second).
STEP_MS = 30_000


def _browser_missing() -> str:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set PIP_CHROMIUM)"
    try:
        import gradio  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (scripts/setup.sh installs requirements.lock)"
    return ""


needs_browser = pytest.mark.skipif(bool(_browser_missing()), reason=_browser_missing() or "browser found")


def _haze_sensor() -> torch.nn.Module:
    """A sensor that scores haze from the image's 10% brightness quantile (a veil lifts the darkest pixels) and
    every other class absent."""
    sensor = build_model("sensor_tiny").eval()
    quantile_10 = sensor.classifier.in_features - len(EXPOSURE_QUANTILES) + EXPOSURE_QUANTILES.index(0.1)
    with torch.no_grad():
        sensor.classifier.weight.zero_()
        sensor.classifier.bias.fill_(-6.0)
        haze = PAPER_CLASSES.index("haze")
        sensor.classifier.weight[haze, quantile_10] = 20.0
        sensor.classifier.bias[haze] = -5.0  # 0.25 is the threshold: the clean crop's is 0.07, the hazy one's 0.44
    return sensor


def _png_bomb(path: Path) -> Path:
    """A 16-bit RGB PNG of a few dozen bytes whose header declares 100000x100000 pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The model, the sensor, a one-pair benchmark (a hazy crop and its clean reference) and files to upload."""
    folder = tmp_path_factory.mktemp("studio")
    torch.manual_seed(0)
    save_model_file(folder / "pip_nafnet_tiny.pt", randomise_output(build_model("pip_nafnet_tiny")).eval(),
                    model_name="pip_nafnet_tiny")
    save_model_file(folder / "sensor_tiny.pt", _haze_sensor(), model_name="sensor_tiny")
    clean = torch.from_numpy(skimage.data.astronaut()[100:196, 180:276].copy()).permute(2, 0, 1)[None].float() / 255
    hazy, _ = degrade(clean, "dehaze", seed=1)
    benchmark = folder / "benchmark"
    write_png(benchmark / "clean" / "astronaut_c0.png", to_array(clean[0]))
    write_png(benchmark / "dehaze" / "astronaut_c0.png", to_array(hazy[0]))
    pd.DataFrame([{"id": "dehaze/astronaut_c0", "image_id": "astronaut", "task": "dehaze", "class_id": "2",
                   "split": "test", "source": "synthetic", "seed": 1, "degraded_path": "dehaze/astronaut_c0.png",
                   "clean_path": "clean/astronaut_c0.png", "params": "{}"}]).to_csv(benchmark / "manifest.csv",
                                                                                    index=False)
    write_png(folder / "photo.png", to_array(clean[0]))
    return {"model": folder / "pip_nafnet_tiny.pt", "sensor": folder / "sensor_tiny.pt", "benchmark": benchmark,
            "photo": folder / "photo.png", "bomb": _png_bomb(folder / "bomb.png"), "folder": folder}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def studio_url(files):
    from pip_model.apps.studio import build_page, launch, load_studio, parser

    arguments = parser().parse_args(["--model", str(files["model"]), "--sensor", str(files["sensor"]),
                                     "--benchmark", str(files["benchmark"]), "--max-upload-mb", "2"])
    page = build_page(load_studio(arguments, files["folder"]))
    _, url, _ = launch(page, host="127.0.0.1", port=_free_port(), max_upload_mb=arguments.max_upload_mb,
                       block=False)
    yield url
    page.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, studio_url):
    """A fresh page on the studio that records every URL it requests."""
    context = browser.new_context(accept_downloads=True)
    tab = context.new_page()
    tab.requested = []
    tab.on("request", lambda request: tab.requested.append(request.url))
    tab.goto(studio_url, wait_until="load")
    tab.wait_for_selector("#studio-message", timeout=STEP_MS)
    yield tab
    context.close()


def _message(page) -> str:
    """The page's one-line message (without the timer Gradio shows over a component while it is updated)."""
    lines = [line for line in page.locator("#studio-message").inner_text().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _wait_message(page, text: str) -> str:
    page.wait_for_function("text => document.querySelector('#studio-message').innerText.includes(text)", arg=text,
                           timeout=STEP_MS)
    return _message(page)


def _restored_src(page) -> str:
    """The URL of the restored (second) image of the before/after comparison, or ""."""
    sources = page.locator("#studio-compare img").evaluate_all("images => images.map(image => image.src)")
    return sources[1] if len(sources) > 1 else ""


def _upload(page, path: Path) -> None:
    """Sets the upload box's file, and again if the page has not taken it up in 10 s: after each file the page
    empties the box, which re-renders its input, and on a loaded machine a file set meanwhile can be lost."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = _message(page)
    for _ in range(3):
        page.locator("#studio-upload input[type=file]").set_input_files(str(path))
        try:
            page.wait_for_function("before => document.querySelector('#studio-message').innerText !== before",
                                   arg=before, timeout=10_000)
            return
        except PlaywrightTimeout:
            continue


def _set_slider(page, name: str, value: float) -> str:
    """Moves a class slider as a hand would (its value, then the pointer's release); returns the restored image's
    URL once it changed."""
    before = _restored_src(page)
    handle = page.locator(f"#studio-slider-{name} input[type=range]")
    handle.fill(str(value))
    handle.dispatch_event("pointerup")
    page.wait_for_function("before => { const images = document.querySelectorAll('#studio-compare img'); "
                           "return images.length > 1 && images[1].src !== before; }", arg=before, timeout=STEP_MS)
    return _restored_src(page)


def _image_at(page, url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("RGB"))


# Without a browser -----------------------------------------------------------------------------------------------
def test_help_prints_the_arguments_and_does_no_work(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "--host" in capsys.readouterr().out


def test_python_m_pip_model_studio_is_the_same_command(capsys):
    from pip_model.__main__ import main as pip_model_main

    with pytest.raises(SystemExit) as stop:
        pip_model_main(["studio", "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m pip_model studio")


def test_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none.pt")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("studio: ") and error.count("\n") == 1


def test_values_that_are_not_finite_or_off_the_scale_are_refused():
    with pytest.raises(ImageFileError, match="1 pixel values are NaN or infinite"):
        check_values(np.array([[[0.5, np.nan, 0.2]]], dtype=np.float32), "a.tif")
    with pytest.raises(ImageFileError, match="lie in \\[0, 1\\]"):
        check_values(np.array([[[0.5, 3.0, 0.2]]], dtype=np.float32), "a.tif")


def test_png_text_survives_a_reader(tmp_path):
    write_png(tmp_path / "a.png", np.full((4, 5, 3), 0.5, dtype=np.float32), bit_depth=16)
    (tmp_path / "b.png").write_bytes(png_with_text((tmp_path / "a.png").read_bytes(), {"pip_model": "rain=0.7 ✓"}))
    with Image.open(tmp_path / "b.png") as image:
        assert image.text["pip_model"] == "rain=0.7 ✓"
        image.load()  # the pixels still decode: the chunks were inserted whole


# In the browser ----------------------------------------------------------------------------------------------------


@pytest.mark.integration
@needs_browser
def test_the_page_loads_with_no_request_leaving_loopback(page):
    page.wait_for_timeout(500)  # late requests (fonts, analytics) would come now
    hosts = {url.split("/")[2].rsplit(":", 1)[0] for url in page.requested if url.startswith(("http:", "https:"))}
    assert hosts == {"127.0.0.1"}, [url for url in page.requested if "127.0.0.1" not in url]


@pytest.mark.integration
@needs_browser
def test_an_uploaded_image_is_restored_and_the_rain_slider_changes_it(page, files):
    _upload(page, files["photo"])
    assert "restored photo.png" in _wait_message(page, "restored")
    first = _set_slider(page, "noise", 1)
    second = _set_slider(page, "rain", 1)
    assert first and second and first != second
    assert np.abs(_image_at(page, first).astype(int) - _image_at(page, second).astype(int)).max() > 2


@pytest.mark.integration
@needs_browser
def test_auto_on_the_hazy_example_shows_haze_as_the_top_score(page):
    page.locator("#studio-example input").click()
    page.get_by_role("option", name="dehaze: astronaut_c0", exact=True).click()
    _wait_message(page, "restored")
    assert "PSNR" in page.locator("#studio-metrics").inner_text()
    page.locator("#studio-auto input").check()
    page.wait_for_function("document.querySelector('#studio-decision').innerText.includes('haze')",
                           timeout=STEP_MS)
    assert page.locator("#studio-scores h2, #studio-scores .output-class").first.inner_text().strip() == "haze"
    assert "haze" in page.locator("#studio-decision").inner_text()


@pytest.mark.integration
@needs_browser
def test_a_clean_photo_under_auto_is_left_as_it_is_and_says_so(page, files):
    page.locator("#studio-auto input").check()
    _upload(page, files["photo"])
    page.wait_for_function("document.querySelector('#studio-decision').innerText.includes('left as it is')",
                           timeout=STEP_MS)
    assert "nothing to restore" in page.locator("#studio-decision").inner_text()


@pytest.mark.integration
@needs_browser
def test_a_png_bomb_is_one_line_and_the_page_keeps_working(page, files):
    _upload(page, files["bomb"])
    line = _wait_message(page, "over the limit")
    assert line.startswith("bomb.png: 100000x100000 pixels (10000.0 megapixels) is over the limit")
    assert "Traceback" not in page.content()
    _upload(page, files["photo"])
    assert "restored photo.png" in _wait_message(page, "restored photo.png")


@pytest.mark.integration
@needs_browser
def test_the_download_carries_its_settings(page, files, tmp_path):
    _upload(page, files["photo"])
    _wait_message(page, "restored")
    _set_slider(page, "rain", 0.7)
    page.wait_for_selector("#studio-download:not([disabled])", timeout=STEP_MS)
    with page.expect_download(timeout=STEP_MS) as download:
        page.locator("#studio-download").click()
    path = tmp_path / "result.png"
    download.value.save_as(path)
    with Image.open(path) as image:
        settings = json.loads(image.text[PNG_SETTINGS_KEY])
    assert settings["mix"] == "rain=0.7"
    assert settings["model_file"] == str(files["model"])
    assert settings["source"] == "photo.png" and settings["pip_model_version"]



def test_a_restoration_past_the_time_limit_is_stopped_in_words(files):
    from pip_model.apps.studio import load_studio, parser

    arguments = parser().parse_args(["--model", str(files["model"]), "--benchmark", str(files["benchmark"]),
                                     "--time-limit", "1", "--tile", "64", "--overlap", "8"])
    studio = load_studio(arguments, files["folder"])
    studio.time_limit_s = 0  # every tile batch after the first starts past it
    opened = studio.open_upload(str(files["photo"]))
    with pytest.raises(TimeoutError, match="past the studio's time limit of 0 s"):
        studio.run(opened, auto=False, weights=[0, 1, 0, 0, 0])


@pytest.mark.integration
@needs_browser
def test_an_upload_over_the_size_cap_is_refused_and_the_page_keeps_working(page, files):
    big = files["folder"] / "big.png"
    big.write_bytes(files["photo"].read_bytes() + os.urandom(3 * 2**20))  # over the studio's --max-upload-mb 2
    _upload(page, big)
    page.get_by_text('File(s) exceed the maximum allowed size of 2.0 Mb: "big.png"').wait_for(timeout=STEP_MS)
    # The server holds the cap too, for a client that skips the page's check.
    answer = page.request.post(page.url.rstrip("/") + "/gradio_api/upload",
                               multipart={"files": {"name": "big.png", "mimeType": "image/png",
                                                    "buffer": big.read_bytes()}})
    assert answer.status == 413, (answer.status, answer.text()[:200])
    _upload(page, files["photo"])
    assert "restored photo.png" in _wait_message(page, "restored photo.png")


@pytest.mark.integration
@needs_browser
def test_a_float_tiff_with_a_nan_is_one_line_and_the_page_keeps_working(page, files, tmp_path):
    """The command line's value check on the page: a float TIFF holding a NaN is refused in one line, never
    restored, and the next file is."""
    import tifffile

    values = np.full((16, 24, 3), 0.5, dtype=np.float32)
    values[3, 4, 1] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", values)
    _upload(page, tmp_path / "nan.tif")
    line = _wait_message(page, "NaN or infinite")
    assert line.startswith("nan.tif: ") and "Traceback" not in page.content()
    _upload(page, files["photo"])
    assert "restored photo.png" in _wait_message(page, "restored photo.png")
