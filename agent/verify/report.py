"""What a verification means, for people: one sentence, and one self-contained HTML page.

Both read the `isotopes verify --json` document (a plain dict, see engine.Verification.to_json plus the
session's model, labels and created fields). The page has inline CSS and hand-drawn inline SVG only: no scripts,
fonts, stylesheets or images are loaded, so it can be mailed or archived as one file. Every string that comes
from the document (sites, labels, notes, the model's address) is escaped.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

_MORE_SITES_AFTER = 3  # the sentence names this many detected marks, then says how many more


def format_p(p: float | None) -> str:
    """A p-value for people: three significant digits, scientific below 0.001, a dash when there is none."""
    if p is None:
        return "—"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3g}"


def _since(started: str | None) -> str | None:
    """'March 2026' from an ISO timestamp; None when there is none or it cannot be read."""
    if not started:
        return None
    try:
        return datetime.fromisoformat(started).strftime("%B %Y")
    except ValueError:
        return None


def _where(result: dict) -> str:
    since = _since(result.get("started"))
    return f"{result.get('site')} since {since}" if since else str(result.get("site"))


def _label(result: dict) -> str:
    return "the tested label" if result.get("label") is None else str(result["label"])


def _listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c', or 'a, b, c and 4 more'."""
    if len(items) > _MORE_SITES_AFTER:
        items = items[:_MORE_SITES_AFTER] + [f"{len(items) - _MORE_SITES_AFTER} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _tested(document: dict) -> list[dict]:
    return [r for r in document.get("results") or [] if r.get("p_value") is not None]


def summary_sentence(document: dict) -> str:
    """The decision in one plain sentence: which marks the model shows (site, since when, p), or why not."""
    results = document.get("results") or []
    tested = _tested(document)
    detected = sorted((r for r in tested if r.get("detected")), key=lambda r: r.get("p_adjusted") or 0.0)
    p_name = "adjusted p" if len(tested) > 1 else "p"
    conclusion = "it was very likely trained on those uploads."
    if len(detected) == 1:
        return (f"This model shows the mark you used on {_where(detected[0])} "
                f"({p_name} = {format_p(detected[0].get('p_adjusted'))}): {conclusion}")
    if detected:
        return (f"This model shows {len(detected)} of your {len(tested)} marks, used on "
                f"{_listing([_where(r) for r in detected])} "
                f"(smallest adjusted p = {format_p(detected[0].get('p_adjusted'))}): {conclusion}")
    if tested:
        smallest = min(r["p_value"] if r.get("p_adjusted") is None else r["p_adjusted"] for r in tested)
        counted = "1 mark tested" if len(tested) == 1 else f"{len(tested)} marks tested"
        untested = len(results) - len(tested)
        if untested:
            counted += f", {untested} could not be tested"
        smallest_name = "p" if len(tested) == 1 else "smallest adjusted p"
        return (f"No evidence that this model was trained on your marked uploads "
                f"({counted}, {smallest_name} = {format_p(smallest)}).")
    if results:
        which = "your mark could not" if len(results) == 1 else f"none of your {len(results)} marks could"
        return (f"This check cannot tell whether the model was trained on your uploads: {which} be tested "
                f"(see the notes below).")
    return "This check cannot tell whether the model was trained on your uploads: no mark was tested."


# --- numbers and units ----------------------------------------------------------------------------------------

def _number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _shift_units(output: str) -> tuple[float, str, str]:
    """Scale, unit and short unit for shifts: percentage points of P(label), or places up the model's ranking."""
    return (100.0, "percentage points", "pts") if output == "probabilities" else (1.0, "places up", "places")


def _shift_text(shift: float | None, output: str) -> str:
    if shift is None:
        return "—"
    scale, _, unit = _shift_units(output)
    return f"{shift * scale:+.3g} {unit}"


def _paper_v_text(paper_v: dict | None) -> str:
    if not paper_v:
        return "—"
    if "significant_rounds" not in paper_v:
        return paper_v.get("note") or "—"
    verdict = "fires" if paper_v.get("detected") else "does not fire"
    return f"{verdict} ({paper_v['significant_rounds']} of {paper_v.get('rounds', '?')} rounds)"


# --- the panel plot ---------------------------------------------------------------------------------------------

_WIDTH, _LEFT, _RIGHT, _TOP, _BOTTOM, _DOT = 520, 20, 20, 34, 52, 4.5


def _ticks(low: float, high: float, count: int = 5) -> tuple[list[float], int]:
    """Round tick values covering [low, high], and the decimals to print them with."""
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step)
    last = math.floor(high / step)
    return [k * step for k in range(first, last + 1)], max(0, -math.floor(math.log10(step)))


def _panel_svg(shift: float, panel: list[float], output: str, label: str) -> str:
    """A dot plot of the panel's shifts (stacked where they crowd) with the true mark's shift as a red line."""
    scale, unit, _ = _shift_units(output)
    values = [v * scale for v in panel if math.isfinite(v)]
    true = shift * scale
    low, high = min(values + [true]), max(values + [true])
    pad = (high - low) * 0.06 or max(abs(high) * 0.1, 1.0)
    low, high = low - pad, high + pad
    inner = _WIDTH - _LEFT - _RIGHT

    def x(value: float) -> float:
        return _LEFT + (value - low) / (high - low) * inner

    columns: dict[int, int] = {}
    dots = []
    for value in sorted(values):
        column = round(x(value) / (2 * _DOT))
        level = columns.get(column, 0)
        columns[column] = level + 1
        dots.append((x(value), level))
    stack = max(columns.values(), default=1)
    baseline = _TOP + max(50.0, stack * 2 * _DOT + 8)
    height = baseline + _BOTTOM
    parts = [f'<svg class="panel-plot" role="img" width="100%" viewBox="0 0 {_WIDTH} {height:.0f}" '
             f'aria-label="Shifts of the control marks and of your mark">']
    ticks, decimals = _ticks(low, high)
    for tick in ticks:
        tx = x(tick)
        parts.append(f'<line class="grid" x1="{tx:.1f}" y1="{_TOP:.1f}" x2="{tx:.1f}" y2="{baseline:.1f}"/>'
                     f'<text class="tick" x="{tx:.1f}" y="{baseline + 16:.1f}">{tick + 0.0:.{decimals}f}</text>')
    if low < 0 < high:
        parts.append(f'<line class="zero" x1="{x(0):.1f}" y1="{_TOP:.1f}" x2="{x(0):.1f}" y2="{baseline:.1f}"/>')
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{baseline:.1f}" x2="{_WIDTH - _RIGHT}" y2="{baseline:.1f}"/>')
    for dx, level in dots:
        parts.append(f'<circle class="panel-mark" cx="{dx:.1f}" cy="{baseline - _DOT - level * 2 * _DOT:.1f}" '
                     f'r="{_DOT - 0.5}"/>')
    tx = x(true)
    anchor = "start" if tx < _WIDTH * 0.2 else "end" if tx > _WIDTH * 0.8 else "middle"
    parts.append(f'<g class="true-mark"><line x1="{tx:.1f}" y1="{_TOP - 6:.1f}" x2="{tx:.1f}" y2="{baseline:.1f}"/>'
                 f'<text x="{tx:.1f}" y="{_TOP - 12:.1f}" text-anchor="{anchor}">your mark</text></g>')
    what = f"Change in P({label})" if output == "probabilities" else f"Change in the rank of {label}"
    parts.append(f'<text class="axis-title" x="{_WIDTH / 2:.0f}" y="{height - 10:.1f}">'
                 f'{escape(what)} with the mark ({unit})</text></svg>')
    return "".join(parts)


def _panel_caption(result: dict, output: str) -> str:
    panel = [v for v in result["panel_shifts"] if math.isfinite(v)]
    ahead = sum(v >= result["shift"] for v in panel)
    label = escape(f"“{_label(result)}”")
    moved = f"raised the model's probability of {label}" if output == "probabilities" \
        else f"moved {label} up the model's ranking"
    return (f"Each grey dot is one of {len(panel)} control marks: made like yours but never published, so no model "
            f"can have learned them. The red line is your mark from {escape(_where(result))}. "
            f"{ahead} of the {len(panel)} control marks {moved} at least as much as yours did "
            f"(p = {format_p(result.get('p_value'))}). A model that never saw your mark treats it as one more "
            f"control mark, so it could land anywhere among the dots; far to the right of all of them means the "
            f"model reacts to your mark in particular.")


# --- the page -----------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:72rem;padding:1.5rem;
color:#1d2430;line-height:1.5}
h1{font-size:1.5rem;margin:0 0 1rem}
.verdict{font-size:1.3rem;font-weight:600;padding:1rem 1.25rem;border-radius:.5rem;border-left:.4rem solid}
.verdict.detected{background:#fdecea;border-color:#c62828}
.verdict.clear{background:#e8f3ea;border-color:#2e7d32}
.verdict.unknown{background:#f1f1f1;border-color:#777}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nowrap{white-space:nowrap}
td.yes{color:#c62828;font-weight:600}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(26rem,1fr));gap:1.25rem}
figure{margin:0;border:1px solid #ddd;border-radius:.5rem;padding:.75rem}
figcaption{font-size:.88rem;color:#444}
figure h3{font-size:1rem;margin:0 0 .25rem}
svg.panel-plot{display:block;font-size:12px}
svg .panel-mark{fill:#7b8794;fill-opacity:.8}
svg .true-mark line{stroke:#c62828;stroke-width:2.5}
svg .true-mark text{fill:#c62828;font-weight:600}
svg .axis{stroke:#333}svg .grid{stroke:#e4e4e4}svg .zero{stroke:#999;stroke-dasharray:3 3}
svg .tick,svg .axis-title{fill:#333;text-anchor:middle}
"""


def _facts(document: dict) -> str:
    labels = document.get("labels") or []
    output = document.get("output")
    outputs = "probabilities" if output == "probabilities" else "ranks (a top-K or label-only answer)"
    mode = ("a label you chose" if document.get("label_mode") == "given"
            else "label-free: each mark on the label where it leads its control marks most (chosen the same way "
                 "for every control mark)")
    queries, planned = document.get("queries"), document.get("queries_planned")
    used = "—" if queries is None else f"{queries:,}" + ("" if planned is None else f" of {planned:,} planned")
    early = ("yes: the remaining images could not have changed any decision" if document.get("stopped_early")
             else "no")
    rows = [("Model", document.get("model")), ("Its answers", f"{outputs}, {len(labels)} labels"),
            ("Checked", document.get("created")), ("Label", mode),
            ("Level", f"{_number(document.get('level'), 'g')} (the accepted chance of a false detection over all "
                      f"your marks)"),
            ("Control marks per test", document.get("panel_size")), ("Images", _images_text(document)),
            ("Queries", used), ("Stopped early", early)]
    return '<dl class="facts">' + "".join(
        f"<dt>{escape(name)}</dt><dd>{escape('—' if value is None else str(value))}</dd>" for name, value in rows) \
        + "</dl>"


def _images_text(document: dict) -> str | None:
    read, tested = document.get("images"), document.get("images_tested")
    if read is None or tested is None or tested == read:
        return read
    return f"{read} read without a mark; {tested} of them also with the marks"


def _table(document: dict) -> str:
    output = document.get("output")
    results = document.get("results") or []
    paper = any(r.get("paper_v") for r in results)  # the paper's V runs only when asked for
    head = ("Site", "Since", "Label", "Shift", "z", "p", "Adjusted p", "Detected", *(("Paper's V",) * paper),
            "Note")
    rows = []
    for r in results:
        tested = r.get("p_value") is not None
        detected = "yes" if r.get("detected") else "no" if tested else "not tested"
        cells = [(r.get("site"), ""), (_since(r.get("started")) or "—", "nowrap"), (r.get("label") or "—", ""),
                 (_shift_text(r.get("shift"), output), "num"), (_number(r.get("z"), ".2f"), "num"),
                 (format_p(r.get("p_value")), "num"), (format_p(r.get("p_adjusted")), "num"),
                 (detected, "yes" if r.get("detected") else ""),
                 *(((_paper_v_text(r.get("paper_v")), ""),) * paper), (r.get("note") or "", "")]
        rows.append("<tr>" + "".join(f'<td class="{cls}">{escape(str(text))}</td>' if cls
                                     else f"<td>{escape(str(text))}</td>" for text, cls in cells) + "</tr>")
    if not rows:
        return "<p>No marks were tested.</p>"
    return ('<div class="table-wrap"><table><thead><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _plots(document: dict) -> str:
    output = document.get("output")
    figures = []
    for r in _tested(document):
        label = _label(r)
        title = f"<h3>{escape(_where(r))}: {escape(label)}</h3>"
        if r.get("shift") is None or not r.get("panel_shifts"):
            figures.append(f"<figure>{title}<figcaption>No shifts were recorded for this mark.</figcaption></figure>")
            continue
        figures.append(f"<figure>{title}{_panel_svg(r['shift'], r['panel_shifts'], output, label)}"
                       f"<figcaption>{_panel_caption(r, output)}</figcaption></figure>")
    return f'<div class="plots">{"".join(figures)}</div>' if figures else "<p>No mark could be tested.</p>"


def _physical(physical: dict) -> str:
    label = escape(f"“{physical.get('label')}”")
    verdict = "detected" if physical.get("detected") else "not detected"
    return (f"<section><h2>Physical mark</h2><p>Photos showing the physical mark ({escape(str(physical.get('with')))}"
            f") against photos without it ({escape(str(physical.get('without')))}): the model's mean score for "
            f"{label} is {_number(physical.get('mean_with'), '.3g')} with the mark and "
            f"{_number(physical.get('mean_without'), '.3g')} without; one-sided p = "
            f"{format_p(physical.get('p_value'))}, so the mark is <strong>{verdict}</strong>. The two groups are "
            f"different photos, so this test compares them without pairing.</p></section>")


_HOW_TO_READ = """<section><h2>How to read this</h2>
<p>For each of your marks the model was shown the same images three ways: without a mark, with your mark, and
with each of the control marks. Control marks are drawn the same way as yours, at the same strength, from secret
seeds that were never published, so no model can have learned them. Unless you asked for every image, the
images are the few of your aux photos that the model, shown them without any mark, leans to the tested label
most without giving it: a mark tips those first. The <em>shift</em> is how much a mark moves the model towards
the tested label, averaged over the images.</p>
<p>If the model never saw your mark, your mark is just one more control mark: its shift is equally likely to come
first, last or anywhere in between. The p-value is your mark's place in that ranking: with K control marks,
(1 + the number of controls that shifted at least as much) / (K + 1). It is exact whatever the model is, and its
smallest possible value is 1 / (K + 1). When several marks are tested, Holm's adjustment raises the p-values so
that the chance of any false detection stays at the level; a mark is detected when its adjusted p is at most the
level. <em>z</em> says how far your mark's shift is above the control marks' average, in their standard
deviations.</p>
<p><strong>Not detected does not mean not trained on.</strong> A model can learn too little of a mark for any
test to show it, above all when few of your photos were in its training data or the strength was low. In our
measurements on a small image classifier, with a tenth of one class marked, models trained to convergence
were detected 19 times in 20 at the default strength 0.4 and 18 times in 20 at 0.3; trained a sixth as long,
about two times in five.</p>
<p><em>Paper's V</em>, when asked for (<code>isotopes verify --paper-v</code>), is the verifier from the original
data-isotopes paper, on every usable aux photo. It is shown for reference only: it compares your mark with a
single other mark, and any two marks move a model differently, so it also fires on models that never saw either
mark. The decision above never uses it.</p>
</section>"""


def render_html(document: dict) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG, no scripts, nothing remote)."""
    sentence = summary_sentence(document)
    tested = _tested(document)
    tone = "detected" if any(r.get("detected") for r in tested) else "clear" if tested else "unknown"
    physical = document.get("physical")
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Isotopes verification report</title><style>{_CSS}</style></head><body><main>",
        "<h1>Was this model trained on your photos?</h1>",
        f'<p class="verdict {tone}">{escape(sentence)}</p>',
        f"<section><h2>What was tested</h2>{_facts(document)}</section>",
        f"<section><h2>Your marks</h2>{_table(document)}</section>",
        f"<section><h2>Your marks against the control marks</h2>{_plots(document)}</section>",
        _physical(physical) if physical else "",
        _HOW_TO_READ,
        "</main></body></html>\n",
    ])
