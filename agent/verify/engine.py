"""Verification: aux images -> blend each mark -> model queries -> statistical test -> per-mark results.

The engine first reads the model's answers on every aux image without a mark. From those alone it chooses the
images each tested label is tested on: never one the model already gives the label, and with a focus (the
default) only the few it leans to the label most, which a mark pushes furthest (docs/statistics.md, "Which
images"). Then it queries the model on those images blended with each mark under test and with a panel of K
external marks from the same generator at the same strength. The panel is shared by all of the user's marks of
one family and strength, so testing a user's ten site marks costs ten extra blends per image, not ten panels.

The default test ranks the true mark's summed P(j) among the panel's (stats.panel_rank_pvalue). The images were
chosen before any mark was blended, so the marks stay exchangeable and the rank p-value exact. Several marks are
adjusted with Holm. Blended images are processed in batches; after each batch the engine bounds what the rest
could still change (each image adds between 0 and 1 to a sum of P(j)) and stops as soon as every decision is
certain, so an early stop gives exactly the decision the full run would. Without a known label, each label has
its own images and every mark's statistic is its largest lead over the rest of its set across all labels
(`_largest_lead`), the same for the true mark and each external one, which keeps the test exact. The paper's V
(`Options.paper_v`, off by default) compares each true mark with one external mark on every usable aux image.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import numpy as np

from . import stats
from ..marks.keys import external_seeds
from .blend import Blender, blend_device, mark_at
from .images import ImageSet
from .models import Model, top_labels

DEFAULT_PANEL = 99
"""External marks per test. Level 0.05 then takes the top five of 100, where 39 marks asked for the top two of 40:
a mark truly in the top 5% of its family is detected more often (docs/statistics.md, "How many external
marks"). The smallest p-value is 0.01."""
DEFAULT_IMAGES = 200
DEFAULT_FOCUS = 5
"""Aux images a label is tested on: the ones of DEFAULT_IMAGES the model, unmarked, leans to the label most. On
the twenty a = 0.4 power models the five closest of 200 detected as often as all 200 (0.945-0.955 over two pools
of external marks, and 0.944) at 700 queries instead of 20,200; ten or twenty did no better
(docs/results/power/query-budget.md)."""
BATCH = 50
CALL_VALUES = 1 << 20
"""Pixel values per model call: for a small model the blends of several marks of a batch go to the model
together (a 28 px CNN runs 8 marks' 400 images in one call, about 1.2x faster than eight calls of 50), while a
large model's call stays one batch of one mark (at 224 px, larger calls ran 1.5x slower, out of the cache)."""


class Cancelled(Exception):
    """The run was cancelled (between two model calls: at most one call, one batch of images, is waited for)."""


class NotTestable(ValueError):
    """Nothing in the request can be tested (the message says why)."""


@dataclass(frozen=True)
class MarkUnderTest:
    """One of the user's marks: its pixels (the square base image), its generator and the strength it was used at.
    `panel` renders an external mark of the same generator from a seed; None when there is none (imported photos)."""

    mark_id: str
    site: str
    epoch: int
    family: str
    pixels: np.ndarray
    alpha: float
    started: str | None = None
    panel: Callable[[bytes], np.ndarray] | None = None


@dataclass(frozen=True)
class Options:
    level: float = 0.05
    panel_size: int = DEFAULT_PANEL
    label: int | None = None  # None: the label-free test
    focus: int | None = DEFAULT_FOCUS  # aux images per tested label, those closest to it; None: every usable one
    batch: int = BATCH
    sequential: bool = True  # stop once every decision is certain
    paper_v: bool = False  # also the paper's V: two more queries per aux image and mark
    paper_rounds: int = 5
    paper_lambda: float = 0.1
    paper_delta: float = 0.6


@dataclass
class MarkResult:
    site: str
    mark_id: str
    epoch: int
    started: str | None
    label: str | None
    label_index: int | None
    detected: bool
    p_value: float | None
    p_adjusted: float | None
    shift: float | None  # mean change of the score of the label with the true mark (P(j), or -rank)
    panel_shifts: list[float] = field(default_factory=list)
    z: float | None = None  # the true mark's lead over the panel mean, in panel standard deviations
    images: int = 0  # aux images the test used (after excluding those already given the label)
    paper_v: dict | None = None
    note: str | None = None


@dataclass
class Verification:
    output: str  # what the scores are: "probabilities" or "ranks"
    level: float
    panel_size: int
    queries: int
    queries_planned: int
    images: int  # aux images read
    images_tested: int  # of them, those the marks were blended into (a focus, less after an early stop)
    stopped_early: bool
    label_mode: str  # "given" or "label-free"
    results: list[MarkResult]

    @property
    def detected(self) -> bool:
        return any(result.detected for result in self.results)

    @property
    def p_any(self) -> float | None:
        """The evidence for "some mark of mine was learned": the smallest Holm-adjusted p-value."""
        tested = [r.p_adjusted for r in self.results if r.p_adjusted is not None]
        return min(tested) if tested else None

    def to_json(self) -> dict:
        return {"decision": "detected" if self.detected else "not detected", "p_any": self.p_any,
                **{k: v for k, v in asdict(self).items() if k != "results"},
                "results": [asdict(result) for result in self.results]}


@dataclass
class _Group:
    """The marks of one generator and strength, and their shared panel."""

    alpha: float
    marks: list[int]  # indices into the request's marks
    panel: list[np.ndarray]


def _score(model: Model, outputs: np.ndarray) -> np.ndarray:
    """Higher means the model leans more to the label: P(label), or minus its rank."""
    return outputs if model.output == "probabilities" else -outputs


def _score_bounds(model: Model) -> tuple[float, float]:
    labels = len(model.labels)
    return (0.0, 1.0) if model.output == "probabilities" else (-(labels + 1.0), -1.0)


def render_panel(render: Callable[[bytes], np.ndarray], count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`count` external marks from fresh seeds, at the model's size, rendered on every core."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda seed: mark_at(render(seed), size), external_seeds(count)))


def panel_size_for(marks: int, options: Options) -> int:
    """The panel asked for, grown when needed so that each of `marks` marks can still be detected after Holm's
    adjustment: the smallest rank p-value, 1 / (K + 1), times the number of marks must reach the level."""
    needed = int(np.ceil(marks / options.level - 1e-9)) - 1
    return max(options.panel_size, needed)


class _Run:
    def __init__(self, model: Model, aux: ImageSet, marks: list[MarkUnderTest], options: Options,
                 progress: Callable[[dict], None] | None, cancel: threading.Event | None):
        self.model, self.aux, self.marks, self.options = model, aux, marks, options
        self.progress, self.cancel = progress, cancel
        self.size = model.size
        self.groups = self._groups()
        self.queries = 0
        # query marks: the user's marks first, then each group's panel; clean images are queried separately
        self.query_marks: list[tuple[np.ndarray, float]] = (
            [(mark_at(marks[i].pixels, self.size), group.alpha) for group in self.groups for i in group.marks]
            + [(external, group.alpha) for group in self.groups for external in group.panel])
        self.order = [i for group in self.groups for i in group.marks]  # query row -> mark index
        self.labels = list(range(len(model.labels))) if options.label is None else [options.label]
        # the paper's V compares each true mark with its panel's first external mark, on every usable image
        self.paper_rows = list(dict.fromkeys(
            [*range(len(self.order)), *(int(self._panel_rows(i)[0]) for i in self.order)])) if options.paper_v else []
        n = len(aux)
        focused = n if options.focus is None else min(n, options.focus * len(self.labels))
        # at most this many; exact once the clean images are read
        self.queries_planned = n + focused * len(self.query_marks) + n * len(self.paper_rows)
        self.paper_scores = {row: np.full((n, len(model.labels)), np.nan) for row in self.paper_rows}
        self._stage = ("reading the clean images", 0, n)

    def _groups(self) -> list[_Group]:
        keyed: dict[tuple[str, float], _Group] = {}
        size = panel_size_for(sum(mark.panel is not None for mark in self.marks), self.options)
        for index, mark in enumerate(self.marks):
            if mark.panel is None:
                continue
            key = (mark.family, mark.alpha)
            if key not in keyed:
                panel = render_panel(mark.panel, size, self.size)
                keyed[key] = _Group(mark.alpha, [], panel)
            keyed[key].marks.append(index)
        if not keyed:
            raise NotTestable("none of these marks can be tested: imported photo marks have no generator to draw "
                              "an external panel from")
        return list(keyed.values())

    def _panel_rows(self, mark_index: int) -> np.ndarray:
        """Rows of query_marks holding the panel of this mark's group."""
        offset = len(self.order)
        for group in self.groups:
            if mark_index in group.marks:
                return np.arange(offset, offset + len(group.panel))
            offset += len(group.panel)
        raise KeyError(mark_index)

    # --- querying -------------------------------------------------------------------------------------------

    def _read_clean(self) -> tuple[np.ndarray, np.ndarray]:
        """Every aux image without a mark: its top label and its scores, (images,) and (images, labels)."""
        n, top1, scores = len(self.aux), [], []
        for first in range(0, n, self.options.batch):
            outputs = self._predict(self.aux[first:first + self.options.batch])
            top1.append(top_labels(self.model, outputs))
            scores.append(_score(self.model, outputs))
            self._report("reading the clean images", first + len(outputs), n)
        return np.concatenate(top1), np.concatenate(scores)

    def _blended(self, images: np.ndarray, rows: list[int]) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """For batches of the aux images at `images` (indices): the indices, and the scores (batch, labels) of
        each query mark in `rows` blended into them."""
        for first in range(0, len(images), self.options.batch):
            index = images[first:first + self.options.batch]
            pixels = self.aux[index]
            blender = Blender(pixels, blend_device(self.model))
            per_call = max(1, CALL_VALUES // pixels.size)
            scored = []
            for start in range(0, len(rows), per_call):
                marks = [self.query_marks[row] for row in rows[start:start + per_call]]
                outputs = self._predict(np.concatenate([blender(mark, alpha) for mark, alpha in marks]))
                scored.extend(_score(self.model, part) for part in np.split(outputs, len(marks)))
            yield index, scored

    def _predict(self, images: np.ndarray) -> np.ndarray:
        """The model's outputs for one call (a batch with no mark, or with a few marks); a slow model API may take
        a minute over one, so cancelling is checked and progress (its queries) reported at every call."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        outputs = self.model.predict(images)
        self.queries += len(images)
        self._report(*self._stage)
        return outputs

    def _report(self, phase: str, done: int, total: int) -> None:
        self._stage = (phase, done, total)
        if self.progress is not None:
            self.progress({"phase": phase, "images_done": done, "images_total": total, "queries": self.queries,
                           "queries_planned": self.queries_planned})

    # --- the test -------------------------------------------------------------------------------------------

    def run(self) -> Verification:
        top1, clean = self._read_clean()
        used = self._images_per_label(top1, clean)
        blended = np.flatnonzero(used[:, self.labels].any(axis=1))
        paper_only = np.setdiff1d(np.flatnonzero(self._paper_usable(top1)), blended) if self.paper_rows else []
        self.queries_planned = self.queries + len(blended) * len(self.query_marks) \
            + len(paper_only) * len(self.paper_rows)
        if self.options.label is None:
            chosen, per_mark, pvalues, seen, stopped_early = self._test_label_free(clean, used, blended)
        else:
            chosen, per_mark, pvalues, seen, stopped_early = self._test(clean, used, blended)
        paper = self._paper_verdicts(top1, chosen) if self.paper_rows else {}
        return Verification(self.model.output, self.options.level, len(self.groups[0].panel), self.queries,
                            self.queries_planned, len(self.aux), seen, stopped_early,
                            "label-free" if self.options.label is None else "given",
                            self._results(chosen, per_mark, pvalues, paper))

    def _images_per_label(self, top1: np.ndarray, clean: np.ndarray) -> np.ndarray:
        """(images, labels): the aux images each label is tested on. Never those the model already gives the
        label; of the rest, with a focus, the `focus` it leans to the label most. Chosen from the clean images
        alone, before any mark is blended, so the marks stay exchangeable and the rank p-value exact."""
        usable = np.ones(clean.shape, bool)
        usable[np.arange(len(top1)), top1] = False
        if self.options.focus is None:
            return usable
        used = np.zeros_like(usable)
        for label in self.labels:
            candidates = np.flatnonzero(usable[:, label])
            closest = np.argsort(-clean[candidates, label], kind="stable")[:self.options.focus]
            used[candidates[closest], label] = True
        return used

    def _keep_paper(self, index: np.ndarray, scored: list[np.ndarray], rows: list[int]) -> None:
        for row, values in zip(rows, scored):
            if row in self.paper_scores:
                self.paper_scores[row][index] = values

    def _test(self, clean: np.ndarray, used: np.ndarray, blended: np.ndarray):
        """The given label's test: every mark's sums over the images `used` for the label, batch by batch,
        stopping once every decision is certain."""
        label = self.options.label
        low, high = _score_bounds(self.model)
        rows = list(range(len(self.query_marks)))
        per_mark = {i: _Tally(len(self._panel_rows(i))) for i in self.order}
        seen, stopped_early = 0, False
        self._stage = ("testing", 0, len(blended))
        for index, scored in self._blended(blended, rows):
            seen += len(index)
            self._keep_paper(index, scored, rows)
            for row, mark_index in enumerate(self.order):
                per_mark[mark_index].add(used[index, label], clean[index, label], scored[row][:, label],
                                         [scored[r][:, label] for r in self._panel_rows(mark_index)])
            self._report("testing", seen, len(blended))
            if self.options.sequential and seen < len(blended) \
                    and self._certain(per_mark, (len(blended) - seen) * (high - low)):
                stopped_early = True
                break
        return ({i: label for i in self.order}, per_mark, {i: tally.pvalue(0.0) for i, tally in per_mark.items()},
                seen, stopped_early)

    def _test_label_free(self, clean: np.ndarray, used: np.ndarray, blended: np.ndarray):
        """Without a label, each mark's statistic is its largest lead, over every label, over the other marks of
        its set (the true mark and its panel), in their standard deviations. Every mark of the set gets the same
        statistic from the same data, so they stay exchangeable and the rank p-value stays exact; the label
        reported is the one where the true mark leads most. Every image is used; there is no early stop."""
        rows = list(range(len(self.query_marks)))
        totals = np.zeros((len(rows), clean.shape[1]))
        self._stage = ("testing every label", 0, len(blended))
        for index, scored in self._blended(blended, rows):
            self._keep_paper(index, scored, rows)
            for row, values in enumerate(scored):
                totals[row] += (values * used[index]).sum(axis=0)
            self._report("testing every label", self._stage[1] + len(index), len(blended))
        counts = used.sum(axis=0)
        chosen, pvalues, per_mark = {}, {}, {}
        for row, mark_index in enumerate(self.order):
            set_rows = np.concatenate([[row], self._panel_rows(mark_index)])
            chosen[mark_index], pvalues[mark_index] = _largest_lead(totals[set_rows], counts)
            label = chosen[mark_index]
            tally = per_mark[mark_index] = _Tally(len(set_rows) - 1)
            tally.count, tally.clean = int(counts[label]), float(clean[used[:, label], label].sum())
            tally.true, tally.panel = float(totals[row, label]), totals[set_rows[1:], label].copy()
        return chosen, per_mark, pvalues, len(blended), False

    def _certain(self, per_mark: dict[int, _Tally], swing: float) -> bool:
        """Whether no outcome of the remaining images can change any Holm decision: Holm's adjusted p-values grow
        with every raw one, so a mark is surely detected if it is even with every p-value at its largest (each
        true mark losing `swing` to its panel), and surely not if it is not even with every one at its smallest."""
        largest = np.array([tally.pvalue(-swing) for tally in per_mark.values()])
        smallest = np.array([tally.pvalue(swing) for tally in per_mark.values()])
        level = self.options.level * (1 + 1e-9)  # K + 1 = marks / level exactly must still reach the level
        sure_yes = stats.holm(largest) <= level
        sure_no = stats.holm(smallest) > level
        return bool(np.all(sure_yes | sure_no))

    # --- the paper's V --------------------------------------------------------------------------------------

    def _paper_usable(self, top1: np.ndarray) -> np.ndarray:
        """The aux images the paper's V may need: with a label, those the model does not already give it."""
        return np.ones(len(top1), bool) if self.options.label is None else top1 != self.options.label

    def _paper_verdicts(self, top1: np.ndarray, chosen: dict[int, int]) -> dict[int, dict]:
        """The paper's V for every mark: its true mark against its panel's first external mark, each blended into
        every aux image the model does not give the mark's label, split into Q rounds. Images the test did not
        blend with both (out of its focus, or after an early stop) are queried with just these marks now."""
        missing = np.flatnonzero(self._paper_usable(top1) & np.isnan(self.paper_scores[self.paper_rows[0]][:, 0]))
        self.queries_planned = self.queries + len(missing) * len(self.paper_rows)
        self._stage = ("the paper's test", 0, len(missing))
        for index, scored in self._blended(missing, self.paper_rows):
            self._keep_paper(index, scored, self.paper_rows)
            self._report("the paper's test", self._stage[1] + len(index), len(missing))
        verdicts = {}
        for row, mark_index in enumerate(self.order):
            label = chosen[mark_index]
            usable = top1 != label
            true = self.paper_scores[row][usable, label]
            external = self.paper_scores[self._panel_rows(mark_index)[0]][usable, label]
            verdicts[mark_index] = _paper_v(true, external, self.options)
        return verdicts

    def _results(self, chosen: dict[int, int], per_mark: dict[int, _Tally], pvalues: dict[int, float],
                 paper: dict[int, dict]) -> list[MarkResult]:
        tested = list(per_mark)
        raw = [pvalues[i] for i in tested]
        adjusted = dict(zip(tested, stats.holm(raw))) if tested else {}
        results = []
        for index, mark in enumerate(self.marks):
            base = dict(site=mark.site, mark_id=mark.mark_id, epoch=mark.epoch, started=mark.started)
            if index not in per_mark:
                results.append(MarkResult(**base, label=None, label_index=None, detected=False, p_value=None,
                                          p_adjusted=None, shift=None,
                                          note="not testable: an imported photo mark has no generator for an "
                                               "external panel"))
                continue
            tally, label = per_mark[index], chosen[index]
            results.append(MarkResult(
                **base, label=self.model.labels[label], label_index=label,
                detected=bool(adjusted[index] <= self.options.level * (1 + 1e-9)), p_value=pvalues[index],
                p_adjusted=float(adjusted[index]), shift=tally.shift(), panel_shifts=tally.panel_shifts(),
                z=tally.z(), images=tally.count, paper_v=paper.get(index)))
        return results


def _largest_lead(totals: np.ndarray, counts: np.ndarray) -> tuple[int, float]:
    """For a set of marks (the true mark first) and their summed scores per label over `counts` images: the label
    where the true mark leads the others most, and the rank p-value of its largest lead among every mark's
    largest lead over the rest."""
    usable = np.flatnonzero(counts > 0)
    means = totals[:, usable] / counts[usable]
    leads = []
    for member in range(len(means)):
        others = np.delete(means, member, axis=0)
        leads.append((means[member] - others.mean(axis=0)) / (others.std(axis=0) + 1e-12))
    best = np.array([lead.max() for lead in leads])
    return int(usable[np.argmax(leads[0])]), stats.panel_rank_pvalue(best[0], best[1:])


def _paper_v(true: np.ndarray, external: np.ndarray, options: Options) -> dict:
    """The paper's V on per-image scores of the true and one external mark: the images split into Q rounds."""
    per_round = len(true) // options.paper_rounds
    if per_round < 2:
        return {"detected": False, "note": "too few images for the paper's rounds"}
    shape = (options.paper_rounds, per_round)
    used = options.paper_rounds * per_round
    verdict = stats.paper_verifier(true[:used].reshape(shape), external[:used].reshape(shape),
                                   options.paper_lambda, options.paper_delta)
    return {"detected": verdict.detected, "round_pvalues": verdict.round_pvalues,
            "significant_rounds": verdict.significant_rounds, "rounds": options.paper_rounds,
            "images_per_round": per_round}


class _Tally:
    """The running sums of one mark's test over the images it uses: the clean images', the true mark's and each
    external mark's scores of the label."""

    def __init__(self, panel: int):
        self.count = 0
        self.clean = 0.0
        self.true = 0.0
        self.panel = np.zeros(panel)

    def add(self, keep: np.ndarray, clean: np.ndarray, true: np.ndarray, panel: list[np.ndarray]) -> None:
        self.count += int(keep.sum())
        self.clean += float(clean[keep].sum())
        self.true += float(true[keep].sum())
        self.panel += [float(values[keep].sum()) for values in panel]

    def pvalue(self, true_advantage: float) -> float:
        """The rank p-value if the remaining images added `true_advantage` to the true sum relative to every
        external one (0 for the p-value of the images seen)."""
        return stats.panel_rank_pvalue(self.true + true_advantage, self.panel)

    def shift(self) -> float:
        return (self.true - self.clean) / max(self.count, 1)

    def panel_shifts(self) -> list[float]:
        return [float(v) for v in (self.panel - self.clean) / max(self.count, 1)]

    def z(self) -> float | None:
        spread = float(np.std(self.panel))
        return float((self.true - np.mean(self.panel)) / spread) if spread > 0 else None


def verify(model: Model, aux: ImageSet, marks: list[MarkUnderTest], options: Options = Options(),
           progress: Callable[[dict], None] | None = None, cancel: threading.Event | None = None) -> Verification:
    """Test every mark against the model, querying it with the aux images (at the model's size)."""
    if tuple(aux.size) != tuple(model.size):
        raise ValueError(f"aux images are read at {aux.size}, the model takes {model.size}")
    if not marks:
        raise NotTestable("there is no mark to test: mark some uploads first")
    if options.label is not None and not 0 <= options.label < len(model.labels):
        raise ValueError(f"label {options.label} is not one of the model's {len(model.labels)} labels")
    minimum = 4 if options.label is None else 2
    if len(aux) < minimum:
        raise NotTestable(f"{len(aux)} aux images are too few; use at least a hundred")
    return _Run(model, aux, marks, options, progress, cancel).run()
