"""Labelled images for experiments: Fashion-MNIST from Debian's dataset-fashion-mnist, or any folder of real
images with one subfolder per class. Images come as (N, H, W, 3) uint8 RGB, so the same marking path as
uploads applies to them."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..verify.images import image_files, read_image

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray | slice) -> LabelledImages:
        """The images at `indices` (a copy), with their labels."""
        return LabelledImages(self.images[indices], self.labels[indices], self.classes)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): magic 0x0000, a type byte, a dimension count, big-endian uint32 sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated in its header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path} holds {len(data) - header} data bytes, its header promises {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def fashion_mnist(split: str = "train", folder: Path = FASHION_MNIST_DIR) -> LabelledImages:
    """Fashion-MNIST's 60,000 training or 10,000 test images, grey repeated to RGB."""
    prefix = {"train": "train", "test": "t10k"}[split]
    try:
        grey = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    except FileNotFoundError:
        raise FileNotFoundError(f"Fashion-MNIST is not in {folder}: install Debian's dataset-fashion-mnist "
                                "(scripts/test does)") from None
    if len(grey) != len(labels):
        raise ValueError(f"{len(grey)} images but {len(labels)} labels in {folder}")
    return LabelledImages(np.repeat(grey[..., None], 3, axis=3), labels.astype(np.int64), FASHION_MNIST_CLASSES)


def image_folder(root: Path, size: int) -> LabelledImages:
    """Every image under root/CLASS/..., upright, RGB, scaled and centre-cropped to size x size. Files that
    are not images are skipped; a class folder without any image is an error."""
    classes = tuple(sorted(entry.name for entry in root.iterdir() if entry.is_dir()))
    if not classes:
        raise ValueError(f"{root} has no class folders")
    images, labels = [], []
    for label, name in enumerate(classes):
        found = 0
        for path in image_files(root / name):
            image = read_image(path, (size, size))
            if image is not None:
                images.append(image)
                labels.append(label)
                found += 1
        if not found:
            raise ValueError(f"class folder {root / name} holds no readable image")
    return LabelledImages(np.stack(images), np.array(labels, np.int64), classes)
