#!/usr/bin/env python3
"""Benchmark: what verification costs beyond the model's own work, side by side.

1. Local ONNX on the CPU: the wall time of a whole verification (`engine.verify`: rendering the external panel,
   blending on the device, preprocessing, querying, statistics) against bare forward passes of the same number
   of images through the same onnxruntime session. Target: at most 1.2x. Twice: the default test, which
   blends the marks into the few aux images closest to the label, and the test on every aux image. Two models:
   the 28 px Fashion-MNIST CNN of the harness, and the same architecture at 224 px (a model of a photo
   service's size; random weights, which cost the same as trained ones). Rendering the external panel is a fixed cost of every verification
   (the default panel's 99 marks at 512 px, whatever the number of aux images); it is timed apart too.
2. HTTP: scripts/serve_model.py serving each of the two models; the server's own maximum throughput (images per
   second, measured with pre-encoded images at the concurrency limit) against the HTTP backend's at the same
   limit, on real photo crops, timed in turn five times (medians shown). Target: at least 90%. Beside them, a
   bare client that encodes each image as it sends it: what any client pays to turn pixels into requests, so
   the gap between it and the backend is the backend's own cost. Measured twice: with server and client sharing
   every core (the client's encoding then takes cores from the model), and with the server on a core of its own
   and the client on the others, as a model API on another machine would be.
3. Queries to a decision, from a reproduction run's results.json (--results): queries per test of the default
   test against the paper's protocol (2 x Q x n = 2,500 queries per test). Target: at most a third.

Usage: .venv/bin/python scripts/bench_verify.py [--images N] [--results docs/results/defaults/results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.lab.training import SmallCNN, TrainingRun, export_onnx, train  # noqa: E402
from agent.marks.families import DEFAULT_FAMILY, render  # noqa: E402
from agent.verify import engine  # noqa: E402
from agent.verify.http_model import encode_image  # noqa: E402
from agent.verify.images import ImageSet  # noqa: E402
from agent.verify.models import load_model  # noqa: E402
from agent.verify.preprocess import Preprocess, read_sidecar  # noqa: E402

PAPER_QUERIES = 2 * 5 * 250
CONCURRENCY = 4
HTTP_IMAGES = {"28 px CNN": 1000, "224 px CNN": 300}
WARM_UP = 20
"""Images each side sends before it is timed: the first requests pay for connections, threads and the cache."""
ROUNDS = 5
"""Server and backend are timed in turn this many times; the medians are shown. One round's server maximum
moved by a third between runs on an idle machine (901 and 1301 images/s at 28 px)."""
PHOTOS = Path("/usr/share/backgrounds/mate/nature")


def _models(folder: Path) -> dict[str, Path]:
    data = fashion_mnist("train")
    subset = np.random.default_rng(0).choice(len(data), 6000, replace=False)
    small = train(data.take(subset), epochs=1, seed=0)
    export_onnx(small, folder / "small.onnx")
    torch.manual_seed(0)
    large = TrainingRun(SmallCNN(10, 224).eval(), Preprocess(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3),
                        data.classes, 0, 0.0)
    export_onnx(large, folder / "large.onnx")
    return {"28 px CNN": folder / "small.onnx", "224 px CNN": folder / "large.onnx"}


def _aux(size: tuple[int, int], count: int) -> np.ndarray:
    grey = fashion_mnist("test").images[:count]
    if size == (28, 28):
        return grey
    return np.stack([np.asarray(Image.fromarray(image).resize(size))
                     for image in grey])


def _bare_passes(model, aux: np.ndarray, count: int) -> float:
    """Seconds for `count` bare forward passes through the model, in batches of the aux images, after one untimed
    batch (a session's first call at a batch size allocates its memory: at 224 px the first few took twice as
    long per image as the hundredth)."""
    model.predict(aux)
    started = time.perf_counter()
    for first in range(0, count, len(aux)):
        model.predict(aux[:min(len(aux), count - first)])
    return time.perf_counter() - started


def local(models: dict[str, Path], images: int) -> None:
    print(f"1. Local ONNX on the CPU, {images} aux images, one mark, panel of {engine.DEFAULT_PANEL}: the default "
          f"test (the {engine.DEFAULT_FOCUS} images closest to the label) and the test on every image; the "
          "panel's rendering (a fixed cost per verification, whatever the number of images) also shown apart:")
    print(f"   {'model':<12} {'test':<12} {'verify (s)':>11} {'panel (s)':>10} {'bare passes (s)':>16} {'ratio':>6} "
          f"{'ratio less panel':>17}  (target <= 1.2)")
    for name, path in models.items():
        model = load_model(f"onnx:{path}")
        aux = _aux(model.size, images)
        render_mark = partial(render, DEFAULT_FAMILY)
        mark = engine.MarkUnderTest("bench", "bench.example", 0, DEFAULT_FAMILY, render_mark(os.urandom(32)), 0.3,
                                    panel=render_mark)
        started = time.perf_counter()
        engine.render_panel(render_mark, engine.DEFAULT_PANEL, model.size)
        panel_seconds = time.perf_counter() - started
        for test, focus in (("default", engine.DEFAULT_FOCUS), ("every image", None)):
            started = time.perf_counter()
            result = engine.verify(model, ImageSet(model.size, array=aux), [mark],
                                   engine.Options(label=6, focus=focus, sequential=False))
            verify_seconds = time.perf_counter() - started
            bare_seconds = _bare_passes(model, aux, result.queries)
            print(f"   {name:<12} {test:<12} {verify_seconds:>11.2f} {panel_seconds:>10.2f} {bare_seconds:>16.2f} "
                  f"{verify_seconds / bare_seconds:>6.2f} {(verify_seconds - panel_seconds) / bare_seconds:>17.2f}"
                  f"  ({result.queries} queries)")


def _payload(image: np.ndarray) -> bytes:
    """The request body serve_model.py takes for one image."""
    return json.dumps({"image": base64.b64encode(encode_image(image, "png")).decode()}).encode()


async def _bare_throughput(url: str, requests: list) -> float:
    """Images per second of a bare aiohttp client at the concurrency limit: `requests` are request bodies (the
    server's maximum) or images, encoded as they are sent (what encoding costs any client)."""
    import aiohttp

    queue = list(requests)
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        async def worker():
            while queue:
                request = queue.pop()
                body = request if isinstance(request, bytes) else _payload(request)
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
                    await reply.read()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(requests) / (time.perf_counter() - started)


def _photos(size: tuple[int, int], count: int) -> np.ndarray:
    """`count` different real images: random crops of Debian's mate-backgrounds photos at `size`."""
    rng = np.random.default_rng(1)
    photos = [Image.open(path).convert("RGB") for path in sorted(PHOTOS.glob("*.jpg"))]
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(min(photo.size) // 4, min(photo.size)))
        left, top = (int(rng.integers(0, extent - side + 1)) for extent in photo.size)
        crops.append(np.asarray(photo.resize(size, box=(left, top, left + side, top + side))))
    return np.stack(crops)


def _http_rates(path: Path, batch: np.ndarray, server_cores: set[int] | None) -> dict[str, float]:
    """Images per second for the model at `path` on `batch`: the server's maximum, a bare client encoding as it
    sends, the HTTP backend, each the median of ROUNDS, and the medians of the latter two's ratios to the first.
    The server process runs on `server_cores` and this one on the others, or both on every core (None). Each
    round times the server, the bare encoding client, then the backend with an empty cache."""
    every_core = os.sched_getaffinity(0)
    pin = None if server_cores is None else (lambda: os.sched_setaffinity(0, server_cores))
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts/serve_model.py"), str(path), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    try:
        if server_cores is not None:
            os.sched_setaffinity(0, every_core - server_cores)
        url = server.stdout.readline().split()[-1]
        config = json.loads(subprocess.run([sys.executable, str(ROOT / "scripts/serve_model.py"), str(path),
                                            "--print-config"], capture_output=True, text=True, check=True).stdout)
        config["concurrency"] = CONCURRENCY
        payloads = [_payload(image) for image in batch]
        asyncio.run(_bare_throughput(url, payloads[:WARM_UP]))
        server_rates, encoding_rates, client_rates = [], [], []
        for _ in range(ROUNDS):
            server_rates.append(asyncio.run(_bare_throughput(url, payloads[WARM_UP:])))
            encoding_rates.append(asyncio.run(_bare_throughput(url, list(batch[WARM_UP:]))))
            with tempfile.TemporaryDirectory() as home:
                os.environ["ISOTOPES_HOME"] = home
                config_path = Path(home) / "api.json"
                config_path.write_text(json.dumps(config))
                client = load_model(url, config_path)
                client.predict(batch[:WARM_UP])  # warmed like the server: other images, so nothing is cached
                started = time.perf_counter()
                client.predict(batch[WARM_UP:])
                client_rates.append((len(batch) - WARM_UP) / (time.perf_counter() - started))
        rates = {"server": server_rates, "encoding": encoding_rates, "backend": client_rates}
        medians = {name: float(np.median(values)) for name, values in rates.items()}
        for name in ("encoding", "backend"):
            medians[f"{name} share"] = float(np.median(np.array(rates[name]) / np.array(server_rates)))
        return medians
    finally:
        os.sched_setaffinity(0, every_core)
        server.terminate()
        server.wait(10)


def http(models: dict[str, Path]) -> None:
    print(f"2. HTTP (scripts/serve_model.py), concurrency {CONCURRENCY}, real photo crops (nothing cached): "
          "the server's maximum, measured with pre-encoded requests, against the HTTP backend (target >= 90%); "
          f"medians of {ROUNDS} rounds, each timing one then the other")
    cores = sorted(os.sched_getaffinity(0))
    placements = {"sharing every core": None}
    if len(cores) > 1:  # as a remote server would be: its cores are not the client's
        placements[f"server on core {cores[0]} alone"] = {cores[0]}
    for name, path in models.items():
        batch = _photos(read_sidecar(path).preprocess.size, HTTP_IMAGES[name])  # the same images for each placement
        for placement, server_cores in placements.items():
            rates = _http_rates(path, batch, server_cores)
            print(f"   {name:<12} {HTTP_IMAGES[name]} images, {placement}: server maximum {rates['server']:.0f} "
                  f"images/s; bare client encoding as it sends {rates['encoding']:.0f} images/s, "
                  f"{rates['encoding share']:.0%}; HTTP backend {rates['backend']:.0f} images/s, "
                  f"{rates['backend share']:.0%}")


def queries(results: Path) -> None:
    document = json.loads(results.read_text())
    print(f"3. Queries per test ({results}; paper's protocol: {PAPER_QUERIES}):")
    for row in document["rows"]:
        s = row["setting"]
        for name, queries, detection, false in (
                ("default", row["queries_per_test"], row["detection"], row["false_positives"]),
                ("budget", row["budget_queries"], row["budget_detection"], row["budget_false_positives"])):
            print(f"   {s['family']:<11} a={s['alpha']} p={s['fraction']} {name:<8} {queries:>5.0f} queries "
                  f"= {queries / PAPER_QUERIES:.2f}x the paper's: detection {detection['hits']}/{detection['trials']},"
                  f" false positives {false['hits']}/{false['trials']} (target: >= 0.95 and <= 0.05 at <= 0.33x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/defaults/results.json")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as scratch:
        models = _models(Path(scratch))
        local(models, args.images)
        http(models)
    if args.results.exists():
        queries(args.results)
    else:
        print(f"3. (no {args.results}: run scripts/reproduce.py defaults --out {args.results.parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
