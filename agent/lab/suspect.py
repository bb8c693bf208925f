"""A suspect model for the demo and the end-to-end tests: a model trained on a user's uploads to one site.

A scraper collected a share of the user's photos of one class from `site` (Fashion-MNIST images marked through
the product's own marking path, so every one of them is in the user's ledger as an upload to that site, exactly
as the browser would have recorded it), and other people's photos of the other classes, some of them carrying
*their* isotopes of the same family at the same strength. Those other marks make a model learn this user's mark
itself rather than "an overlay means this class" (docs/results/README.md, "When several people mark"): a single
user's mark alone at the product's defaults is not reliably learned.

The same images, seed and training without any mark give the clean counterpart: a model that never saw an
isotope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import settings
from ..blending import blend_arrays
from ..marking import Marker
from ..marks.families import render
from ..verify.blend import mark_at
from .datasets import LabelledImages
from .isotopes import mark_class
from .training import accuracy, export_onnx, train


@dataclass(frozen=True)
class Suspect:
    """What `train_suspect` made: ONNX models, each with its sidecar JSON beside it."""

    marked: Path  # trained on the user's marked uploads to the site (and on other people's marks)
    clean: Path | None  # the same images, seed and training without any mark
    label: str  # the class of the user's photos
    marked_images: int  # training images that carry the user's mark (each one a ledger row)
    other_images: int  # training images that carry someone else's mark
    accuracy_marked: float | None  # on the test images given, if any
    accuracy_clean: float | None
    seconds: float  # training and export, both models


def train_suspect(marker: Marker, site: str, target: int, data: LabelledImages, folder: Path, *,
                  fraction: float = 0.25, others: int = 100, others_share: float = 0.2,
                  epochs: int = 1, batch_size: int = 32, seed: int = 0, clean: bool = True,
                  test: LabelledImages | None = None) -> Suspect:
    """Train a model on `data` where `fraction` of class `target` are the user's uploads to `site`: marked by
    `marker` with the site's current mark at the site's strength and recorded in the ledger
    (isotopes.mark_class). `others_share` of the other classes' images carry one of `others` other people's
    marks (seeded from `seed`, of the site's family, at the site's strength). Writes folder/marked.onnx and,
    with `clean`, folder/clean.onnx (each with its sidecar .json); accuracies are measured on `test` when
    given.

    Set the site's strength to 0.5 for a mark the model reliably learns. Measured with the defaults (all 60,000
    Fashion-MNIST training images, one epoch, about 30 s a model on 2 idle CPU cores; class Pullover) and
    structured marks: at a = 0.5 the user's mark ranked above all of 399 external marks in 7 of 7 models (z 9 to
    40); at a = 0.3 it ranked first in 5 of 8 and in the first three in 7 of 8 (z 2.0 to 8.4). The marks cost at
    most 1.3 points of test accuracy at a = 0.5 and 1.8 at 0.3."""
    rng = np.random.default_rng(seed)
    marked, chosen = mark_class(data, marker, site, target, fraction, seed)
    own = settings.get(marker.conn, site)
    size = data.images.shape[1:3]
    crowd = [mark_at(render(own.family, rng.bytes(32)), size) for _ in range(others)]
    carriers = rng.permutation(np.flatnonzero(data.labels != target))
    carriers = carriers[:int(round(others_share * len(carriers)))] if others else carriers[:0]
    pixels = marked.images  # mark_class returned a copy: ours to change
    for number, index in enumerate(carriers):
        pixels[index] = blend_arrays(pixels[index], crowd[number % others], own.alpha)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths, accuracies = {}, {}
    for name, training_data in (("marked", marked), ("clean", data))[:2 if clean else 1]:
        run = train(training_data, epochs=epochs, seed=seed, batch_size=batch_size)
        paths[name] = folder / f"{name}.onnx"
        export_onnx(run, paths[name])
        accuracies[name] = accuracy(run, test) if test is not None else None
    return Suspect(marked=paths["marked"], clean=paths.get("clean"), label=data.classes[target],
                   marked_images=len(chosen), other_images=len(carriers), accuracy_marked=accuracies["marked"],
                   accuracy_clean=accuracies.get("clean"), seconds=time.perf_counter() - started)
