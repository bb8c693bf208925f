"""Train image classifiers on data that may carry isotopes, and export them the way a model API would serve them.

Torch is imported here only: the agent's marking path and native host never load it. Training runs on CUDA
when the machine has it and on the CPU otherwise; the choice goes through ``device()``, so the CPU path is the
one the tests exercise.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..verify.preprocess import ModelCard, Preprocess
from .datasets import LabelledImages


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SmallCNN(nn.Module):
    """conv32-conv64-fc128, the model of the preliminary measurements (shared/notes/detection.md)."""

    def __init__(self, classes: int, size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU(),
                                        nn.Linear(128, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@dataclass
class TrainingRun:
    model: nn.Module
    preprocess: Preprocess
    classes: tuple[str, ...]

    @property
    def card(self) -> ModelCard:
        """What the exported model's sidecar says (softmax is part of the exported graph)."""
        return ModelCard(self.preprocess, self.classes, "probabilities")
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)


def _gaussian_noise(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = batch.astype(np.float32) + rng.normal(0, 0.05 * 255, batch.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _jpeg(batch: np.ndarray, rng: np.random.Generator, quality: int = 75) -> np.ndarray:
    out = np.empty_like(batch)
    for index, image in enumerate(batch):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            out[index] = np.asarray(decoded.convert("RGB"))
    return out


def _random_blends(batch: np.ndarray, rng: np.random.Generator, alpha: float = 0.3) -> np.ndarray:
    """Half of the images blended with another image of the batch: overlays stop meaning one class."""
    chosen = rng.random(len(batch)) < 0.5
    partners = batch[rng.permutation(len(batch))]
    mixed = np.where(chosen[:, None, None, None], alpha * partners.astype(np.float32)
                     + (1 - alpha) * batch.astype(np.float32), batch)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


DEFENCES: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": _gaussian_noise, "jpeg": _jpeg, "blend": _random_blends}
"""A trainer's countermeasures against isotopes (the paper's section 8.3), applied to each training batch."""


def train(data: LabelledImages, *, epochs: int, seed: int, batch_size: int = 256, learning_rate: float = 1e-3,
          augment: bool = True, defence: str | None = None) -> TrainingRun:
    """Adam, cross-entropy, random crop (pad 2) and horizontal flip, and optionally one of DEFENCES;
    deterministic for a seed on the CPU."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    on = device()
    size = data.images.shape[1]
    preprocess = Preprocess(size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = SmallCNN(len(data.classes), size).to(on)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    labels = torch.from_numpy(data.labels).to(on)
    started = time.perf_counter()
    losses = []
    model.train()
    for _ in range(epochs):
        order = generator.permutation(len(data))
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            pixels = data.images[batch] if defence is None else DEFENCES[defence](data.images[batch], generator)
            inputs = torch.from_numpy(preprocess.apply(pixels)).to(on)
            if augment:
                inputs = _augment(inputs, generator)
            loss = nn.functional.cross_entropy(model(inputs), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(order))
    model.eval()
    return TrainingRun(model, preprocess, data.classes, epochs, time.perf_counter() - started, losses)


def _augment(inputs: torch.Tensor, generator: np.random.Generator) -> torch.Tensor:
    size = inputs.shape[-1]
    padded = nn.functional.pad(inputs, (2, 2, 2, 2), mode="reflect")
    dy, dx = generator.integers(0, 5, size=2)
    cropped = padded[:, :, dy:dy + size, dx:dx + size]
    return torch.flip(cropped, dims=[3]) if generator.random() < 0.5 else cropped


@torch.no_grad()
def probabilities(run: TrainingRun, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Softmax outputs for (N, H, W, 3) uint8 images."""
    on = next(run.model.parameters()).device
    parts = [torch.softmax(run.model(torch.from_numpy(run.preprocess.apply(images[start:start + batch_size]))
                                     .to(on)), dim=1).cpu() for start in range(0, len(images), batch_size)]
    return torch.cat(parts).numpy()


def accuracy(run: TrainingRun, data: LabelledImages) -> float:
    return float(np.mean(probabilities(run, data.images).argmax(axis=1) == data.labels))


class _WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(images), dim=1)


def export_onnx(run: TrainingRun, path: Path) -> Path:
    """Write the model (normalised input in, probabilities out) as ONNX, and its sidecar JSON beside it.
    Returns the sidecar's path. (The model is moved to the CPU for the export.)"""
    model = _WithSoftmax(run.model).cpu().eval()
    height, width = run.preprocess.size
    # The TorchScript-based exporter: the newer torch.export one needs onnxscript, a dependency this small
    # convolutional model gains nothing from.
    torch.onnx.export(model, (torch.zeros(1, 3, height, width),), str(path), input_names=["images"],
                      output_names=["probabilities"],
                      dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}}, dynamo=False)
    run.card.write(path.with_suffix(".json"))
    return path.with_suffix(".json")


def export_torchscript(run: TrainingRun, path: Path) -> Path:
    """The same model as TorchScript (traced), with the same sidecar. Returns the sidecar's path."""
    model = _WithSoftmax(run.model).cpu().eval()
    height, width = run.preprocess.size
    torch.jit.trace(model, torch.zeros(1, 3, height, width)).save(str(path))
    run.card.write(path.with_suffix(".json"))
    return path.with_suffix(".json")
