"""Training on real Fashion-MNIST (CPU path), marking training images through the product's path, and
exporting to ONNX that onnxruntime runs with the same answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="scripts/test installs torch")
ort = pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent import db, ledger, settings, vault  # noqa: E402
from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.lab.isotopes import mark_class  # noqa: E402
from agent.lab.training import accuracy, device, export_onnx, probabilities, train  # noqa: E402
from agent.marking import Marker  # noqa: E402


@pytest.fixture(scope="module")
def small_run():
    data = fashion_mnist("train")
    subset = np.random.default_rng(0).choice(len(data), 12000, replace=False)
    return train(data.take(subset), epochs=2, seed=1)


def test_training_learns_fashion_mnist_on_the_cpu_path(small_run):
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    test = fashion_mnist("test")
    assert accuracy(small_run, test) > 0.75  # two epochs on 12,000 images; chance is 0.1
    assert small_run.losses[0] < np.log(10)


def test_onnx_export_gives_the_same_probabilities(small_run, tmp_path):
    sidecar = json.loads(export_onnx(small_run, tmp_path / "model.onnx").read_text())
    assert sidecar["labels"][0] == "T-shirt/top" and sidecar["output"] == "probabilities"
    assert sidecar["input"]["size"] == [28, 28]
    images = fashion_mnist("test").images[:64]
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    mean = np.array(sidecar["input"]["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(sidecar["input"]["std"], np.float32).reshape(1, 3, 1, 1)
    inputs = (images.transpose(0, 3, 1, 2).astype(np.float32) * sidecar["input"]["scale"] - mean) / std
    served = session.run(None, {"images": inputs})[0]
    assert np.abs(served - probabilities(small_run, images)).max() < 1e-4
    assert np.allclose(served.sum(axis=1), 1, atol=1e-5)


def test_isotopes_are_made_by_the_products_marking_path(home):
    marker = Marker(vault.create(None), db.connect())
    settings.update(marker.conn, "photos.example", enabled=True, alpha=0.3)
    data = fashion_mnist("test")
    marked, chosen = mark_class(data, marker, "photos.example", target=3, fraction=0.1, seed=5)
    assert len(chosen) == 100 and (data.labels[chosen] == 3).all()
    changed = np.flatnonzero((marked.images != data.images).any(axis=(1, 2, 3)))
    assert set(changed) <= set(chosen) and len(changed) >= 95  # a mark can leave a rare image unchanged
    rows = ledger.uploads(marker.conn)
    assert len(rows) == 100 and {row.status for row in rows} == {"marked"} and {row.alpha for row in rows} == {0.3}
