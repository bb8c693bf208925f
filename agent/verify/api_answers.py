"""A model API's answers (agent/verify/http_model.py), parsed as its API config says
(agent/verify/api_config.py) into one checked row per image: probabilities, or ranks for top-K and label-only
APIs. Whatever an answer does wrong raises ModelResponseError, saying what.
"""

from __future__ import annotations

import json

import numpy as np

from .api_config import ApiConfig
from .models import to_probabilities
from .preprocess import ModelConfigError


class ModelResponseError(ModelConfigError):
    """A model API that answered (or failed to) in a way its config does not allow; the message says how."""


class ModelUnreachable(ModelResponseError):
    """A model API that gave no answer to parse: refused (HTTP 4xx), down or failing (after the retries)."""


def excerpt(value, limit: int = 160) -> str:
    """An answer body or part of one as a short one-line repr, for error messages."""
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
                                     f"{excerpt(value)}")
    return value


def parse_answer(body: bytes, count: int, config: ApiConfig) -> np.ndarray:
    """The (count, labels) probabilities or ranks in an API's answer to `count` images, checked."""
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError, or bytes that are not text
        raise ModelResponseError(f"the answer is not JSON: {excerpt(body)}") from None
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
    return to_probabilities(scores, config.output, ModelResponseError)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _vector(row, labels: int) -> list[float]:
    if not (isinstance(row, list) and all(_is_number(score) for score in row)):
        raise ModelResponseError(f"a score vector must be a list of numbers, not {excerpt(row)}")
    if len(row) != labels:
        raise ModelResponseError(f"the answer has {len(row)} scores per image; the config names {labels} labels")
    return row


def _listed(row, config: ApiConfig) -> list[tuple[int, float]]:
    """(label index, score) per entry of a list answer, in its order (score 0 where it has none)."""
    label_key, score_key = config.response.label_key, config.response.score_key
    index = {label: position for position, label in enumerate(config.labels)}
    if not (isinstance(row, list) and row):
        raise ModelResponseError(f"a label list must be a non-empty list of objects, not {excerpt(row)}")
    entries = []
    for item in row:
        if not isinstance(item, dict) or label_key not in item or (score_key and not _is_number(item.get(score_key))):
            wanted = f"{label_key!r}" + (f" and a number {score_key!r}" if score_key else "")
            raise ModelResponseError(f"a list entry must be an object with {wanted}, not {excerpt(item)}")
        if item[label_key] not in index:
            raise ModelResponseError(f"unknown label {item[label_key]!r} in the answer; the config names "
                                     f"{', '.join(config.labels)}")
        entries.append((index[item[label_key]], float(item[score_key]) if score_key else 0.0))
    if len({label for label, _ in entries}) != len(entries):
        raise ModelResponseError(f"the answer lists a label twice: {excerpt(row)}")
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
