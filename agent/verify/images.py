"""The images verification queries with: auxiliary images (any real photos the model never saw with the
user's mark), the user's own unmarked photos, and photos of a physical mark. Each is read upright, as RGB,
centre-cropped to the model's aspect and scaled to its input size by area averaging, as a trainer's resize does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class ImageFolderError(ValueError):
    """A folder that cannot give the images asked for; the message names the folder."""


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` with an image suffix, in a stable order."""
    if not folder.is_dir():
        raise ImageFolderError(f"{folder} is not a folder")
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def read_image(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """One image as (H, W, 3) uint8 at `size` = (height, width), or None when the file is not a readable image."""
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    height, width = size
    return np.asarray(ImageOps.fit(upright, (width, height), Image.Resampling.BOX))


def read_folder(folder: Path, size: tuple[int, int], limit: int | None = None) -> np.ndarray:
    """Up to `limit` readable images from `folder` as (N, H, W, 3) uint8; unreadable files are skipped."""
    images = []
    for path in image_files(folder):
        if limit is not None and len(images) >= limit:
            break
        image = read_image(path, size)
        if image is not None:
            images.append(image)
    if not images:
        raise ImageFolderError(f"{folder} holds no readable image")
    return np.stack(images)


class ImageSet:
    """Images read on demand at the model's size, so a run's memory does not grow with their number.
    Holds either files (checked to open at construction, decoded when sliced) or an array already in memory."""

    def __init__(self, size: tuple[int, int], files: list[Path] | None = None, array: np.ndarray | None = None):
        self.size = size
        self.files = files
        self.array = array

    @classmethod
    def from_folder(cls, folder: Path, size: tuple[int, int], limit: int | None = None) -> ImageSet:
        """Up to `limit` image files of `folder` whose headers Pillow can read."""
        files = []
        for path in image_files(folder):
            if limit is not None and len(files) >= limit:
                break
            try:
                with Image.open(path):
                    files.append(path)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
                continue
        if not files:
            raise ImageFolderError(f"{folder} holds no readable image")
        return cls(size, files=files)

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.array)

    def __getitem__(self, window: slice | np.ndarray) -> np.ndarray:
        """The images of a slice, or at an array of indices, as (N, H, W, 3) uint8."""
        if self.array is not None:
            return self.array[window]
        images = []
        for path in self.files[window] if isinstance(window, slice) else [self.files[i] for i in window]:
            image = read_image(path, self.size)
            if image is None:
                raise ImageFolderError(f"{path} could not be decoded")
            images.append(image)
        return np.stack(images)
