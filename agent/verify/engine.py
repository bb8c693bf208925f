"""Verification: aux images -> blend each mark -> model queries -> statistical test -> per-mark results.

For every mark under test the engine queries the model on the aux images blended with that mark, with a panel
of K external marks from the same generator at the same strength, and unblended (to exclude aux images the model
already gives the tested label, and to report shifts). The panel is shared by all of the user's marks of one
family and strength, so testing a user's ten site marks costs ten extra blends per image, not ten panels.

The default test ranks the true mark's summed P(j) among the panel's (stats.panel_rank_pvalue); several marks
are adjusted with Holm. Aux images are processed in batches; after each batch the engine bounds what the rest
could still change (each image adds between 0 and 1 to a sum of P(j)) and stops as soon as every decision is
certain, so an early stop gives exactly the decision the full run would. Without a known label, every mark's
statistic is its largest lead over the rest of its set across all labels (`_largest_lead`), the same for the
true mark and each external one, which keeps the test exact.
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
    label: int | None = None  # None: pick it per mark on half of the images (label-free)
    batch: int = BATCH
    sequential: bool = True  # stop once every decision is certain
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
    images: int
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


@dataclass
class _Sums:
    """Per query mark and label: the sum of the label's score over images whose clean top-1 is not that label."""

    totals: np.ndarray  # (marks, labels)
    counts: np.ndarray  # (labels,)

    @classmethod
    def empty(cls, marks: int, labels: int) -> _Sums:
        return cls(np.zeros((marks, labels)), np.zeros(labels, np.int64))


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
        self.queries_planned = len(aux) * (1 + len(self.query_marks))
        self._stage = ("testing" if options.label is not None else "testing every label", 0, len(aux))

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

    # --- querying -------------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
        """For each batch of aux images: the clean top-1, the clean scores, and each query mark's scores."""
        for first in range(0, len(self.aux), self.options.batch):
            images = self.aux[first:first + self.options.batch]
            blender = Blender(images, blend_device(self.model))
            clean = self._predict(images)
            per_call = max(1, CALL_VALUES // images.size)
            scored = []
            for start in range(0, len(self.query_marks), per_call):
                marks = self.query_marks[start:start + per_call]
                outputs = self._predict(np.concatenate([blender(pixels, alpha) for pixels, alpha in marks]))
                scored.extend(_score(self.model, part) for part in np.split(outputs, len(marks)))
            yield top_labels(self.model, clean), _score(self.model, clean), scored

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
        if self.options.label is None:
            return self._test_label_free()
        return self._test({i: self.options.label for i in self.order})

    def _accumulate(self, sums: _Sums, top1: np.ndarray, clean: np.ndarray, scored: list[np.ndarray]) -> None:
        keep = np.ones((len(top1), sums.counts.size), bool)
        keep[np.arange(len(top1)), top1] = False
        sums.counts += keep.sum(axis=0)
        for row, values in enumerate([clean] + scored):
            sums.totals[row] += (values * keep).sum(axis=0)

    def _panel_rows(self, mark_index: int) -> np.ndarray:
        """Rows of query_marks holding the panel of this mark's group."""
        offset = len(self.order)
        for group in self.groups:
            if mark_index in group.marks:
                return np.arange(offset, offset + len(group.panel))
            offset += len(group.panel)
        raise KeyError(mark_index)

    def _test(self, chosen: dict[int, int]) -> Verification:
        n = len(self.aux)
        low, high = _score_bounds(self.model)
        rows = {mark_index: row for row, mark_index in enumerate(self.order)}
        per_mark = {i: _Tally(len(self._panel_rows(i))) for i in self.order}
        seen = 0
        stopped_early = False
        for top1, clean, scored in self._batches():
            seen += len(top1)
            for mark_index, tally in per_mark.items():
                label = chosen[mark_index]
                keep = top1 != label
                tally.add(keep, clean[:, label], scored[rows[mark_index]][:, label],
                          [scored[r][:, label] for r in self._panel_rows(mark_index)])
            self._report("testing", seen, n)
            if self.options.sequential and seen < n and self._certain(per_mark, (n - seen) * (high - low)):
                stopped_early = True
                break
        return self._verification(chosen, per_mark, {i: tally.pvalue(0.0) for i, tally in per_mark.items()},
                                  seen, stopped_early)

    def _test_label_free(self) -> Verification:
        """Without a label, each mark's statistic is its largest lead, over every label, over the other marks of
        its set (the true mark and its panel), in their standard deviations. Every mark of the set gets the same
        statistic from the same data, so they stay exchangeable and the rank p-value stays exact; the label
        reported is the one where the true mark leads most. Every image is used; there is no early stop."""
        n, labels = len(self.aux), len(self.model.labels)
        sums = _Sums.empty(len(self.query_marks) + 1, labels)
        top1s, cleans, trues, firsts = [], [], [], []  # per image, for the paper's V once the label is known
        first_rows = {i: self._panel_rows(i)[0] for i in self.order}
        for top1, clean, scored in self._batches():
            self._accumulate(sums, top1, clean, scored)
            top1s.append(top1)
            cleans.append(clean)
            trues.append([scored[row] for row in range(len(self.order))])
            firsts.append({i: scored[first_rows[i]] for i in self.order})
            self._report("testing every label", sum(map(len, top1s)), n)
        top1 = np.concatenate(top1s)
        clean = np.concatenate(cleans)
        chosen, pvalues, per_mark = {}, {}, {}
        for row, mark_index in enumerate(self.order):
            rows = np.concatenate([[1 + row], 1 + self._panel_rows(mark_index)])
            chosen[mark_index], pvalues[mark_index] = _largest_lead(sums, rows)
            label = chosen[mark_index]
            keep = top1 != label
            tally = per_mark[mark_index] = _Tally(len(rows) - 1)
            tally.count, tally.clean = int(keep.sum()), float(clean[keep, label].sum())
            tally.true, tally.panel = float(sums.totals[1 + row, label]), sums.totals[rows[1:], label].copy()
            tally.true_images = [np.concatenate([batch[row] for batch in trues])[keep, label]]
            tally.external_images = [np.concatenate([batch[mark_index] for batch in firsts])[keep, label]]
        return self._verification(chosen, per_mark, pvalues, n, False)

    def _verification(self, chosen: dict[int, int], per_mark: dict[int, _Tally], pvalues: dict[int, float],
                      images: int, stopped_early: bool) -> Verification:
        return Verification(self.model.output, self.options.level, len(self.groups[0].panel), self.queries,
                            self.queries_planned, images, stopped_early,
                            "label-free" if self.options.label is None else "given",
                            self._results(chosen, per_mark, pvalues))

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

    def _results(self, chosen: dict[int, int], per_mark: dict[int, _Tally],
                 pvalues: dict[int, float]) -> list[MarkResult]:
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
                z=tally.z(), images=tally.count, paper_v=tally.paper_v(self.options)))
        return results


def _largest_lead(sums: _Sums, rows: np.ndarray) -> tuple[int, float]:
    """For the marks in `rows` (the true mark first): the label where the true mark leads the others most, and
    the rank p-value of its largest lead among every mark's largest lead over the rest."""
    usable = np.flatnonzero(sums.counts > 0)
    means = sums.totals[np.ix_(rows, usable)] / sums.counts[usable]
    leads = []
    for member in range(len(rows)):
        others = np.delete(means, member, axis=0)
        leads.append((means[member] - others.mean(axis=0)) / (others.std(axis=0) + 1e-12))
    best = np.array([lead.max() for lead in leads])
    return int(usable[np.argmax(leads[0])]), stats.panel_rank_pvalue(best[0], best[1:])


class _Tally:
    """The running sums of one mark's test: its own, its panel's and the clean images' scores on the kept images,
    and the per-image scores of the true mark and of the first external mark for the paper's V."""

    def __init__(self, panel: int):
        self.count = 0
        self.clean = 0.0
        self.true = 0.0
        self.panel = np.zeros(panel)
        self.true_images: list[np.ndarray] = []
        self.external_images: list[np.ndarray] = []

    def add(self, keep: np.ndarray, clean: np.ndarray, true: np.ndarray, panel: list[np.ndarray]) -> None:
        self.count += int(keep.sum())
        self.clean += float(clean[keep].sum())
        self.true += float(true[keep].sum())
        self.panel += [float(values[keep].sum()) for values in panel]
        self.true_images.append(true[keep])
        self.external_images.append(panel[0][keep])

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

    def paper_v(self, options: Options) -> dict:
        """The paper's V on the same queries: the kept images split into Q rounds, true mark against one
        external mark."""
        true, external = np.concatenate(self.true_images), np.concatenate(self.external_images)
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
