"""The API config of a model behind an HTTP API (agent/verify/http_model.py): how images are sent, where the
scores are in an answer, the model's label names, and how hard to try.

``read_api_config(Path("api.toml"))`` reads one (JSON or TOML, by suffix), on top of its preset if it names one,
and checks it; every problem raises ModelConfigError naming the file and the field. docs/model-api.md has the
full description; the config in brief::

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
score.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from .preprocess import ModelConfigError, read_card

ENCODINGS = ("json-base64", "multipart", "raw")
FORMATS = {"png": "PNG", "jpeg": "JPEG"}
RESPONSE_KINDS = ("vector", "list")
API_OUTPUTS = ("probabilities", "logits", "ranks")
PRESETS = resources.files(__package__) / "api_presets"

_FIELDS = ("preset", "labels", "input", "output", "request", "response", "headers", "concurrency", "rate_limit",
           "timeout", "retries", "backoff")
_REQUIRED = object()


@dataclass(frozen=True)
class RequestFormat:
    """How images go out: the [request] table."""

    encoding: str
    field: str
    format: str
    batch: int


@dataclass(frozen=True)
class ResponseFormat:
    """Where an answer holds the scores: the [response] table."""

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
    """The presets a config may name: the files in api_presets/, without .json."""
    return sorted(entry.name.removesuffix(".json") for entry in PRESETS.iterdir() if entry.name.endswith(".json"))


def _preset(name: str) -> dict:
    return json.loads((PRESETS / f"{name}.json").read_text())


def preset_description(name: str) -> str:
    """What a preset's answers look like, in a line."""
    return _preset(name)["description"]


def _merged(base: dict, override: dict) -> dict:
    """`override` on top of `base`, tables merged field by field."""
    merged = dict(base)
    for key, value in override.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_tables else value
    return merged


def read_document(path: Path) -> dict:
    """A config file's fields as written (JSON or TOML, by suffix), before its preset and checks."""
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
    preset = _preset(name)
    del preset["description"]
    return _merged(preset, {key: value for key, value in document.items() if key != "preset"})


def read_api_config(path: Path) -> ApiConfig:
    """Read and check an API config (with its preset); every error names the file and the field."""
    document = read_document(path)
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
