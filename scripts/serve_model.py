#!/usr/bin/env python3
"""Serve an exported ONNX model (with its sidecar JSON) as an HTTP model API, answering in the shape of one of
agent/verify/api_config.py's presets, optionally with injected faults (for the tests and for trying a client).

    .venv/bin/python scripts/serve_model.py MODEL.onnx [--shape vector|top-k|labels] [--top-k K] [--port 0]
    .venv/bin/python scripts/serve_model.py MODEL.onnx --shape top-k --print-config > api.json

The first stdout line is ``serving http://127.0.0.1:PORT/predict``. POST /predict takes a JSON body
{"image": BASE64} (or a list of them: a batch), a multipart upload (one part named "image" per image; several
make a batch) or the raw image bytes, and answers, per image:

    vector  {"probabilities": [p, ...]}               preset scores-vector (a batch: a list of vectors)
    top-k   [{"label": NAME, "score": p}, ...]         preset label-score-list, the K best (a batch: a list of lists)
    labels  [{"label": NAME}, ...]                     preset label-list, the K best without scores

GET /health answers {"status": "ok", "requests": N, "most_in_flight": N, "faults": {KIND: N}}. --print-config
prints the API config that matches the shape (the preset, the model's labels and size) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiohttp import web
from PIL import Image

from agent.verify.models import Model, load_model

PRESETS = {"vector": "scores-vector", "top-k": "label-score-list", "labels": "label-list"}
MALFORMS = ("not-json", "wrong-shape", "nan", "not-normalised", "unknown-label")


@dataclass(frozen=True)
class Faults:
    """What the server gets wrong. The rates are chances per request, drawn from one seeded RNG; they add up."""

    fail_429: float = 0.0
    fail_500: float = 0.0
    slow: float = 0.0  # answer only after slow_seconds
    slow_seconds: float = 5.0
    drop: float = 0.0  # close the connection without an answer
    seed: int = 0
    retry_after: int | None = None  # the Retry-After header of a 429 or 503
    down_after: int | None = None  # answer 503 to every request after this many
    malform: str | None = None  # one of MALFORMS: every answer broken that way

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for kind, rate in (("429", self.fail_429), ("500", self.fail_500), ("slow", self.slow), ("drop", self.drop)):
            if roll < rate:
                return kind
            roll -= rate
        return None


def api_config(model: Model, shape: str, top_k: int) -> dict:
    """The API config for a client of this server: the shape's preset plus the model's labels and size."""
    config = {"preset": PRESETS[shape], "labels": list(model.labels), "input": {"size": list(model.size)}}
    if shape == "top-k" and top_k >= len(model.labels):
        config["output"] = "probabilities"  # every label comes with its score
    return config


def answer(shape: str, scores: np.ndarray, labels: tuple[str, ...], top_k: int) -> list:
    """One answer per image in the shape's format (a row of scores, or a list of the best labels)."""
    if shape == "vector":
        return [[float(score) for score in row] for row in scores]
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return [[{"label": labels[i], "score": float(row[i])} if shape == "top-k" else {"label": labels[i]}
             for i in order] for row, order in zip(scores, best)]


def malformed(kind: str | None, scores: np.ndarray, labels: tuple[str, ...]):
    """The model's scores and labels as an API broken in the way `kind` names would answer them."""
    if kind == "wrong-shape":
        return scores[:, :-1], labels
    if kind == "nan":
        return np.where(np.arange(scores.shape[1]) == 0, np.nan, scores), labels
    if kind == "not-normalised":
        return scores * 2, labels
    if kind == "unknown-label":
        return scores, tuple(f"{label} (renamed)" for label in labels)
    return scores, labels


class RequestError(ValueError):
    """A request this server cannot answer (400)."""


async def read_images(request: web.Request, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """The request's images as (N, H, W, 3) uint8, and whether it asked as a batch."""
    if request.content_type == "application/json":
        document = await request.json()
        value = document.get("image") if isinstance(document, dict) else None
        batch = isinstance(value, list)
        try:
            blobs = [base64.b64decode(text, validate=True) for text in (value if batch else [value])]
        except (binascii.Error, TypeError):
            raise RequestError('"image" must be base64 text or a list of it') from None
    elif request.content_type == "multipart/form-data":
        blobs = [part.file.read() for part in (await request.post()).getall("image", [])]
        batch = len(blobs) > 1
    else:
        blobs, batch = [await request.read()], False
    if not blobs:
        raise RequestError("no image in the request")
    try:
        images = [np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) for blob in blobs]
    except OSError:  # PIL's UnidentifiedImageError, or a truncated image
        raise RequestError("an image cannot be decoded") from None
    if any(image.shape[:2] != size for image in images):
        raise RequestError(f"images must be {size[1]}x{size[0]} pixels")
    return np.stack(images), batch


def build_app(model: Model, shape: str = "vector", top_k: int = 5, faults: Faults = Faults(),
              token: str | None = None) -> web.Application:
    """The model API: POST /predict and GET /health. With `token`, requests need "Authorization: Bearer TOKEN"."""
    rng = random.Random(faults.seed)
    stats = {"requests": 0, "in_flight": 0, "most_in_flight": 0,
             "faults": {kind: 0 for kind in ("429", "500", "slow", "drop", "down")}}
    retry_after = {} if faults.retry_after is None else {"Retry-After": str(faults.retry_after)}

    async def predict(request: web.Request) -> web.StreamResponse:
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["most_in_flight"] = max(stats["most_in_flight"], stats["in_flight"])
        try:
            return await respond(request)
        finally:
            stats["in_flight"] -= 1

    async def respond(request: web.Request) -> web.StreamResponse:
        if faults.down_after is not None and stats["requests"] > faults.down_after:
            stats["faults"]["down"] += 1
            return web.json_response({"error": "down"}, status=503, headers=retry_after)
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        try:
            images, batch = await read_images(request, model.size)
        except ValueError as exc:  # a RequestError, or a JSON body that is not JSON
            return web.json_response({"error": str(exc)}, status=400)
        fault = faults.draw(rng)
        if fault:
            stats["faults"][fault] += 1
        if fault == "429":
            return web.json_response({"error": "too many requests"}, status=429, headers=retry_after)
        if fault == "500":
            return web.json_response({"error": "internal error (injected)"}, status=500)
        if fault == "drop":
            request.transport.close()
            return web.Response()
        if fault == "slow":
            await asyncio.sleep(faults.slow_seconds)
        if faults.malform == "not-json":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        scores = await asyncio.get_running_loop().run_in_executor(None, model.predict, images)
        rows = answer(shape, *malformed(faults.malform, scores, model.labels), top_k)
        body = rows if batch else rows[0]
        return web.json_response({"probabilities": body} if shape == "vector" else body)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **stats})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/predict", predict)
    app.router.add_get("/health", health)
    return app


async def start(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve `app` on host:port (0: a free port); returns the runner (to clean up) and the /predict URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, f"http://{host}:{runner.addresses[0][1]}/predict"


async def serve(app: web.Application, host: str, port: int) -> None:
    runner, url = await start(app, host, port)
    print(f"serving {url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an ONNX model with its sidecar JSON beside it")
    parser.add_argument("--shape", choices=PRESETS, default="vector", help="the answer format (default vector)")
    parser.add_argument("--top-k", type=int, default=5, help="labels per answer of top-k and labels (default 5)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN'")
    parser.add_argument("--print-config", action="store_true", help="print the matching API config and exit")
    faults = parser.add_argument_group("injected faults (rates are chances per request)")
    faults.add_argument("--fail-429", type=float, default=0.0, metavar="RATE")
    faults.add_argument("--fail-500", type=float, default=0.0, metavar="RATE")
    faults.add_argument("--slow", type=float, default=0.0, metavar="RATE")
    faults.add_argument("--slow-seconds", type=float, default=5.0, metavar="S")
    faults.add_argument("--drop", type=float, default=0.0, metavar="RATE", help="close without answering")
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument("--retry-after", type=int, metavar="S", help="send Retry-After with a 429 or 503")
    faults.add_argument("--down-after", type=int, metavar="N", help="answer 503 after N requests")
    faults.add_argument("--malform", choices=MALFORMS, help="break every answer this way")
    args = parser.parse_args()
    model = load_model(f"onnx:{args.model}")
    if args.print_config:
        print(json.dumps(api_config(model, args.shape, args.top_k), indent=1))
        return
    app = build_app(model, args.shape, args.top_k, Faults(
        args.fail_429, args.fail_500, args.slow, args.slow_seconds, args.drop, args.fault_seed, args.retry_after,
        args.down_after, args.malform), args.token)
    try:
        asyncio.run(serve(app, args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
