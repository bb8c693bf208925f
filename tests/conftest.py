"""Shared fixtures: a private data directory per test, real photos, ways to run the CLI, and a trained model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

PHOTO_DIR = Path("/usr/share/backgrounds/mate/nature")
ISOTOPES = [sys.executable, "-m", "agent.cli"]


def real_photo(name: str = "Wood") -> Path:
    """A real photograph from Debian's mate-backgrounds (scripts/test installs it)."""
    path = PHOTO_DIR / f"{name}.jpg"
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/test, which installs Debian's mate-backgrounds")
    return path


def small_real_photo(name: str = "Wood", width: int = 480) -> Image.Image:
    """A real photo scaled down so tests stay fast; RGB, upright."""
    with Image.open(real_photo(name)) as image:
        image = image.convert("RGB")
        return image.resize((width, round(image.height * width / image.width)), Image.Resampling.BOX)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh ISOTOPES_HOME for this test, for in-process calls and subprocesses alike."""
    path = tmp_path / "home"
    monkeypatch.setenv("ISOTOPES_HOME", str(path))
    return path


def run_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `isotopes ARGS` in a real subprocess (stdin closed, like a script)."""
    result = subprocess.run(ISOTOPES + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"isotopes {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def run_json(*args: str, **kwargs):
    return json.loads(run_cli(*args, "--json", **kwargs).stdout)


@pytest.fixture
def initialised(home) -> Path:
    """A home with an unprotected vault (tests that need the passphrase path make their own)."""
    run_cli("init", "--no-passphrase")
    return home


@pytest.fixture(scope="session")
def fashion_model(tmp_path_factory):
    """(run, folder): a model trained on 6000 Fashion-MNIST images for one epoch, exported into folder as
    model.onnx and model.pt with their sidecar model.json. torch is imported here, so conftest needs none."""
    pytest.importorskip("torch", reason="scripts/test installs torch")
    import numpy as np

    from agent.lab.datasets import LabelledImages, fashion_mnist
    from agent.lab.training import export_onnx, export_torchscript, train

    data = fashion_mnist("train")
    subset = np.random.default_rng(3).choice(len(data), 6000, replace=False)
    run = train(LabelledImages(data.images[subset], data.labels[subset], data.classes), epochs=1, seed=2)
    folder = tmp_path_factory.mktemp("models")
    export_onnx(run, folder / "model.onnx")
    export_torchscript(run, folder / "model.pt")
    return run, folder
