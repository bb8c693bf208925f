"""A suspect model behind an HTTP API: one more backend of the Model interface (agent/verify/models.py).

``load_model("https://host/predict", api_config=Path("api.toml"))`` reads an API config (agent/verify/api_config.py)
saying how images are sent, where the scores are in an answer, and the model's label names. Images go out encoded
at the model's size (on worker threads, while earlier requests are out); each answer is parsed into one row per
image and checked (agent/verify/api_answers.py), and cached on disk (agent/verify/response_cache.py), so a rerun
never pays for the same query twice.
docs/model-api.md has the full description.

Every problem raises ModelConfigError, or ModelResponseError for what an API answered, naming the field, file or
failure. ``predict`` is synchronous: it runs its own event loop (aiohttp), so call it from any thread that is not
already running one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
import numpy as np
from PIL import Image
from yarl import URL

from .api_answers import ModelResponseError, ModelUnreachable, excerpt, parse_answer
from .api_config import FORMATS, ApiConfig, RequestFormat
from .preprocess import ModelConfigError
from .response_cache import ResponseCache

MAX_BACKOFF_S = 60.0


ENCODER_OPTIONS = {"jpeg": {"quality": 95}, "png": {"compress_level": 1}}
"""PNG at zlib's fastest level: the same pixels, and a 224 px photo encodes in 4 ms instead of 21 ms at Pillow's
default level 6 for 13% more bytes, so that the client keeps up with the model it queries."""


INLINE_ENCODE_PIXELS = 48 * 48
"""Requests of at most this many pixels are encoded on the event loop itself. A 28 px photo encodes in 0.13 ms,
less than handing it to a thread and back costs, and the event loop's own work per request is about 0.25 ms; a
224 px one takes 4 ms, which would hold up every answer waiting on the loop. Measured both ways against
scripts/bench_verify.py's server: inline encoding moved the 28 px share of the server's maximum from 0.76 to 0.91,
and took the 224 px share from 0.98 down to 0.76."""


def encode_image(image: np.ndarray, image_format: str) -> bytes:
    """One (H, W, 3) uint8 RGB image as the bytes a request carries."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, FORMATS[image_format], **ENCODER_OPTIONS[image_format])
    return buffer.getvalue()


def pixel_digest(image: np.ndarray) -> str:
    """The cache key of one image: sha256 of its pixels and shape (the format they are sent in is part of the
    model's key), so looking an image up needs no encoding."""
    return hashlib.sha256(f"{image.shape}".encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


def _request_body(request: RequestFormat, images: list[bytes]) -> dict:
    """Keyword arguments of ClientSession.post that send these encoded images (made afresh for every try)."""
    mime = f"image/{request.format}"
    if request.encoding == "raw":
        return {"data": images[0], "headers": {"Content-Type": mime}}
    if request.encoding == "multipart":
        form = aiohttp.FormData()
        for index, image in enumerate(images):
            form.add_field(request.field, image, filename=f"image{index}.{request.format}", content_type=mime)
        return {"data": form}
    encoded = [base64.b64encode(image).decode("ascii") for image in images]
    return {"json": {request.field: encoded if request.batch > 1 else encoded[0]}}


def _retry_after(headers) -> float:
    """Seconds a Retry-After header asks for (a number or an HTTP date); 0 without one."""
    value = headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


CACHE_FLUSH = 256
"""Answers written to the disk cache in one transaction."""


class HttpModel:
    """A model API behind the Model interface. ``requests`` counts HTTP requests sent (retries included),
    ``retries`` the retries among them, ``cache_hits`` the images answered from the disk cache."""

    device = "cpu"  # where blending for this model runs

    def __init__(self, url: str, config: ApiConfig):
        if URL(url).scheme not in ("http", "https") or not URL(url).host:
            raise ModelConfigError(f"{url!r} is not an http(s) URL with a host")
        self.url, self.config = url, config
        self.labels, self.size = config.labels, config.size
        self.output = "ranks" if config.output == "ranks" else "probabilities"
        self.headers = {name: prefix + _environment(variable, f"{config.source}: headers.{name}")
                        for name, (variable, prefix) in config.headers.items()}
        self.key = hashlib.sha256(f"{url}\n{config.identity}".encode()).hexdigest()
        self.requests = self.retries = self.cache_hits = 0
        self._next_start = 0.0  # time.monotonic() at which the rate limit lets the next request start

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB at the model's size -> (N, len(labels)) probabilities or ranks."""
        if images.ndim != 4 or images.shape[1:] != (*self.size, 3) or images.dtype != np.uint8:
            raise ValueError(f"expected (N, {self.size[0]}, {self.size[1]}, 3) uint8 images, "
                             f"got {images.shape} {images.dtype}")
        digests = [pixel_digest(image) for image in images]
        with closing(ResponseCache()) as cache:
            rows = cache.rows(self.key, digests)
            self.cache_hits += sum(digest in rows for digest in digests)
            missing = {digest: image for digest, image in zip(digests, images) if digest not in rows}
            if missing:
                try:
                    asyncio.run(self._fetch(list(missing.items()), rows, cache))
                except ModelResponseError as exc:
                    raise type(exc)(f"{self.url}: {exc}") from None
        return np.array([rows[digest] for digest in digests]).reshape(len(images), len(self.labels))

    async def _fetch(self, images: list[tuple[str, np.ndarray]], rows: dict, cache: ResponseCache) -> None:
        """Ask for every (digest, image) in requests of `batch` images, `concurrency` at a time, adding each
        answer's rows to `rows` and to the cache as it comes. Small requests are encoded on the event loop as
        they go out (INLINE_ENCODE_PIXELS); larger ones in order on worker threads (Pillow releases the GIL)
        while earlier ones are out, so a worker never waits to encode its next one."""
        batch = self.config.request.batch
        requests = [images[start:start + batch] for start in range(0, len(images), batch)]
        inline = batch * images[0][1].shape[0] * images[0][1].shape[1] <= INLINE_ENCODE_PIXELS
        unsaved: dict = {}  # answers not yet in the cache: written CACHE_FLUSH at a time, so that SQLite
        # commits do not stall the event loop after every request

        async def worker(session: aiohttp.ClientSession) -> None:
            for request, encoding in pending:  # shared by the workers: each takes the next request
                encoded = self._encode(request) if encoding is None else await encoding
                answer = dict(zip((digest for digest, _ in request), await self._ask(session, encoded)))
                rows.update(answer)
                unsaved.update(answer)
                if len(unsaved) >= CACHE_FLUSH:
                    cache.store(self.key, unsaved)
                    unsaved.clear()

        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            # one core is left to the event loop, which must answer each reply at once to keep the API busy
            encoder = None if inline else ThreadPoolExecutor(
                max(1, min(self.config.concurrency, (os.cpu_count() or 1) - 1)))
            pending = iter([(request, None if encoder is None else loop.run_in_executor(encoder, self._encode, request))
                            for request in requests])
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(self.config.concurrency):
                        group.create_task(worker(session))
            except ExceptionGroup as failures:
                raise failures.exceptions[0] from None
            finally:
                if encoder is not None:
                    encoder.shutdown(wait=False, cancel_futures=True)
                cache.store(self.key, unsaved)  # what was paid for stays paid for, even when a request failed

    def _encode(self, request: list[tuple[str, np.ndarray]]) -> list[bytes]:
        return [encode_image(image, self.config.request.format) for _, image in request]

    async def _ask(self, session: aiohttp.ClientSession, images: list[bytes]) -> np.ndarray:
        """One request's answer rows, retrying after 429, 5xx, timeouts and dropped connections."""
        config = self.config
        failure, wait = "", 0.0  # why the last attempt failed, and how long the server asked us to wait
        for attempt in range(config.retries + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(max(wait, min(config.backoff * 2 ** (attempt - 1), MAX_BACKOFF_S)))
            await self._rate_limit()
            self.requests += 1
            try:
                async with session.post(self.url, **_request_body(config.request, images)) as response:
                    body = await response.read()
                    if response.status < 400:
                        return parse_answer(body, len(images), config)
                    if response.status != 429 and response.status < 500:
                        raise ModelUnreachable(f"HTTP {response.status}: {excerpt(body)}")
                    failure, wait = f"HTTP {response.status} {excerpt(body)}", _retry_after(response.headers)
            except TimeoutError:
                failure, wait = f"no answer within the timeout of {config.timeout} s", 0.0
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                failure, wait = f"connection failed ({exc})", 0.0
        retries = f"{config.retries} {'retry' if config.retries == 1 else 'retries'}"
        raise ModelUnreachable(f"gave up after {retries}; the last failure: {failure}")

    async def _rate_limit(self) -> None:
        if self.config.rate_limit:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 1 / self.config.rate_limit
            await asyncio.sleep(start - now)


def _environment(variable: str, where: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise ModelConfigError(f"{where}: the environment variable {variable} is not set")
    return value
