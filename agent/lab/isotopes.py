"""Training data carrying isotopes, made through the product's own marking path: a vault, a site's mark,
the same blending code and ledger as an upload. There is no second implementation of marking here."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..marking import Marker
from .datasets import LabelledImages


def mark_class(data: LabelledImages, marker: Marker, site: str, target: int, fraction: float,
               seed: int, exclude: np.ndarray = np.zeros(0, np.int64)) -> tuple[LabelledImages, np.ndarray]:
    """A copy of `data` where `fraction` of the images of class `target` (never one of `exclude`) were uploaded
    to `site`, i.e. marked by `marker` with the site's current mark and strength. Returns the data and the
    indices that were marked."""
    in_class = np.flatnonzero(data.labels == target)
    candidates = np.setdiff1d(in_class, exclude)
    count = int(round(fraction * len(in_class)))
    chosen = np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False))
    images = data.images.copy()
    for index in chosen:
        buffer = io.BytesIO()
        Image.fromarray(images[index], "RGB").save(buffer, "PNG")
        outcome = marker.prepare(buffer.getvalue(), site, name=f"train-{index}.png")
        marker.record(outcome)
        if outcome.status != "marked":
            raise RuntimeError(f"training image {index} was not marked: {outcome.upload.reason}")
        with Image.open(io.BytesIO(outcome.data)) as marked:
            images[index] = np.asarray(marked.convert("RGB"))
    return LabelledImages(images, data.labels, data.classes), chosen
