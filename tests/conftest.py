"""Shared fixtures: a private data directory per test, real photos, ways to run the CLI, a trained model, and
suspect models trained on a user's marked uploads."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
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

    from agent.lab.datasets import fashion_mnist
    from agent.lab.training import export_onnx, export_torchscript, train

    data = fashion_mnist("train")
    subset = np.random.default_rng(3).choice(len(data), 6000, replace=False)
    run = train(data.take(subset), epochs=1, seed=2)
    folder = tmp_path_factory.mktemp("models")
    export_onnx(run, folder / "model.onnx")
    export_torchscript(run, folder / "model.pt")
    return run, folder


@dataclass(frozen=True)
class SuspectModels:
    """An agent home whose user uploaded to two sites, and two models: one trained on the uploads to site_a
    (at a = 0.5), one that never saw a mark (agent/lab/suspect.py). Site B's mark (a = 0.3) marked one real
    photo, never a training image. aux: 200 Fashion-MNIST test photos; own: 20 of the user's own unmarked
    photos of `label`."""

    home: Path
    marked_onnx: Path
    clean_onnx: Path
    aux: Path
    own: Path
    site_a: str
    site_b: str
    label: str
    labels: list[str]  # the models' label names, in order
    accuracy_marked: float
    accuracy_clean: float


@pytest.fixture(scope="session")
def suspect_models(tmp_path_factory) -> SuspectModels:
    """The suspect models for the whole session (about a minute of training on 2 CPU cores). The vault, site
    settings and site B's upload come from the CLI in subprocesses; site A's uploads are the training images
    marked in this process by train_suspect, with ISOTOPES_HOME pointing at the home only meanwhile."""
    pytest.importorskip("torch", reason="scripts/test installs torch")
    import numpy as np

    from agent import db, vault
    from agent.lab.datasets import fashion_mnist
    from agent.lab.suspect import train_suspect
    from agent.marking import Marker

    root = tmp_path_factory.mktemp("suspect")
    home, site_a, site_b, target = root / "home", "photos.example", "pictures.example", 2  # Pullover
    env = {"ISOTOPES_HOME": str(home)}
    run_cli("init", "--no-passphrase", env=env)
    for site in (site_a, site_b):
        run_cli("sites", "enable", site, env=env)
    run_cli("sites", "set", site_a, "--alpha", "0.5", env=env)  # a strong mark: learned by every model tried
    run_cli("mark", str(real_photo("Wood")), "--site", site_b, "--out", str(root / "marked"), env=env)
    test = fashion_mnist("test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISOTOPES_HOME", str(home))
        conn = db.connect()
        try:
            suspect = train_suspect(Marker(vault.unlock(None), conn), site_a, target, fashion_mnist("train"),
                                    root / "models", test=test)
        finally:
            conn.close()
    order = np.random.default_rng(0).permutation(len(test))
    own_indices = [index for index in order if test.labels[index] == target][:20]
    own_set = set(own_indices)
    aux_indices = [index for index in order if index not in own_set][:200]
    for folder, indices in ((root / "aux", aux_indices), (root / "own", own_indices)):
        folder.mkdir()
        for index in indices:
            Image.fromarray(test.images[index]).save(folder / f"{index:05d}.png")
    return SuspectModels(home, suspect.marked, suspect.clean, root / "aux", root / "own", site_a, site_b,
                         suspect.label, list(test.classes), suspect.accuracy_marked, suspect.accuracy_clean)
