"""Does an image carry a given mark? A check for ``ledger find`` on resized or re-encoded copies.

A photo and its marked copy have nearly the same perceptual hash, so the hash alone cannot tell them apart.
The mark can: blending adds a * t to the photo, so the photo's fine detail (its high-pass residual) correlates
with the mark's. The correlation with the true mark is compared with the correlations with external marks of
the same family, which show how large a chance correlation gets for this photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ..blending import cover
from .families import render
from .keys import external_seeds

WORKING_SIDE = 384
EXTERNAL_MARKS = 15
MIN_CORRELATION = 0.05


@dataclass(frozen=True)
class Presence:
    correlation: float  # with the mark in question
    external_max: float  # the largest correlation with any external mark
    present: bool


def _residual(image: Image.Image) -> np.ndarray:
    """A band-pass of the image, unit norm: drops the photo's smooth shading and its finest grain and noise,
    keeps the edges of the mark's shapes (a difference of box blurs, measured best of four bands here)."""
    fine, coarse = image.filter(ImageFilter.BoxBlur(1)), image.filter(ImageFilter.BoxBlur(8))
    residual = np.asarray(fine, np.float32) - np.asarray(coarse, np.float32)
    residual -= residual.mean()
    return residual / (np.linalg.norm(residual) + 1e-9)


def _working_size(width: int, height: int) -> tuple[int, int]:
    scale = WORKING_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check(image: Image.Image, mark: np.ndarray, family: str) -> Presence:
    """Whether the upright RGB `image` carries `mark` (a mark of generator `family`)."""
    size = _working_size(*image.size)
    photo = _residual(image.convert("RGB").resize(size, Image.Resampling.BOX))

    def correlation(pixels: np.ndarray) -> float:
        return float(np.sum(photo * _residual(cover(Image.fromarray(pixels, "RGB"), *size))))

    score = correlation(mark)
    external = max(correlation(render(family, seed)) for seed in external_seeds(EXTERNAL_MARKS))
    return Presence(correlation=score, external_max=external, present=score > max(external, MIN_CORRELATION))
