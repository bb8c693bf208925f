"""A suspect model, whatever serves it, is one small interface: a batch of RGB images in, one row of label
probabilities per image out, plus its label names and input size (like ART's BlackBoxClassifier).

Backends: ``onnx:PATH`` (onnxruntime, with the CUDA execution provider when the machine has one) and
``torchscript:PATH`` (torch, on CUDA when present). Each reads its preprocessing and label names from the
sidecar JSON beside the model file (agent/verify/preprocess.py). onnxruntime and torch are imported only when
a model of theirs is loaded. A model behind an HTTP API is the third backend (agent/verify/http_model.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .preprocess import ModelCard, ModelConfigError, read_sidecar

BATCH = 256


OUTPUTS = ("probabilities", "ranks")
"""What ``predict`` returns: a full probability vector per image, or only ranks (an API that answers with its
top-K labels or a single label): rank 1 is the top label, and every label it did not return has rank K + 1."""


class Model(Protocol):
    labels: tuple[str, ...]
    size: tuple[int, int]  # (height, width) the model takes
    output: str  # one of OUTPUTS
    device: str  # where blending for this model runs: "cuda" or "cpu"

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB at the model's size -> (N, len(labels)) probabilities or ranks."""


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, labels) scores (logits) into probabilities."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


SUM_TOLERANCE = 1e-3
"""How far from 1 a row of probabilities may sum."""


def to_probabilities(scores: np.ndarray, output: str, error: type[Exception] = ModelConfigError) -> np.ndarray:
    """A model's raw scores as probabilities: softmax of logits, or probabilities checked to be finite,
    non-negative and summing to 1 (the engine's early stop relies on scores within [0, 1])."""
    if not np.isfinite(scores).all():
        raise error("the model answered NaN or infinite scores")
    if output == "logits":
        return softmax(scores)
    sums = scores.sum(axis=1)
    if np.abs(sums - 1).max() > SUM_TOLERANCE or scores.min() < 0:
        raise error(f"the scores are not probabilities (row sums {sums.min():.6g} to {sums.max():.6g}, least "
                    f"score {scores.min():.6g}); declare the output as logits if they are raw scores")
    return scores


class _LocalModel:
    """Shared by the file backends: preprocessing from the card, batching, logits to probabilities."""

    output = "probabilities"

    def __init__(self, card: ModelCard):
        self.card = card
        self.labels = card.labels
        self.size = card.preprocess.size

    def predict(self, images: np.ndarray) -> np.ndarray:
        rows = [self._run(self.card.preprocess.apply(images[start:start + BATCH]))
                for start in range(0, len(images), BATCH)]
        scores = np.concatenate(rows).astype(np.float64)
        if scores.shape != (len(images), len(self.labels)):
            raise ModelConfigError(f"the model returned shape {scores.shape}; its sidecar names "
                                   f"{len(self.labels)} labels")
        return to_probabilities(scores, self.card.output)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxModel(_LocalModel):
    def __init__(self, path: Path):
        import onnxruntime

        super().__init__(read_sidecar(path))
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [name for name in wanted if name in onnxruntime.get_available_providers()]
        options = onnxruntime.SessionOptions()
        # onnxruntime's threads otherwise spin for a while after every run, taking the cores from the blending
        # and preprocessing that run between two batches (measured: blending 25x slower next to a spinning session)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ModelConfigError(f"{path} cannot be loaded as an ONNX model ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


class TorchScriptModel(_LocalModel):
    def __init__(self, path: Path):
        import torch

        super().__init__(read_sidecar(path))
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as exc:  # torch raises RuntimeError and others for files that are not TorchScript
            raise ModelConfigError(f"{path} cannot be loaded as a TorchScript model ({exc})") from None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.module(self.torch.from_numpy(batch).to(self.device)).cpu().numpy()


class TopK:
    """A probability model seen through an API that answers with its top K labels only: ranks out."""

    output = "ranks"

    def __init__(self, model: Model, k: int):
        self.model, self.k = model, k
        self.labels, self.size, self.device = model.labels, model.size, model.device

    def predict(self, images: np.ndarray) -> np.ndarray:
        return top_k_ranks(self.model.predict(images), self.k)


def top_labels(model: Model, outputs: np.ndarray) -> np.ndarray:
    """Each image's top label from a model's output: the most probable, or the one ranked first."""
    return outputs.argmax(axis=1) if model.output == "probabilities" else outputs.argmin(axis=1)


def top_k_ranks(scores: np.ndarray, k: int) -> np.ndarray:
    """Ranks (1 = top) of each label, with every label outside the top K at K + 1."""
    ranks = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1) + 1
    return np.minimum(ranks, k + 1).astype(np.float64)


BACKENDS = {"onnx": OnnxModel, "torchscript": TorchScriptModel}


def load_model(spec: str, api_config: Path | None = None) -> Model:
    """A model from its spec: onnx:PATH, torchscript:PATH, or the http(s):// URL of a model API, which needs
    an API config (agent/verify/api_config.py)."""
    if spec.startswith(("http://", "https://")):
        from .api_config import read_api_config
        from .http_model import HttpModel  # aiohttp is imported for a model API only

        if api_config is None:
            raise ModelConfigError(f"{spec} is a model API: it needs an API config (docs/model-api.md)")
        return HttpModel(spec, read_api_config(Path(api_config)))
    if api_config is not None:
        raise ModelConfigError(f"an API config is for a model API (an http(s):// URL), not {spec!r}")
    scheme, _, location = spec.partition(":")
    if scheme not in BACKENDS or not location:
        raise ModelConfigError(f"unknown model {spec!r}: use " + " or ".join(f"{name}:PATH" for name in BACKENDS)
                               + " or the http(s):// URL of a model API")
    path = Path(location).expanduser()
    if not path.is_file():
        raise ModelConfigError(f"{path} does not exist")
    return BACKENDS[scheme](path)
