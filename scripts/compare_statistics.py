#!/usr/bin/env python3
"""Research benchmark: does another test statistic find a learned mark more often than the default one?

Each run marks a share of one Fashion-MNIST class through the product's marking path (a vault, a site's mark,
the upload blending code) and trains three models with the harness's trainer: the marked model, its clean twin
(same seed and images, no marks) and an independent clean reference (other seed, other images). The true mark
and K external marks of the same family are blended into aux test images, and into the user's own uploaded
photos, and every model answers every blend.

Every statistic below is computed the same way for each of the K + 1 marks, so under the null (the model never
saw the mark) the marks stay exchangeable and the rank p-value is exact whatever the statistic; only power can
differ. The last row is not a test: it subtracts each mark's score on the clean twin, which no user has, and so
bounds what any statistic of P(label) could find, i.e. how much of the mark the model learned at all.

Usage: .venv/bin/python scripts/compare_statistics.py [--runs 10] [--alpha 0.3] [--fraction 0.1]
       [--family texture] [--epochs 5]
Prints, per statistic: detections at level 0.05 (39 external marks) and 0.01 (99), the mean z (the true mark's
lead over the panel in panel standard deviations) on the marked models, and the false positives of the same
mark on the clean twins.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import db, settings, vault  # noqa: E402
from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.lab.experiment import HARD_CLASSES  # noqa: E402
from agent.lab.isotopes import mark_class  # noqa: E402
from agent.lab.training import probabilities, train  # noqa: E402
from agent.marking import Marker  # noqa: E402
from agent.marks import registry  # noqa: E402
from agent.marks.families import render  # noqa: E402
from agent.marks.keys import external_seeds  # noqa: E402
from agent.verify.blend import Blender, mark_at  # noqa: E402
from agent.verify.stats import panel_rank_pvalue  # noqa: E402

PANEL = 99
LEVELS = ((0.05, 39), (0.01, 99))  # (level, external marks): the smallest p-value 1 / (K + 1) reaches the level
TINY = 1e-7


def _answers(run, images: np.ndarray, marks: list[np.ndarray], alpha: float) -> np.ndarray:
    """(marks, images, labels) probabilities of `run` for each mark blended into each image."""
    blender = Blender(images)
    return np.stack([probabilities(run, blender(mark, alpha)) for mark in marks]).astype(np.float64)


def _standardised(values: np.ndarray) -> np.ndarray:
    """Each image's values over the marks in units of their spread on that image, averaged per mark."""
    return ((values - values.mean(axis=0)) / (values.std(axis=0) + 1e-12)).mean(axis=1)


def _residual(values: np.ndarray, predictors: np.ndarray) -> np.ndarray:
    """What is left of each mark's value after a least-squares fit on the predictors (one column each, or one
    vector), fitted over all marks."""
    design = np.column_stack([np.ones(len(values)), predictors])
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coefficients


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "upside down": lambda mark: mark[::-1],
    "moved by half the image": lambda mark: np.roll(mark, (mark.shape[0] // 2, mark.shape[1] // 2), axis=(0, 1)),
}
"""Each mark is also blended transformed. The trainer's augmentation (2 px shifts, left-right flips) never shows
the model these forms, so a model that learned the mark may not know them, while a mark's pull toward a label
before any training may survive them (its colours, its texture): the difference could keep the first and
cancel the second."""

Statistic = Callable[[dict, int], np.ndarray]
"""From one model's answers to one value per mark. Keys: aux, own, reference, twin and each of TRANSFORMS, each
(marks, images) P(label); labels, (marks, labels) the mean probability of every label on the aux images."""

STATISTICS: dict[str, Statistic] = {
    "mean P(label) (the default test)": lambda a, _: a["aux"].mean(axis=1),
    "mean log P(label)": lambda a, _: np.log(a["aux"] + TINY).mean(axis=1),
    "per-image standardised log P(label)": lambda a, _: _standardised(np.log(a["aux"] + TINY)),
    "mean per-image rank of the mark": lambda a, _: a["aux"].argsort(axis=0).argsort(axis=0).mean(axis=1),
    "mean P(label) less what the other labels' means predict":
        lambda a, label: _residual(a["aux"].mean(axis=1), np.delete(a["labels"], label, axis=1)),
    "mean P(label) on the user's own uploaded photos": lambda a, _: a["own"].mean(axis=1),
    "mean P(label) less an independent clean model's": lambda a, _: _residual(a["aux"].mean(axis=1),
                                                                               a["reference"].mean(axis=1)),
    "mean P(label) less the same mark's upside down": lambda a, _: a["aux"].mean(axis=1)
                                                                      - a["upside down"].mean(axis=1),
    "mean P(label) less what the mark upside down predicts": lambda a, _: _residual(a["aux"].mean(axis=1),
                                                                                     a["upside down"].mean(axis=1)),
    "mean P(label) less the same mark's moved by half": lambda a, _: a["aux"].mean(axis=1)
                                                                        - a["moved by half the image"].mean(axis=1),
    "bound: mean P(label) less the clean twin's": lambda a, _: a["aux"].mean(axis=1) - a["twin"].mean(axis=1),
}


def _rank(values: np.ndarray, panel: int) -> tuple[float, float]:
    """The true mark's (first value's) rank p-value against the first `panel` external marks, and its z."""
    true, external = values[0], values[1:panel + 1]
    return panel_rank_pvalue(true, external), (true - external.mean()) / external.std()


def one_run(seed: int, args: argparse.Namespace) -> dict[str, dict[str, tuple]]:
    """Train the three models of one run; per statistic and model (marked, clean), the true mark's p-values at
    each of LEVELS' panel sizes and its z."""
    rng = np.random.default_rng(seed)
    train_all, test = fashion_mnist("train"), fashion_mnist("test")
    subset = rng.choice(len(train_all), args.train_size, replace=False)
    data = train_all.take(subset)
    target = HARD_CLASSES[seed % len(HARD_CLASSES)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        secret = vault.create(None, folder / "vault.json")
        conn = db.connect(folder / "isotopes.db")
        settings.update(conn, "photos.example", enabled=True, alpha=args.alpha, family=args.family)
        marked, uploaded = mark_class(data, Marker(secret, conn), "photos.example", target, args.fraction, seed)
        true_mark = registry.pixels(secret, registry.issued(conn, "photos.example")[-1])
        conn.close()
    reference_subset = rng.choice(len(train_all), args.train_size, replace=False)
    models = {"marked": train(marked, epochs=args.epochs, seed=seed),
              "clean": train(data, epochs=args.epochs, seed=seed),
              "reference": train(train_all.take(reference_subset), epochs=args.epochs, seed=seed + 1000)}
    size = data.images.shape[1:3]
    marks = [mark_at(true_mark, size)] + [mark_at(render(args.family, s), size) for s in external_seeds(PANEL)]
    aux = test.images[rng.permutation(len(test))[:args.images]]
    own = data.images[uploaded]  # the originals of the photos the user uploaded marked
    scores = {}
    for name, run in models.items():
        kept = probabilities(run, aux).argmax(axis=1) != target  # as the engine does: not already the label
        blended = _answers(run, aux[kept], marks, args.alpha)
        scores[name] = {"aux": blended[:, :, target], "labels": blended.mean(axis=1),
                        "own": _answers(run, own, marks, args.alpha)[:, :, target]}
        for transform, change in TRANSFORMS.items():
            changed = [change(mark) for mark in marks]
            scores[name][transform] = _answers(run, aux[kept], changed, args.alpha)[:, :, target]
    outcome = {}
    for statistic_name, statistic in STATISTICS.items():
        for tested, twin in (("marked", "clean"), ("clean", None)):
            if twin is None and statistic_name.startswith("bound"):
                continue  # the bound is the marked model's against its clean twin
            answers = dict(scores[tested], reference=scores["reference"]["aux"],
                           twin=scores[twin]["aux"] if twin else None)
            values = statistic(answers, target)
            outcome.setdefault(statistic_name, {})[tested] = [_rank(values, panel) for _, panel in LEVELS]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--family", default="texture")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    runs = []
    for seed in range(args.runs):
        runs.append(one_run(seed, args))
        print(f"run {seed + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(f"{args.family}, a = {args.alpha}, p = {args.fraction}, {args.epochs} epochs, {args.train_size} training "
          f"images, {args.images} aux images, {args.runs} runs")
    print("| statistic | detected at 0.05 (K = 39) | at 0.01 (K = 99) | mean z (K = 99) | z per run | "
          "false positives at 0.05 |")
    print("|---|---|---|---|---|---|")
    for name in STATISTICS:
        marked = [run[name]["marked"] for run in runs]
        clean = [run[name]["clean"] for run in runs if "clean" in run[name]]
        hits = [sum(r[k][0] <= level for r in marked) for k, (level, _) in enumerate(LEVELS)]
        zs = [r[1][1] for r in marked]
        false = "-" if name.startswith("bound") else f"{sum(r[0][0] <= 0.05 for r in clean)}/{len(clean)}"
        print(f"| {name} | {hits[0]}/{len(marked)} | {hits[1]}/{len(marked)} | {np.mean(zs):.2f} | "
              f"{' '.join(f'{z:.1f}' for z in zs)} | {false} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
