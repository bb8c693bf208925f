"""One experiment of the reproduction harness: train a model on data where some classes carry isotopes made by
the product, train the same model without them, and test the same marks against both with the verification
engine. The marked model gives the detection rate, the clean one the false-positive rate, on the same marks.

Every mark comes from a real vault through the normal marking path (agent/lab/isotopes.py); every decision
comes from ``agent.verify.engine.verify`` run on the exported ONNX model, as `isotopes verify` would run it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from .. import db, settings, vault
from ..marking import Marker
from ..marks import registry
from ..marks.keys import external_seeds
from ..marks.families import render
from ..verify.blend import Blender, mark_at
from ..verify.engine import MarkUnderTest, Options, panel_size_for, verify
from ..verify.images import ImageSet
from ..verify.models import TopK, load_model
from ..verify.stats import distinguisher_pvalues
from . import photo_marks
from .datasets import LabelledImages, fashion_mnist, image_folder
from .isotopes import mark_class
from .training import accuracy, export_onnx, train

HARD_CLASSES = (6, 4, 2, 0, 3)  # Shirt, Coat, Pullover, T-shirt/top, Dress: the classes a model confuses most


@dataclass(frozen=True)
class Setting:
    """What the trainer's data and training look like."""

    family: str = "texture"  # not the product's default: every committed runs.jsonl keys its settings on this;
    # or photo_marks.FAMILY: the user imported a photo as the mark
    alpha: float = 0.3  # the product's default when the first runs were committed: runs.jsonl keys on it
    fraction: float = 0.1  # of each marked class's training images
    epochs: int = 5
    train_size: int = 10000
    marked_classes: int = 1  # how many classes carry a mark (one site per class)
    marks_per_class: int = 1  # sites whose marks share one class (a user's per-site marks and rotations)
    recompress: bool = False  # marked photos pass through a social site's resize + JPEG q75 before training
    defence: str | None = None  # a countermeasure of the trainer: see training.DEFENCES, or "top-k" outputs
    aux_images: int = 200
    panel_size: int = 39
    focus: int | None = None  # every usable aux image, as the committed runs were tested; or the closest N
    level: float = 0.05

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items() if v != getattr(Setting(), k))


def social_site(image: np.ndarray, long_side: int = 1080, quality: int = 75) -> np.ndarray:
    """What a social site does to an upload before a scraper gets it: scale to 1080 px, JPEG q75; the scraper's
    pipeline then scales it back to the training size."""
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    large = Image.fromarray(image).resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB").resize((width, height), Image.Resampling.BOX))


BUDGET = (39, 19)
"""A second, cheaper test on the same models: 39 aux images and 19 external marks, 819 queries, a third of the
paper's 2,500 per test, at level 0.05."""


@dataclass
class Trial:
    """One mark tested against the marked model (positive) and the clean model (negative), with the setting's
    test and with the budget test."""

    site: str
    label: int
    marked: dict
    clean: dict
    marked_budget: dict
    clean_budget: dict


def _test(model, aux: ImageSet, mark: MarkUnderTest, panel: list[np.ndarray], options: Options) -> dict:
    drawn = iter(panel)
    verification = verify(model, aux, [replace(mark, panel=lambda _seed: next(drawn))], options)
    result = verification.results[0]
    return {"detected": result.detected, "p_value": result.p_value, "z": result.z, "shift": result.shift,
            "paper_v": bool(result.paper_v and result.paper_v["detected"]), "queries": verification.queries}


@dataclass(frozen=True)
class Dataset:
    """Training and test images, and the classes a mark may go into (the hardest first, when known)."""

    train: LabelledImages
    test: LabelledImages
    candidates: tuple[int, ...]


def fashion() -> Dataset:
    return Dataset(fashion_mnist("train"), fashion_mnist("test"), HARD_CLASSES)


def folder_dataset(root: Path, size: int, test_share: float = 0.2) -> Dataset:
    """Any folder of real images with one subfolder per class, split at random into training and test images."""
    data = image_folder(root, size)
    order = np.random.default_rng(0).permutation(len(data))
    cut = int(round(len(data) * (1 - test_share)))
    return Dataset(data.take(order[:cut]), data.take(order[cut:]), tuple(range(len(data.classes))))


def run(setting: Setting, seed: int, dataset: Dataset | None = None, workdir: Path | None = None,
        clean_models: dict | None = None, keep: Path | None = None) -> dict:
    """Train the clean and the marked model for `seed` and test every mark against both. `clean_models`, when
    given, keeps each clean model for the next setting that trains one alike (same images, epochs, defence
    and seed), so a sweep trains it once: pass one dict per dataset. `keep`, when given, is a folder that
    receives the run's user (vault and ledger), both ONNX models with their sidecars, and `run.json` (the
    tested sites, their labels and the aux images' indices in the test set), for analyses after the run."""
    dataset = dataset or fashion()
    rng = np.random.default_rng(seed)
    train_all, test = dataset.train, dataset.test
    subset = rng.choice(len(train_all), min(setting.train_size, len(train_all)), replace=False)
    data = train_all.take(subset)
    candidates = dataset.candidates
    if setting.marked_classes > len(candidates):
        raise ValueError(f"{setting.marked_classes} marked classes, but the data has {len(candidates)} to choose from")
    classes = [candidates[(seed + k) % len(candidates)] for k in range(setting.marked_classes)]
    size = data.images.shape[1:3]
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        folder = Path(scratch)
        secret = vault.create(None, folder / "vault.json")
        conn = db.connect(folder / "isotopes.db")
        marker = Marker(secret, conn)
        marked, tested, used = data, [], np.zeros(0, np.int64)
        for class_index, target in enumerate(classes):
            # a user's photos in this class, split across their sites: each site marks its share
            share = setting.fraction / setting.marks_per_class
            for part in range(setting.marks_per_class):
                site = f"site{class_index}-{part}.example"
                if setting.family == photo_marks.FAMILY:  # the user imports one of their photos as the mark
                    settings.update(conn, site, enabled=True, alpha=setting.alpha)
                    registry.import_image(conn, secret, site, photo_marks.as_upload(photo_marks.photo_mark(
                        os.urandom(32))))
                else:
                    settings.update(conn, site, enabled=True, alpha=setting.alpha, family=setting.family)
                marked, chosen = mark_class(marked, marker, site, target, share,
                                            seed * 1000 + class_index * 10 + part, exclude=used)
                used = np.concatenate([used, chosen])
                tested.append((site, target))
        if setting.recompress:
            marked = _recompressed(marked, used)
        defence = setting.defence if setting.defence != "top-k" else None
        clean_key = (setting.train_size, setting.epochs, defence, seed)
        models = {}
        for name, training_data in (("clean", data), ("marked", marked)):
            if name == "clean" and clean_models is not None and clean_key in clean_models:
                models[name] = clean_models[clean_key]
            else:
                result = train(training_data, epochs=setting.epochs, seed=seed, defence=defence)
                models[name] = (result, accuracy(result, test))
            export_onnx(models[name][0], folder / f"{name}.onnx")
        if clean_models is not None:
            clean_models[clean_key] = models["clean"]
        marks = []
        for site, target in tested:
            issued = registry.issued(conn, site)[-1]
            marks.append(MarkUnderTest(issued.mark_id, site, issued.epoch, issued.family,
                                       registry.pixels(secret, issued), setting.alpha))
        needed = panel_size_for(1, Options(level=setting.level, panel_size=setting.panel_size))
        aux_pool = rng.permutation(len(test))[:max(setting.aux_images, BUDGET[0])]
        loaded = {name: load_model(f"onnx:{folder / name}.onnx") for name in models}
        if setting.defence == "top-k":
            loaded = {name: TopK(model, 3) for name, model in loaded.items()}
        tests = [(ImageSet(size, array=test.images[aux_pool[:images]]), panel_size, focus, level, suffix)
                 for images, panel_size, focus, level, suffix in (
                     (setting.aux_images, setting.panel_size, setting.focus, setting.level, ""),
                     (*BUDGET, None, 0.05, "_budget"))]
        verdicts: dict[str, list] = {}
        draw_external = photo_marks.photo_mark if setting.family == photo_marks.FAMILY \
            else partial(render, setting.family)
        for mark, (_, target) in zip(marks, tested):
            # each mark gets its own external marks, fresh draws neither model ever saw, so that the trials of
            # one run stay independent; both models and both tests of a mark share them
            panel = [draw_external(seed) for seed in external_seeds(max(needed, BUDGET[1]))]
            for name, model in loaded.items():
                for aux, panel_size, focus, level, suffix in tests:
                    verdicts.setdefault(name + suffix, []).append(_test(model, aux, mark, panel, Options(
                        level=level, label=target, panel_size=panel_size, focus=focus, sequential=False,
                        paper_v=True)))
        trials = [Trial(site, target, **{key: verdicts[key][index] for key in verdicts})
                  for index, (site, target) in enumerate(tested)]
        distinguisher = None
        if setting.marked_classes > 1 and setting.marks_per_class == 1 and setting.defence != "top-k":
            distinguisher = _distinguisher(load_model(f"onnx:{folder / 'marked'}.onnx"),
                                           test.images[aux_pool[:setting.aux_images]], marks,
                                           [target for _, target in tested])
        conn.close()
        if keep is not None:
            shutil.copytree(folder, keep)
            (keep / "run.json").write_text(json.dumps({
                "setting": asdict(setting), "seed": seed, "marks": [{"site": s, "label": t} for s, t in tested],
                "aux": aux_pool.tolist()}))
    return {"setting": asdict(setting), "seed": seed, "accuracy_clean": models["clean"][1],
            "accuracy_marked": models["marked"][1], "trials": [asdict(trial) for trial in trials],
            "distinguisher": distinguisher}


def _distinguisher(model, images: np.ndarray, marks: list[MarkUnderTest], labels: list[int]) -> dict:
    """V_D: a party that knows every user's mark attributes each marked class to the mark whose blend raises
    that class's probability most (stats.distinguisher_pvalues)."""
    blender = Blender(images)
    top1 = model.predict(images).argmax(axis=1)
    outputs = [model.predict(blender(mark_at(mark.pixels, model.size), mark.alpha)) for mark in marks]
    scores = np.array([[outputs[k][top1 != label, label].mean() for k in range(len(marks))] for label in labels])
    pvalues = distinguisher_pvalues(scores)
    return {"marks": len(marks), "correct": int(np.sum(np.isclose(pvalues, 1 / len(marks)))),
            "pvalues": pvalues.tolist()}


def _recompressed(marked: LabelledImages, indices: np.ndarray) -> LabelledImages:
    images = marked.images.copy()
    for index in indices:
        images[index] = social_site(images[index])
    return replace(marked, images=images)
