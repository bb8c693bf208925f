"""One verification from request to report document: load the model, read the images, settle the label, run the
engine over the user's marks, and write the JSON document that `isotopes verify --json`, the native host and
the HTML report share."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import db
from ..vault import Vault
from . import engine, stats
from .images import ImageSet, read_folder
from .models import Model, load_model, top_labels
from .user_marks import used_marks


@dataclass(frozen=True)
class Request:
    model: str
    aux: str
    api_config: str | None = None
    sites: tuple[str, ...] | None = None  # None: every site
    label: str = "auto"  # a label name or index, or "auto"
    own: str | None = None  # the user's own unmarked photos, to find their label
    level: float = 0.05
    images: int = engine.DEFAULT_IMAGES
    panel_size: int = engine.DEFAULT_PANEL
    focus: int | None = engine.DEFAULT_FOCUS  # None: test on every aux image
    sequential: bool = True
    paper_v: bool = False
    physical_with: str | None = None
    physical_without: str | None = None

    @classmethod
    def from_json(cls, data: dict) -> Request:
        """A request from its JSON form (the native host's verify.start); unknown fields are an error."""
        fields = set(cls.__dataclass_fields__)
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown verification field(s): {', '.join(sorted(unknown))}")
        if "sites" in data and data["sites"] is not None:
            data = data | {"sites": tuple(data["sites"])}
        return cls(**data)

    def check(self) -> None:
        if not 0 < self.level < 1:
            raise ValueError(f"the level must be between 0 and 1, got {self.level}")
        if self.images < 10:
            raise ValueError("use at least 10 aux images (a hundred or more for a useful answer)")
        if self.panel_size < 1:
            raise ValueError("the panel needs at least one external mark")
        if self.focus is not None and self.focus < 1:
            raise ValueError("the focus needs at least one image per label (or none: every image)")
        if (self.physical_with is None) != (self.physical_without is None):
            raise ValueError("a physical-mark test needs both --with and --without")
        if self.physical_with is not None and self.label == "auto" and not self.own:
            raise ValueError("a physical-mark test needs the label: pass --label or --own")


def label_index(model: Model, text: str) -> int:
    """A label given by name (case-insensitive) or by index."""
    lowered = [name.lower() for name in model.labels]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < len(model.labels):
        return int(text)
    raise ValueError(f"the model has no label {text!r}; its labels: {', '.join(model.labels[:20])}"
                     + (" ..." if len(model.labels) > 20 else ""))


def own_label(model: Model, folder: Path, limit: int) -> tuple[int, int]:
    """The label the model gives most of (up to `limit` of) the user's own unmarked photos (majority of top-1),
    and the queries it took."""
    photos = read_folder(folder, model.size, limit)
    outputs = model.predict(photos)
    return Counter(top_labels(model, outputs).tolist()).most_common(1)[0][0], len(photos)


def physical(model: Model, with_folder: Path, without_folder: Path, label: int, limit: int) -> dict:
    """The paper's section 6: (up to `limit` each of) photos showing a physical mark against photos without it,
    unpaired Welch test on the label's score."""
    with_scores = model.predict(read_folder(with_folder, model.size, limit))[:, label]
    without_scores = model.predict(read_folder(without_folder, model.size, limit))[:, label]
    if model.output == "ranks":
        with_scores, without_scores = -with_scores, -without_scores
    pvalue = stats.welch_greater(with_scores, without_scores)
    return {"label": model.labels[label], "with": len(with_scores), "without": len(without_scores),
            "mean_with": float(np.mean(with_scores)), "mean_without": float(np.mean(without_scores)),
            "p_value": pvalue, "queries": len(with_scores) + len(without_scores)}


def run(request: Request, vault: Vault, conn: sqlite3.Connection | None = None,
        progress: Callable[[dict], None] | None = None, cancel: threading.Event | None = None) -> dict:
    """Run the verification the request describes; returns the report document."""
    request.check()
    conn = conn or db.connect()
    marks = used_marks(vault, conn, list(request.sites) if request.sites else None)
    if not marks:
        raise engine.NotTestable("no marked upload yet" + (f" for {', '.join(request.sites)}" if request.sites
                                                            else "") + ": there is nothing to test")
    model = load_model(request.model, Path(request.api_config) if request.api_config else None)
    extra_queries = 0
    if request.label != "auto":
        label = label_index(model, request.label)
    elif request.own:
        label, extra_queries = own_label(model, Path(request.own), request.images)
    else:
        label = None
    aux = ImageSet.from_folder(Path(request.aux), model.size, limit=request.images)
    verification = engine.verify(model, aux, marks, engine.Options(
        level=request.level, panel_size=request.panel_size, label=label, focus=request.focus,
        sequential=request.sequential, paper_v=request.paper_v),
        progress=progress, cancel=cancel)
    document = {"model": request.model, "labels": list(model.labels), "created": db.now(),
                "request": asdict(request), **verification.to_json()}
    document["queries"] += extra_queries
    if request.physical_with:
        block = physical(model, Path(request.physical_with), Path(request.physical_without), label,
                         request.images)
        block["detected"] = block["p_value"] <= request.level
        document["queries"] += block.pop("queries")
        document["physical"] = block
    return document
