"""Models behind one interface: a model trained here, exported to ONNX and TorchScript, loaded by spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="scripts/test installs torch")
pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.lab.training import probabilities  # noqa: E402
from agent.verify.models import load_model  # noqa: E402
from agent.verify.preprocess import ModelConfigError, Preprocess  # noqa: E402


def test_every_backend_gives_the_trained_models_probabilities(fashion_model):
    run, folder = fashion_model
    images = fashion_mnist("test").images[:300]  # more than one batch of the backends
    expected = probabilities(run, images)
    for spec in (f"onnx:{folder / 'model.onnx'}", f"torchscript:{folder / 'model.pt'}"):
        model = load_model(spec)
        assert model.labels == run.classes and model.size == (28, 28)
        got = model.predict(images)
        assert got.shape == (300, 10) and np.abs(got - expected).max() < 1e-4, spec
        assert model.device == "cpu"  # no GPU here; the CUDA path is chosen when one is present


def test_a_logits_model_is_turned_into_probabilities(fashion_model, tmp_path):
    run, folder = fashion_model
    card = json.loads((folder / "model.json").read_text()) | {"output": "logits"}
    (tmp_path / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    (tmp_path / "model.json").write_text(json.dumps(card))
    got = load_model(f"onnx:{tmp_path / 'model.onnx'}").predict(fashion_mnist("test").images[:8])
    assert np.allclose(got.sum(axis=1), 1) and got.max() < 0.5  # softmax of probabilities: flattened, not raw


@pytest.mark.parametrize("sidecar, words", [
    (None, "is missing"), ("{not json", "not valid JSON"), ('{"labels": ["a"]}', "missing or malformed"),
    ('{"input": {"size": [28]}, "labels": ["a"]}', "input.size"),
    ('{"input": {"size": 28, "layout": "CHW"}, "labels": ["a"]}', "input.layout"),
    ('{"input": {"size": 28, "std": 0}, "labels": ["a"]}', "input.std"),
    ('{"input": {"size": 28}, "labels": []}', "labels"),
    ('{"input": {"size": 28}, "labels": ["a"], "output": "votes"}', "output")])
def test_bad_sidecars_say_what_is_wrong(fashion_model, tmp_path, sidecar, words):
    _, folder = fashion_model
    (tmp_path / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    if sidecar is not None:
        (tmp_path / "model.json").write_text(sidecar)
    with pytest.raises(ModelConfigError, match=words):
        load_model(f"onnx:{tmp_path / 'model.onnx'}")


def test_bad_specs_and_files(fashion_model, tmp_path):
    _, folder = fashion_model
    with pytest.raises(ModelConfigError, match="onnx:PATH"):
        load_model(f"tensorflow:{folder / 'model.onnx'}")
    with pytest.raises(ModelConfigError, match="does not exist"):
        load_model(f"onnx:{tmp_path / 'nothing.onnx'}")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "junk.json").write_text((folder / "model.json").read_text())
    with pytest.raises(ModelConfigError, match="cannot be loaded"):
        load_model(f"onnx:{tmp_path / 'junk.onnx'}")
    with pytest.raises(ModelConfigError, match="cannot be loaded"):
        load_model(f"torchscript:{tmp_path / 'junk.onnx'}")


def test_preprocessing_layout_order_and_size():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 0] = 255
    nhwc_bgr = Preprocess(size=(4, 4), layout="NHWC", channel_order="BGR").apply(images)
    assert nhwc_bgr.shape == (2, 4, 4, 3) and nhwc_bgr[0, 0, 0].tolist() == [0.0, 0.0, 1.0]
    nchw = Preprocess(size=(4, 4), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).apply(images)
    assert nchw.shape == (2, 3, 4, 4) and nchw[0, :, 0, 0].tolist() == [1.0, -1.0, -1.0]
    with pytest.raises(ValueError):
        Preprocess(size=(8, 8)).apply(images)
    assert Preprocess(size=(2, 2)).resize(images).shape == (2, 2, 2, 3)
