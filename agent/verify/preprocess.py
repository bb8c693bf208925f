"""How a model wants its input: read from the sidecar JSON beside a model file (or from an API config).

Sidecar format::

    {"input": {"size": [H, W], "layout": "NCHW" | "NHWC", "channel_order": "RGB" | "BGR",
               "scale": 0.00392156862745098, "mean": [m, m, m], "std": [s, s, s]},
     "labels": ["T-shirt/top", ...], "output": "probabilities" | "logits"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

OUTPUT_KINDS = ("probabilities", "logits")


class ModelConfigError(ValueError):
    """A sidecar or API config that cannot describe a model; the message names the field."""


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    channel_order: str = "RGB"
    scale: float = 1 / 255

    def to_json(self) -> dict:
        return {"size": list(self.size), "layout": self.layout, "channel_order": self.channel_order,
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std)}

    def apply(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB at the model's size -> float32 model input."""
        if images.ndim != 4 or images.shape[3] != 3 or images.shape[1:3] != self.size:
            raise ValueError(f"expected (N, {self.size[0]}, {self.size[1]}, 3) images, got {images.shape}")
        batch = images.astype(np.float32) * np.float32(self.scale)
        if self.channel_order == "BGR":
            batch = batch[..., ::-1]
        batch = (batch - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if self.layout == "NCHW" else batch)

    def resize(self, images: np.ndarray) -> np.ndarray:
        """Images of any one size scaled to the model's, as a trainer's resize would (area averaging)."""
        if images.shape[1:3] == self.size:
            return images
        height, width = self.size
        return np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BOX))
                         for image in images])


@dataclass(frozen=True)
class ModelCard:
    """What a sidecar says about a model: its input, its label names, and what its output holds."""

    preprocess: Preprocess
    labels: tuple[str, ...]
    output: str = "probabilities"

    def to_json(self) -> dict:
        return {"input": self.preprocess.to_json(), "labels": list(self.labels), "output": self.output}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))


def _triple(value, name: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    raise ModelConfigError(f"input.{name} must be a number or a list of three numbers")


def read_card(data: dict, source: str) -> ModelCard:
    """Validate a sidecar / API config document; errors say which field is wrong and where."""
    try:
        spec = data["input"]
        size = spec["size"]
        if isinstance(size, int):
            size = [size, size]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ModelConfigError("input.size must be [height, width] in pixels")
        layout, order = spec.get("layout", "NCHW"), spec.get("channel_order", "RGB")
        if layout not in ("NCHW", "NHWC"):
            raise ModelConfigError("input.layout must be NCHW or NHWC")
        if order not in ("RGB", "BGR"):
            raise ModelConfigError("input.channel_order must be RGB or BGR")
        std = _triple(spec.get("std", 1.0), "std")
        if min(std) <= 0:
            raise ModelConfigError("input.std must be positive")
        labels = data["labels"]
        if not (isinstance(labels, list) and labels and all(isinstance(label, str) for label in labels)):
            raise ModelConfigError("labels must be a non-empty list of names")
        output = data.get("output", "probabilities")
        if output not in OUTPUT_KINDS:
            raise ModelConfigError(f"output must be one of {', '.join(OUTPUT_KINDS)}")
        return ModelCard(Preprocess(size=tuple(size), mean=_triple(spec.get("mean", 0.0), "mean"), std=std,
                                    layout=layout, channel_order=order, scale=float(spec.get("scale", 1 / 255))),
                         tuple(labels), output)
    except ModelConfigError as exc:
        raise ModelConfigError(f"{source}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise ModelConfigError(f"{source}: missing or malformed field {exc}") from None


def read_sidecar(model_path: Path) -> ModelCard:
    """The card in MODEL.json beside MODEL.onnx / MODEL.pt."""
    sidecar = model_path.with_suffix(".json")
    try:
        document = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise ModelConfigError(f"{sidecar} is missing: a model needs its sidecar (input size, normalisation, "
                               "label names)") from None
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{sidecar} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(document, dict):
        raise ModelConfigError(f"{sidecar} must hold a JSON object")
    return read_card(document, str(sidecar))
