"""Experiment data: the real Fashion-MNIST files, IDX parsing errors, and a folder of real photos."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from agent.lab.datasets import FASHION_MNIST_CLASSES, fashion_mnist, image_folder, read_idx
from conftest import real_photo


def test_fashion_mnist_is_read_whole_and_balanced():
    train, test = fashion_mnist("train"), fashion_mnist("test")
    assert train.images.shape == (60000, 28, 28, 3) and test.images.shape == (10000, 28, 28, 3)
    assert train.images.dtype == np.uint8 and (train.images[..., 0] == train.images[..., 2]).all()
    assert np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == FASHION_MNIST_CLASSES and 0 < train.images.mean() < 255


@pytest.mark.parametrize("damage", ["magic", "truncated header", "short data"])
def test_damaged_idx_files_are_refused(tmp_path, damage):
    body = struct.pack(">BBBBII", 0, 0, 0x08, 2, 3, 4) + bytes(12)
    if damage == "magic":
        body = b"\x01" + body[1:]
    elif damage == "truncated header":
        body = body[:7]
    else:
        body = body[:-1]
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(body)
    with pytest.raises(ValueError):
        read_idx(path)


def test_image_folder_of_real_photos(tmp_path):
    for name, photos in {"flowers": ["FreshFlower", "YellowFlower"], "water": ["Aqua", "RainDrops", "Storm"]}.items():
        (tmp_path / name).mkdir()
        for photo in photos:
            (tmp_path / name / f"{photo}.jpg").write_bytes(real_photo(photo).read_bytes())
    (tmp_path / "water" / "notes.txt").write_text("not an image")
    rotated = Image.open(real_photo("Dune")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "flowers" / "rotated.jpg", exif=exif.tobytes())
    data = image_folder(tmp_path, 32)
    assert data.classes == ("flowers", "water") and data.images.shape == (6, 32, 32, 3)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable image"):
        image_folder(tmp_path, 32)
