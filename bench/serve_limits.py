"""What a large request costs a real `mlflow models serve` of a registered restorer.

Registers `pip_restormer_tiny` with a bundled sensor in a throwaway store, serves it on loopback
(defaults: tiles of 512 px, 16 megapixels a request, 60 s timeout) and sends one request per
size, sampling the server's memory (its whole process group) while it works:

    python bench/serve_limits.py [--sizes 512 1024 2048] [--model pip_restormer_tiny]

Prints, per size: the answer's status, its time, and the server's peak resident memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pip_model.apps.serving import ServedRestorer  # noqa: E402
from pip_model.networks.registry import build_model  # noqa: E402
from pip_model.tracking.tracker import Tracker


def _group_rss(leader: psutil.Process) -> int:
    total = 0
    try:
        processes = [leader, *leader.children(recursive=True)]
    except psutil.Error:  # a child came or went while the tree was read
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048], help="square image sides")
    parser.add_argument("--model", default="pip_restormer_tiny", help="registry name of the restorer")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="serve-limits-"))
    store = f"sqlite:///{folder / 'mlflow.db'}"
    served = ServedRestorer(build_model(args.model).eval(), sensor=build_model("sensor_tiny").eval(),
                            sensor_name="sensor_tiny")
    tracker = Tracker(uri=store, experiment="serve-limits", run_name=args.model)
    example = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    tracker.log_model(served, registered_name="bench-served", alias="candidate", input_example=example,
                      params={"task": "auto", "sensor": "sensor_tiny"}, example_params={"task": "noise"})
    tracker.finish()

    port = _free_port()
    # `mlflow models serve` starts uvicorn by name: this interpreter's tools first on PATH.
    env = dict(os.environ, MLFLOW_TRACKING_URI=store,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/bench-served@candidate",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print((folder / "serve.log").read_text())
                    return 1
                time.sleep(0.5)
        leader = psutil.Process(server.pid)
        print(f"model {args.model}; server idle: {_group_rss(leader) / 2**20:.0f} MiB resident")
        print("| side | status | seconds | server peak MiB |")
        print("| --- | --- | --- | --- |")
        for side in args.sizes:
            body = json.dumps({"inputs": np.random.default_rng(side).random((1, 3, side, side)).round(4).tolist(),
                               "params": {"task": "derain"}}).encode()
            peak, done = [0], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _group_rss(leader))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    status = response.status
                    response.read()
            except urllib.error.HTTPError as error:
                status = f"{error.code} {error.read().decode(errors='replace')[:80]}"  # 504 is plain text
            seconds = time.monotonic() - started
            done.set()
            sampler.join()
            print(f"| {side} | {status} | {seconds:.1f} | {peak[0] / 2**20:.0f} |", flush=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
