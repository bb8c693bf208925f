"""A suspect model behind an HTTP API: one more backend of the Model interface (agent/verify/models.py).

``load_model("https://host/predict", api_config=Path("api.toml"))`` reads an API config (JSON or TOML, by
suffix) saying how images are sent, where the scores are in an answer, and the model's label names. Images go out
encoded at the model's size; each answer is parsed into one row per image, checked, and cached on disk, so a rerun
never pays for the same query twice. docs/model-api.md has the full description; the config in brief::

    preset = "scores-vector"      # optional: a file in api_presets/ whose fields this config overrides
    labels = ["T-shirt/top", ...] # in the order of the API's score vector
    output = "probabilities"      # or "logits" (softmax applied), or "ranks" for top-K and label-only APIs
    concurrency = 4               # requests in flight at most
    rate_limit = 10               # requests started per second at most (default: no limit)
    timeout = 30                  # seconds per request
    retries = 5                   # after a 429, a 5xx, a timeout or a dropped connection, waiting
    backoff = 0.5                 # backoff * 2**attempt seconds (at most 60), or longer if Retry-After says so

    [input]                       # as in a model sidecar (preprocess.py): only size matters for an API
    size = [28, 28]

    [request]
    encoding = "json-base64"      # {field: BASE64}; "multipart": a form upload; "raw": the image as the body
    field = "image"
    format = "png"                # or "jpeg" (quality 95)
    batch = 1                     # images per request (json-base64 > 1: a list of BASE64; multipart: one part each)

    [response]
    kind = "vector"               # scores in label order; "list": [{label_key: NAME, score_key: SCORE}, ...]
    path = "probabilities"        # dotted path to the vector or list ("predictions.0"; "" is the whole body),
                                  # for a batch request to the list of them
    label_key = "label"           # list only
    score_key = "score"           # list only; omit it for label-only lists (ranked by their order)

    [headers.Authorization]       # secrets by environment variable name only
    env = "MY_API_TOKEN"
    prefix = "Bearer "

A list answer gives ranks (``output = "ranks"``), or probabilities when every answer lists every label with its
score. Every problem raises ModelConfigError, or ModelResponseError for what an API answered, naming the field,
file or failure. ``predict`` is synchronous: it runs its own event loop (aiohttp), so call it from any thread
that is not already running one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import sqlite3
import time
import tomllib
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image
from yarl import URL

from .. import paths
from .models import softmax
from .preprocess import ModelConfigError, read_card

ENCODINGS = ("json-base64", "multipart", "raw")
FORMATS = {"png": "PNG", "jpeg": "JPEG"}
RESPONSE_KINDS = ("vector", "list")
API_OUTPUTS = ("probabilities", "logits", "ranks")
SUM_TOLERANCE = 1e-3  # how far from 1 a row of probabilities may sum
MAX_BACKOFF_S = 60.0
PRESETS = resources.files(__package__) / "api_presets"

_FIELDS = ("preset", "labels", "input", "output", "request", "response", "headers", "concurrency", "rate_limit",
           "timeout", "retries", "backoff")
_REQUIRED = object()


class ModelResponseError(ModelConfigError):
    """A model API that answered (or failed to) in a way its config does not allow; the message says how."""


@dataclass(frozen=True)
class RequestFormat:
    encoding: str
    field: str
    format: str
    batch: int


@dataclass(frozen=True)
class ResponseFormat:
    kind: str
    path: str
    label_key: str
    score_key: str | None


@dataclass(frozen=True)
class ApiConfig:
    """A checked API config: what to send, where the scores are in an answer, and how hard to try."""

    source: str
    labels: tuple[str, ...]
    size: tuple[int, int]
    output: str
    request: RequestFormat
    response: ResponseFormat
    headers: dict[str, tuple[str, str]]  # header name -> (environment variable, prefix)
    concurrency: int
    rate_limit: float | None
    timeout: float
    retries: int
    backoff: float

    @property
    def identity(self) -> str:
        """What decides the answers, canonically (no transport settings, and no secrets: only variable names)."""
        request = asdict(self.request)
        del request["batch"]
        return json.dumps({"labels": self.labels, "size": self.size, "output": self.output, "request": request,
                           "response": asdict(self.response), "headers": self.headers}, sort_keys=True)


class _Table:
    """One table of a config, read field by field; errors name the field."""

    def __init__(self, data, name: str, fields: tuple[str, ...]):
        if not isinstance(data, dict):
            raise ModelConfigError(f"{name or 'the config'} must be a table of fields")
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ModelConfigError(f"unknown field {self._path(name, unknown[0])} (known: {', '.join(fields)})")
        self.data, self.name = data, name

    @staticmethod
    def _path(name: str, field: str) -> str:
        return f"{name}.{field}" if name else field

    def get(self, field: str, default=_REQUIRED):
        if field not in self.data and default is _REQUIRED:
            raise ModelConfigError(f"{self._path(self.name, field)} is missing")
        return self.data.get(field, default)

    def choice(self, field: str, choices, default=_REQUIRED) -> str:
        value = self.get(field, default)
        if value not in choices:
            raise ModelConfigError(f"{self._path(self.name, field)} must be one of {', '.join(choices)}, "
                                   f"not {value!r}")
        return value

    def text(self, field: str, default=_REQUIRED) -> str:
        value = self.get(field, default)
        if not isinstance(value, str):
            raise ModelConfigError(f"{self._path(self.name, field)} must be a string, not {value!r}")
        return value

    def number(self, field: str, default=_REQUIRED, *, whole: bool = False, zero: bool = False) -> float:
        value = self.get(field, default)
        kind = int if whole else (int, float)
        if not isinstance(value, kind) or isinstance(value, bool) or value < 0 or (value == 0 and not zero):
            wanted = ("a whole number" if whole else "a number") + (" >= 0" if zero else " > 0")
            raise ModelConfigError(f"{self._path(self.name, field)} must be {wanted}, not {value!r}")
        return value


def preset_names() -> list[str]:
    return sorted(entry.name.removesuffix(".json") for entry in PRESETS.iterdir() if entry.name.endswith(".json"))


def _merged(base: dict, override: dict) -> dict:
    """`override` on top of `base`, tables merged field by field."""
    merged = dict(base)
    for key, value in override.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_tables else value
    return merged


def _read_document(path: Path) -> dict:
    parsers = {".json": (json.loads, json.JSONDecodeError), ".toml": (tomllib.loads, tomllib.TOMLDecodeError)}
    if path.suffix not in parsers:
        raise ModelConfigError(f"{path}: an API config is a .json or .toml file")
    parse, syntax_error = parsers[path.suffix]
    try:
        document = parse(path.read_text())
    except OSError as exc:
        raise ModelConfigError(f"{path} cannot be read ({exc.strerror})") from None
    except syntax_error as exc:
        raise ModelConfigError(f"{path} is not valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(document, dict):
        raise ModelConfigError(f"{path} must hold an object of fields")
    return document


def _with_preset(document: dict) -> dict:
    if "preset" not in document:
        return document
    name = document["preset"]
    if name not in preset_names():
        raise ModelConfigError(f"preset must be one of {', '.join(preset_names())}, not {name!r}")
    preset = json.loads((PRESETS / f"{name}.json").read_text())
    return _merged(preset, {key: value for key, value in document.items() if key != "preset"})


def read_api_config(path: Path) -> ApiConfig:
    """Read and check an API config (with its preset); every error names the file and the field."""
    document = _read_document(path)
    try:
        document = _with_preset(document)
        top = _Table(document, "", _FIELDS)
        card = read_card({"input": top.get("input"), "labels": top.get("labels")}, str(path))
        request = _Table(top.get("request"), "request", ("encoding", "field", "format", "batch"))
        response = _Table(top.get("response"), "response", ("kind", "path", "label_key", "score_key"))
        config = ApiConfig(
            source=str(path), labels=card.labels, size=card.preprocess.size,
            output=top.choice("output", API_OUTPUTS, "probabilities"),
            request=RequestFormat(request.choice("encoding", ENCODINGS), request.text("field", "image"),
                                  request.choice("format", tuple(FORMATS), "png"),
                                  request.number("batch", 1, whole=True)),
            response=ResponseFormat(response.choice("kind", RESPONSE_KINDS), response.text("path"),
                                    response.text("label_key", "label"),
                                    None if response.get("score_key", None) is None else response.text("score_key")),
            headers=_headers(top.get("headers", {})),
            concurrency=top.number("concurrency", 4, whole=True),
            rate_limit=top.number("rate_limit") if "rate_limit" in document else None,
            timeout=top.number("timeout", 30), retries=top.number("retries", 5, whole=True, zero=True),
            backoff=top.number("backoff", 0.5, zero=True))
        _check_combination(config)
        return config
    except ModelConfigError as exc:
        message = str(exc)  # read_card's errors name the file already
        raise ModelConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _headers(data) -> dict[str, tuple[str, str]]:
    if not isinstance(data, dict):
        raise ModelConfigError("headers must be a table of header names")
    headers = {}
    for name, value in data.items():
        header = _Table(value, f"headers.{name}", ("env", "prefix"))
        headers[name] = (header.text("env"), header.text("prefix", ""))
    return headers


def _check_combination(config: ApiConfig) -> None:
    if config.request.encoding == "raw" and config.request.batch != 1:
        raise ModelConfigError("request.batch must be 1 with request.encoding raw (one image per body)")
    if config.response.kind == "vector" and config.output == "ranks":
        raise ModelConfigError("output ranks needs response.kind list (a vector answer holds scores)")
    if config.response.kind == "list" and config.output != "ranks" and config.response.score_key is None:
        raise ModelConfigError(f"output {config.output} needs response.score_key (a label-only list gives ranks)")


def encode_image(image: np.ndarray, image_format: str) -> bytes:
    """One (H, W, 3) uint8 RGB image as the bytes a request carries."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, FORMATS[image_format], **({"quality": 95} if image_format == "jpeg" else {}))
    return buffer.getvalue()


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


def _excerpt(value, limit: int = 160) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _at_path(document, path: str):
    value = document
    for step in path.split(".") if path else ():
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise ModelResponseError(f"response.path {path!r} is not in the answer: no {step!r} in "
                                     f"{_excerpt(value)}")
    return value


def parse_answer(body: bytes, count: int, config: ApiConfig) -> np.ndarray:
    """The (count, labels) probabilities or ranks in an API's answer to `count` images, checked."""
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError, or bytes that are not text
        raise ModelResponseError(f"the answer is not JSON: {_excerpt(body)}") from None
    value = _at_path(document, config.response.path)
    batch = isinstance(value, list) and bool(value) and all(isinstance(row, list) for row in value)
    rows = value if batch else [value]
    if len(rows) != count:
        raise ModelResponseError(f"the answer holds {len(rows)} score rows for a request of {count} images")
    if config.response.kind == "list":
        listed = [_listed(row, config) for row in rows]
        if config.output == "ranks":
            return np.array([_ranks(entries, len(config.labels)) for entries in listed])
        scores = np.array([_complete(entries, config.labels) for entries in listed])
    else:
        scores = np.array([_vector(row, len(config.labels)) for row in rows])
    if not np.isfinite(scores).all():
        raise ModelResponseError("the answer holds NaN or infinite scores")
    if config.output == "logits":
        return softmax(scores)
    sums = scores.sum(axis=1)
    if np.abs(sums - 1).max() > SUM_TOLERANCE or scores.min() < 0:
        raise ModelResponseError(f"the scores are not probabilities (row sums {sums.min():.6g} to {sums.max():.6g}, "
                                 f"least score {scores.min():.6g}); use output = logits for raw scores")
    return scores


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _vector(row, labels: int) -> list[float]:
    if not (isinstance(row, list) and all(_is_number(score) for score in row)):
        raise ModelResponseError(f"a score vector must be a list of numbers, not {_excerpt(row)}")
    if len(row) != labels:
        raise ModelResponseError(f"the answer has {len(row)} scores per image; the config names {labels} labels")
    return row


def _listed(row, config: ApiConfig) -> list[tuple[int, float]]:
    """(label index, score) per entry of a list answer, in its order (score 0 where it has none)."""
    label_key, score_key = config.response.label_key, config.response.score_key
    index = {label: position for position, label in enumerate(config.labels)}
    if not (isinstance(row, list) and row):
        raise ModelResponseError(f"a label list must be a non-empty list of objects, not {_excerpt(row)}")
    entries = []
    for item in row:
        if not isinstance(item, dict) or label_key not in item or (score_key and not _is_number(item.get(score_key))):
            wanted = f"{label_key!r}" + (f" and a number {score_key!r}" if score_key else "")
            raise ModelResponseError(f"a list entry must be an object with {wanted}, not {_excerpt(item)}")
        if item[label_key] not in index:
            raise ModelResponseError(f"unknown label {item[label_key]!r} in the answer; the config names "
                                     f"{', '.join(config.labels)}")
        entries.append((index[item[label_key]], float(item[score_key]) if score_key else 0.0))
    if len({label for label, _ in entries}) != len(entries):
        raise ModelResponseError(f"the answer lists a label twice: {_excerpt(row)}")
    return entries


def _ranks(entries: list[tuple[int, float]], labels: int) -> np.ndarray:
    """Rank 1 for the best-scored entry (list order among equal scores), K + 1 for every label not listed."""
    if not np.isfinite([score for _, score in entries]).all():
        raise ModelResponseError("the answer holds NaN or infinite scores")
    ranks = np.full(labels, len(entries) + 1.0)
    for rank, (label, _) in enumerate(sorted(entries, key=lambda entry: -entry[1]), start=1):
        ranks[label] = rank
    return ranks


def _complete(entries: list[tuple[int, float]], labels: tuple[str, ...]) -> list[float]:
    if len(entries) != len(labels):
        raise ModelResponseError(f"the answer lists {len(entries)} of {len(labels)} labels; full probabilities "
                                 "need every label with its score (use output = ranks for a top-K API)")
    scores = [0.0] * len(labels)
    for label, score in entries:
        scores[label] = score
    return scores


def _retry_after(headers) -> float:
    """Seconds a Retry-After header asks for (a number or an HTTP date); 0 without one."""
    value = headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


class ResponseCache:
    """Parsed answer rows of model APIs, keyed by (model key, sha256 of the image bytes sent), in SQLite."""

    def __init__(self):
        folder = paths.data_dir() / "cache"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.connection = sqlite3.connect(folder / "model-responses.db", timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = NORMAL")  # a cache: a power cut may cost the last answers
        self.connection.execute("CREATE TABLE IF NOT EXISTS answers (model TEXT NOT NULL, image TEXT NOT NULL, "
                                "row BLOB NOT NULL, PRIMARY KEY (model, image))")

    def rows(self, model: str, images: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for image in images:
            row = self.connection.execute("SELECT row FROM answers WHERE model = ? AND image = ?",
                                          (model, image)).fetchone()
            if row is not None:
                found[image] = np.frombuffer(row[0], np.float64)
        return found

    def store(self, model: str, rows: dict[str, np.ndarray]) -> None:
        self.connection.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                                    [(model, image, row.astype(np.float64).tobytes()) for image, row in rows.items()])

    def close(self) -> None:
        self.connection.close()


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
        encoded = [encode_image(image, self.config.request.format) for image in images]
        digests = [hashlib.sha256(data).hexdigest() for data in encoded]
        with closing(ResponseCache()) as cache:
            rows = cache.rows(self.key, digests)
            self.cache_hits += sum(digest in rows for digest in digests)
            missing = {digest: data for digest, data in zip(digests, encoded) if digest not in rows}
            if missing:
                try:
                    asyncio.run(self._fetch(list(missing.items()), rows, cache))
                except ModelResponseError as exc:
                    raise ModelResponseError(f"{self.url}: {exc}") from None
        return np.array([rows[digest] for digest in digests]).reshape(len(images), len(self.labels))

    async def _fetch(self, images: list[tuple[str, bytes]], rows: dict, cache: ResponseCache) -> None:
        """Ask for every (digest, image bytes) in requests of `batch` images, `concurrency` at a time, adding
        each answer's rows to `rows` and to the cache as it comes."""
        batch = self.config.request.batch
        pending = iter([images[start:start + batch] for start in range(0, len(images), batch)])

        async def worker(session: aiohttp.ClientSession) -> None:
            for request in pending:  # shared by the workers: each takes the next request
                answer = dict(zip((digest for digest, _ in request),
                                  await self._ask(session, [data for _, data in request])))
                cache.store(self.key, answer)
                rows.update(answer)

        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as session:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(self.config.concurrency):
                        group.create_task(worker(session))
            except ExceptionGroup as failures:
                raise failures.exceptions[0] from None

    async def _ask(self, session: aiohttp.ClientSession, images: list[bytes]) -> np.ndarray:
        """One request's answer rows, retrying after 429, 5xx, timeouts and dropped connections."""
        config = self.config
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
                        raise ModelResponseError(f"HTTP {response.status}: {_excerpt(body)}")
                    failure, wait = f"HTTP {response.status} {_excerpt(body)}", _retry_after(response.headers)
            except TimeoutError:
                failure, wait = f"no answer within the timeout of {config.timeout} s", 0.0
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                failure, wait = f"connection failed ({exc})", 0.0
        retries = f"{config.retries} {'retry' if config.retries == 1 else 'retries'}"
        raise ModelResponseError(f"gave up after {retries}; the last failure: {failure}")

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
