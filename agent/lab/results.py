"""Summaries of experiment runs: one row per setting with rates and 95% Wilson intervals, written as
results.json, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import stats

from .experiment import Setting


def wilson(hits: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate."""
    if total == 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(0.975)
    rate = hits / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rate(trials: list[dict], side: str, field: str) -> dict:
    hits = sum(bool(trial[side][field]) for trial in trials)
    low, high = wilson(hits, len(trials))
    return {"hits": hits, "trials": len(trials), "rate": hits / len(trials) if trials else None,
            "ci95": [round(low, 3), round(high, 3)]}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per setting, in the order settings first appear."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[json.dumps(run["setting"], sort_keys=True)].append(run)
    rows = []
    for key, group in grouped.items():
        trials = [trial for run in group for trial in run["trials"]]
        z_marked = [t["marked"]["z"] for t in trials if t["marked"]["z"] is not None]
        row = {"setting": json.loads(key), "models": len(group),
               "accuracy_clean": float(np.mean([run["accuracy_clean"] for run in group])),
               "accuracy_marked": float(np.mean([run["accuracy_marked"] for run in group])),
               "detection": _rate(trials, "marked", "detected"), "false_positives": _rate(trials, "clean", "detected"),
               "paper_v_tpr": _rate(trials, "marked", "paper_v"), "paper_v_fpr": _rate(trials, "clean", "paper_v"),
               "budget_detection": _rate(trials, "marked_budget", "detected"),
               "budget_false_positives": _rate(trials, "clean_budget", "detected"),
               "budget_queries": float(np.mean([t["marked_budget"]["queries"] for t in trials])),
               "z_marked_mean": float(np.mean(z_marked)) if z_marked else None,
               "queries_per_test": float(np.mean([t["marked"]["queries"] for t in trials]))}
        distinguisher = [run["distinguisher"] for run in group if run.get("distinguisher")]
        if distinguisher:
            row["distinguisher"] = {"correct": sum(d["correct"] for d in distinguisher),
                                    "marks": sum(d["marks"] for d in distinguisher)}
        rows.append(row)
    return rows


def _label(setting: dict) -> str:
    default = asdict(Setting())
    parts = [f"{k}={v}" for k, v in setting.items() if k in default and v != default[k]
             and k not in ("alpha", "fraction", "family", "epochs")]
    return ", ".join(parts) or "defaults"


def _cell(rate: dict) -> str:
    return f"{rate['hits']}/{rate['trials']} [{rate['ci95'][0]:.2f}, {rate['ci95'][1]:.2f}]"


def markdown(rows: list[dict], command: str, paper: str = "") -> str:
    """The table committed under docs/results/, with the paper's figure for the closest setting."""
    lines = [f"Produced by `{command}`.", "",
             *([f"The paper (other datasets, its uncalibrated V): {paper}.", ""] if paper else []),
             "| setting | models | accuracy clean / marked | detection (default test) | false positives "
             "| paper V TPR / FPR | mean z | queries per test | detection / false positives with 819 queries |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s = row["setting"]
        z = f"{row['z_marked_mean']:.2f}" if row["z_marked_mean"] is not None else "-"
        lines.append(f"| {_label(s)} (a={s['alpha']}, p={s['fraction']}, {s['family']}, {s['epochs']} epochs, "
                     f"level {s['level']}, K={s['panel_size']}, n={s['aux_images']}) "
                     f"| {row['models']} | {row['accuracy_clean']:.3f} / {row['accuracy_marked']:.3f} "
                     f"| {_cell(row['detection'])} | {_cell(row['false_positives'])} "
                     f"| {_cell(row['paper_v_tpr'])} / {_cell(row['paper_v_fpr'])} | {z} "
                     f"| {row['queries_per_test']:.0f} "
                     f"| {_cell(row['budget_detection'])} / {_cell(row['budget_false_positives'])} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path) -> None:
    """Detection and false-positive rates per setting as paired bars with their 95% intervals."""
    bar, gap, height, left = 14, 26, 260, 40
    width = left + len(rows) * (2 * bar + gap) + 20
    image = Image.new("RGB", (max(width, 320), height + 150), "white")
    draw = ImageDraw.Draw(image)
    base = height + 10

    def y(rate: float) -> float:
        return base - rate * height

    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        draw.line([(left - 4, y(tick)), (image.width - 10, y(tick))], fill=(225, 225, 225))
        draw.text((4, y(tick) - 6), f"{tick:.2f}", fill="black")
    draw.line([(left, y(0.05)), (image.width - 10, y(0.05))], fill=(200, 60, 60))
    for index, row in enumerate(rows):
        x = left + 10 + index * (2 * bar + gap)
        for offset, (key, colour) in enumerate((("detection", (40, 110, 200)), ("false_positives", (230, 140, 40)))):
            rate = row[key]
            x0 = x + offset * bar
            draw.rectangle([x0, y(rate["rate"] or 0), x0 + bar - 2, base], fill=colour)
            low, high = rate["ci95"]
            draw.line([(x0 + bar / 2 - 1, y(low)), (x0 + bar / 2 - 1, y(high))], fill="black")
        draw.text((x, base + 6), str(index + 1), fill="black")
    draw.text((left, base + 26), "blue: detection, orange: false positives (bars: 95% intervals;", fill="black")
    draw.text((left, base + 40), "red line: level 0.05); numbers: rows of the table", fill="black")
    image.save(path)


def write(runs: list[dict], folder: Path, command: str, paper: str = "") -> list[dict]:
    """results.json, table.md and rates.png in `folder`; returns the rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = summarise(runs)
    (folder / "results.json").write_text(json.dumps({"command": command, "rows": rows, "runs": runs}, indent=1))
    (folder / "table.md").write_text(markdown(rows, command, paper))
    chart(rows, folder / "rates.png")
    return rows
