#!/usr/bin/env python3
"""Research benchmark: how should a test spend its queries, on aux images or on external marks?

Reads the runs that `scripts/reproduce.py PRESET --keep DIR` kept, and measures two things on their models.

1. The engine's own test (`engine.verify`, as `isotopes verify` runs it) with the aux images focused: of a fresh
   draw of aux images from the test set, the few the model, unmarked, leans to the mark's label most. Each kept
   model is verified REPEATS times per design with fresh aux draws and panels (drawn from one pool of 400
   external marks per setting, rendered once).
2. Every aux image, resampled: for each run it queries the marked and the clean model once, on the run's aux
   images, unblended, blended with the user's true mark and with each of a fresh panel of 199 external marks
   of the same family at the same strength (cached beside the run as panel-answers.npz). Then, for each
   allocation of images and external marks, it draws the images and the panel at random from those answers
   many times per model and applies the default test on every image (the summed P(label) over the drawn images
   the clean model does not already give the label, ranked among the panel's; level 0.05).
A model's share of detections is its chance of detection with that design; the mean over models is the
detection rate, and over the clean models the false-positive rate.

Usage: .venv/bin/python scripts/query_budget.py DIR [--repeats 20] [--draws 400] [--level 0.05]
Queries per test: the images read unblended, then the tested images x (1 + K), the true mark and K external
marks; the paper's protocol takes 2,500 per test (2 x Q x n, Q = 5, n = 250), the issue's target is a third.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import db, vault  # noqa: E402
from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.verify.blend import Blender, mark_at  # noqa: E402
from agent.verify import engine  # noqa: E402
from agent.verify.engine import render_panel  # noqa: E402
from agent.verify.images import ImageSet  # noqa: E402
from agent.verify.models import load_model  # noqa: E402
from agent.verify.stats import panel_rank_pvalue  # noqa: E402
from agent.verify.user_marks import used_marks  # noqa: E402

PANEL = 199
PAPER_QUERIES = 2 * 5 * 250
ALLOCATIONS = ((200, 39), (200, 99), (100, 99), (50, 99), (20, 99), (39, 19), (20, 39), (10, 79), (8, 99))
"""(aux images, external marks): the harness's default test, a larger panel with fewer and fewer images, and
allocations of about 820 queries (a third of the paper's 2,500)."""
FOCUSED = ((200, 5, 99), (100, 5, 99), (200, 10, 39), (200, 10, 99), (200, 20, 99))
"""(aux images read, images tested, external marks): the product's default first."""
POOL = 400


def kept_user(kept: Path) -> tuple[dict, engine.MarkUnderTest, int]:
    """A kept run's description, its one tested mark as `isotopes verify` would find it in the run's vault and
    ledger, and its label."""
    run = json.loads((kept / "run.json").read_text())
    ((site, label),) = [(mark["site"], mark["label"]) for mark in run["marks"]]
    conn = db.connect(kept / "isotopes.db")
    (mark,) = used_marks(vault.unlock(None, kept / "vault.json"), conn, [site])
    conn.close()
    return run, mark, label


def focused_chances(kept: Path, test_images: np.ndarray, pool: list[np.ndarray], repeats: int, level: float,
                    rng: np.random.Generator) -> dict[tuple, float]:
    """Per design of FOCUSED and model ("marked", "clean"): the share of `repeats` verifications that detect
    the kept run's mark, each with fresh aux images from `test_images` and a fresh panel from `pool`; and per
    design ("queries") the mean queries of the marked model's verifications."""
    _, mark, label = kept_user(kept)
    chances = {}
    for name in ("marked", "clean"):
        model = load_model(f"onnx:{kept / name}.onnx")
        for images, focus, panel in FOCUSED:
            hits, queries = 0, 0
            for _ in range(repeats):
                aux = ImageSet(model.size, array=test_images[rng.choice(len(test_images), images, replace=False)])
                drawn = iter([pool[i] for i in rng.choice(len(pool), panel, replace=False)])
                verification = engine.verify(model, aux, [replace(mark, panel=lambda _seed: next(drawn))],
                                             engine.Options(level=level, panel_size=panel, label=label,
                                                            focus=focus, sequential=False))
                hits += verification.results[0].detected
                queries += verification.queries
            chances[images, focus, panel, name] = hits / repeats
            if name == "marked":
                chances[images, focus, panel, "queries"] = queries / repeats
    return chances


def panel_answers(kept: Path, test_images: np.ndarray) -> dict[str, np.ndarray]:
    """P(label) of the kept run's aux images (indices into `test_images`) under its true mark (row 0) and PANEL
    external marks, per model, and which images each model does not already give the label; computed once and
    cached."""
    cache = kept / "panel-answers.npz"
    if cache.exists():
        return dict(np.load(cache))
    run, mark, label = kept_user(kept)
    alpha = mark.alpha
    images = test_images[np.array(run["aux"][:run["setting"]["aux_images"]])]
    models = {name: load_model(f"onnx:{kept / name}.onnx") for name in ("marked", "clean")}
    size = models["marked"].size
    # one panel for both models, as the harness tests them
    marks = [mark_at(mark.pixels, size)] + render_panel(mark.panel, PANEL, size)
    blender = Blender(images)
    answers = {}
    for name, model in models.items():
        answers[f"{name}_kept"] = model.predict(images).argmax(axis=1) != label
        answers[name] = np.stack([model.predict(blender(mark, alpha))[:, label] for mark in marks])
    np.savez(cache, **answers)
    return answers


def detection_chance(answers: np.ndarray, kept: np.ndarray, images: int, panel: int, draws: int, level: float,
                     rng: np.random.Generator) -> float:
    """The share of random draws of `images` aux images and `panel` external marks in which the true mark
    (row 0 of answers) is detected at `level`."""
    hits = 0
    for _ in range(draws):
        chosen = rng.choice(answers.shape[1], images, replace=False)
        chosen = chosen[kept[chosen]]
        external = 1 + rng.choice(answers.shape[0] - 1, panel, replace=False)
        sums = answers[:, chosen].sum(axis=1)
        hits += panel_rank_pvalue(sums[0], sums[external]) <= level * (1 + 1e-9)
    return hits / draws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kept", type=Path, help="the folder given to reproduce.py --keep")
    parser.add_argument("--repeats", type=int, default=20, help="verifications per model and focused design")
    parser.add_argument("--draws", type=int, default=400, help="random draws per model and allocation")
    parser.add_argument("--level", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    by_setting: dict[str, list[Path]] = defaultdict(list)
    for kept in sorted(args.kept.iterdir()):
        if (kept / "run.json").exists():
            by_setting[kept.name.rsplit("-seed", 1)[0]].append(kept)
    if not by_setting:
        print(f"no kept runs in {args.kept}: run scripts/reproduce.py PRESET --keep {args.kept}", file=sys.stderr)
        return 1
    test_images = fashion_mnist("test").images
    for setting, runs in by_setting.items():
        _, mark, _ = kept_user(runs[0])
        pool = render_panel(mark.panel, POOL, test_images.shape[1:3])
        focused = defaultdict(list)
        for kept in runs:
            for key, value in focused_chances(kept, test_images, pool, args.repeats, args.level, rng).items():
                focused[key].append(value)
        print(f"\n{setting}: {len(runs)} models, level {args.level}, the engine's test focused, {args.repeats} "
              "verifications per model and design")
        print("| aux images read | tested | external marks | queries per test | of the paper's | detection | "
              "models detected in >= 95% | false positives |")
        print("|---|---|---|---|---|---|---|---|")
        for design in FOCUSED:
            marked, clean = np.array(focused[(*design, "marked")]), np.array(focused[(*design, "clean")])
            queries = float(np.mean(focused[(*design, "queries")]))
            print(f"| {design[0]} | {design[1]} | {design[2]} | {queries:.0f} | {queries / PAPER_QUERIES:.2f}x | "
                  f"{marked.mean():.3f} | {np.sum(marked >= 0.95)}/{len(marked)} | {clean.mean():.3f} |")
        chances = defaultdict(list)
        for kept in runs:
            answers = panel_answers(kept, test_images)
            for images, panel in ALLOCATIONS:
                for name in ("marked", "clean"):
                    chances[images, panel, name].append(detection_chance(
                        answers[name], answers[f"{name}_kept"], images, panel, args.draws, args.level, rng))
        print(f"\n{setting}: {len(runs)} models, level {args.level}, every aux image, {args.draws} draws per model "
              "and allocation")
        print("| aux images | external marks | queries per test | of the paper's | detection | models detected "
              "in >= 95% of draws | false positives |")
        print("|---|---|---|---|---|---|---|")
        for images, panel in ALLOCATIONS:
            marked, clean = np.array(chances[images, panel, "marked"]), np.array(chances[images, panel, "clean"])
            queries = images * (panel + 2)
            print(f"| {images} | {panel} | {queries} | {queries / PAPER_QUERIES:.2f}x | {marked.mean():.3f} | "
                  f"{np.sum(marked >= 0.95)}/{len(marked)} | {clean.mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
