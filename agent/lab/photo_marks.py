"""Photo marks for the harness: a user who makes one of their own photos a site's mark (`isotopes marks import`).

The product cannot test such a mark: a rank test needs external marks drawn from the same generator as the
user's, and one person's photo has none. The harness can: it draws the user's mark and every external mark as
random square crops of the same pool of real photographs, so under the null the true mark is one more draw
and the rank p-value stays exact. The user's mark still goes through the product's own import path
(registry.import_image), and is kept and blended like any imported photo.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..marks.families import BASE_SIZE
from ..marks.stream import Stream

FAMILY = "photo"
POOL = Path("/usr/share/backgrounds/mate/nature")  # Debian's mate-backgrounds: 12 real photographs
POOL_SIDE = 1024  # each photo is kept with its short side this long: crops need no more detail than that


@functools.cache
def _pool(folder: Path) -> tuple[Image.Image, ...]:
    photos = []
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as photo:
            upright = ImageOps.exif_transpose(photo).convert("RGB")
        scale = POOL_SIDE / min(upright.size)
        photos.append(upright.resize((round(upright.width * scale), round(upright.height * scale)),
                                     Image.Resampling.LANCZOS))
    if not photos:
        raise FileNotFoundError(f"no photos (*.jpg) in {folder} to cut photo marks from")
    return tuple(photos)


def photo_mark(seed: bytes, folder: Path = POOL) -> np.ndarray:
    """The (BASE_SIZE, BASE_SIZE, 3) uint8 mark of `seed`: which photo of the pool, and the side (a quarter of
    the photo's short side to all of it) and place of the square cut from it, all drawn from the seed."""
    stream, pool = Stream(seed), _pool(folder)
    photo = pool[int(stream.integers("photo", 0, len(pool), 1)[0])]
    side = int(stream.integers("side", POOL_SIDE // 4, POOL_SIDE + 1, 1)[0])
    left, top = (int(stream.integers(axis, 0, extent - side + 1, 1)[0]) for axis, extent in zip("xy", photo.size))
    crop = photo.resize((BASE_SIZE, BASE_SIZE), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    return np.asarray(crop)


def as_upload(mark: np.ndarray) -> bytes:
    """A mark as the PNG file a user would import."""
    buffer = io.BytesIO()
    Image.fromarray(mark).save(buffer, "PNG")
    return buffer.getvalue()
