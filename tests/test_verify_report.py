"""The verification report: the one-sentence decision and the self-contained HTML page, from hand-built documents."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from agent.verify.report import format_p, render_html, summary_sentence

HOSTILE = "<img src=x onerror=alert(1)>"
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "source"}


def mark(site="instagram.com", p=0.025, adjusted=None, detected=None, label="Shirt", shift=0.031,
         started="2026-03-02T10:00:00+00:00", panel=None, **extra) -> dict:
    adjusted = p if adjusted is None else adjusted
    return {"site": site, "mark_id": "ab12", "epoch": 0, "started": started, "label": label, "label_index": 6,
            "detected": adjusted <= 0.05 if detected is None else detected, "p_value": p, "p_adjusted": adjusted,
            "shift": shift, "panel_shifts": [0.001 * k - 0.01 for k in range(39)] if panel is None else panel,
            "z": 2.4, "images": 180, "paper_v": {"detected": True, "round_pvalues": [0.01, 0.02, 0.5, 0.03, 0.04],
                                                  "significant_rounds": 4, "rounds": 5, "images_per_round": 36},
            "note": None, **extra}


def untestable(site="photos.example") -> dict:
    return {"site": site, "mark_id": "cd34", "epoch": 0, "started": None, "label": None, "label_index": None,
            "detected": False, "p_value": None, "p_adjusted": None, "shift": None, "panel_shifts": [], "z": None,
            "images": 0, "paper_v": None,
            "note": "not testable: an imported photo mark has no generator for an external panel"}


def document(*results, output="probabilities", **extra) -> dict:
    tested = [r["p_adjusted"] for r in results if r["p_adjusted"] is not None]
    return {"model": "onnx:/models/m.onnx", "labels": ["T-shirt", "Trouser", "Shirt"], "output": output,
            "created": "2026-12-04T23:40:00+00:00",
            "decision": "detected" if any(r["detected"] for r in results) else "not detected",
            "p_any": min(tested) if tested else None, "level": 0.05, "panel_size": 39, "queries": 8200,
            "queries_planned": 8200, "images": 200, "stopped_early": False, "label_mode": "given",
            "results": list(results), **extra}


class TagBalance(HTMLParser):
    """Records start tags and attributes, and every end tag that does not close the innermost open element."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.mismatches: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.mismatches.append(f"</{tag}> with {self.open[-3:]} open")


def parsed(page: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    return parser


# --- the sentence -------------------------------------------------------------------------------------------------

def test_one_detected_mark_names_its_site_month_and_p():
    sentence = summary_sentence(document(mark()))
    assert sentence == ("This model shows the mark you used on instagram.com since March 2026 (p = 0.025): "
                        "it was very likely trained on those uploads.")


def test_one_detected_among_several_quotes_the_adjusted_p():
    sentence = summary_sentence(document(mark(p=0.025, adjusted=0.05), mark("flickr.com", p=0.6, adjusted=0.6)))
    assert sentence.startswith("This model shows the mark you used on instagram.com since March 2026 "
                               "(adjusted p = 0.05)")
    assert "flickr.com" not in sentence


def test_several_detected_marks_are_all_named_with_the_smallest_adjusted_p():
    doc = document(mark("flickr.com", p=0.025, adjusted=0.05, started="2026-05-10T08:00:00+00:00"),
                   mark("instagram.com", p=0.025, adjusted=0.025), mark("x.com", p=0.7, adjusted=0.7))
    sentence = summary_sentence(doc)
    assert sentence.startswith("This model shows 2 of your 3 marks, used on instagram.com since March 2026 and "
                               "flickr.com since May 2026 (smallest adjusted p = 0.025)")
    assert "x.com" not in sentence


def test_many_detected_marks_are_summarised():
    doc = document(*[mark(f"site{k}.example", p=0.025, adjusted=0.025) for k in range(30)])
    sentence = summary_sentence(doc)
    assert "30 of your 30 marks" in sentence and "and 27 more" in sentence
    assert "site3.example" not in sentence


def test_not_detected_says_how_many_marks_and_the_smallest_adjusted_p():
    doc = document(*[mark(f"site{k}.example", p=0.3, adjusted=0.41 + k / 100) for k in range(8)])
    assert summary_sentence(doc) == ("No evidence that this model was trained on your marked uploads "
                                     "(8 marks tested, smallest adjusted p = 0.41).")


def test_not_detected_counts_the_marks_that_could_not_be_tested():
    doc = document(mark(p=0.41), untestable())
    assert summary_sentence(doc) == ("No evidence that this model was trained on your marked uploads "
                                     "(1 mark tested, 1 could not be tested, p = 0.41).")


def test_nothing_testable_says_the_check_cannot_tell():
    sentence = summary_sentence(document(untestable(), untestable("other.example")))
    assert "cannot tell" in sentence and "none of your 2 marks could be tested" in sentence
    assert "No evidence" not in sentence and "shows" not in sentence


def test_ranks_output_gives_the_same_decision_and_shows_shifts_in_places():
    doc = document(mark(shift=2.5, panel=[float(k % 5 - 2) for k in range(39)]), output="ranks")
    assert summary_sentence(doc).startswith("This model shows the mark you used on instagram.com since March 2026")
    page = render_html(doc)
    assert "+2.5 places" in page and "rank of Shirt" in page
    assert "P(Shirt)" not in page


def test_a_mark_without_a_start_date_is_named_by_its_site_alone():
    sentence = summary_sentence(document(mark(started=None)))
    assert "on instagram.com (p = 0.025)" in sentence


@pytest.mark.parametrize("p, text", [(0.025, "0.025"), (0.41234, "0.412"), (1.0, "1"), (0.00012345, "1.23e-04"),
                                     (None, "—")])
def test_p_values_have_three_significant_digits_or_scientific_when_tiny(p, text):
    assert format_p(p) == text


# --- the page -----------------------------------------------------------------------------------------------------

def test_page_carries_the_sentence_and_one_plot_per_tested_mark():
    doc = document(mark(), mark("flickr.com", p=0.5), untestable())
    page = render_html(doc)
    assert summary_sentence(doc) in page
    assert page.count("<svg") == 2
    assert page.count('class="true-mark"') == 2
    assert page.count('class="panel-mark"') == 2 * 39
    assert "not tested" in page and "imported photo mark" in page


def test_the_true_mark_sits_right_of_a_panel_it_beats():
    page = render_html(document(mark(shift=0.05)))
    dots = [float(x) for x in re.findall(r'class="panel-mark" cx="([\d.]+)"', page)]
    true_x = float(re.search(r'class="true-mark"><line x1="([\d.]+)"', page)[1])
    assert len(dots) == 39 and true_x > max(dots)


def test_page_is_self_contained_without_scripts_or_remote_references():
    page = render_html(document(mark(), model="http://api.example/classify"))
    tags = parsed(page).tags
    assert "<script" not in page.lower()
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    references = [value for _, attrs in tags for name, value in attrs.items() if name in ("src", "href")]
    assert not [ref for ref in references if re.match(r"\s*(https?:)?//", ref or "")]
    assert not re.search(r"url\(|@import", page)
    assert "http://api.example/classify" in page  # the model's address is shown as text


def test_hostile_strings_from_the_document_are_escaped():
    hostile = mark(site=f"evil{HOSTILE}.example", label=HOSTILE, note=HOSTILE)
    page = render_html(document(hostile, mark(HOSTILE, p=0.9, started=HOSTILE), model=HOSTILE,
                                physical={"label": HOSTILE, "with": 40, "without": 40, "p_value": 0.001,
                                          "detected": True, "mean_with": 0.4, "mean_without": 0.1}))
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "img" not in {tag for tag, _ in parsed(page).tags}


@pytest.mark.parametrize("results", [
    [mark()],
    [mark(f"site{k}.example", p=min(1.0, 0.025 * (k + 1))) for k in range(30)],
    [untestable()],
    [],
    [mark(z=None, paper_v=None, started=None, label=None), mark(paper_v={"detected": False, "note": "too few images"})],
])
def test_page_is_well_formed_for_any_number_of_marks_and_null_values(results):
    page = render_html(document(*results, physical={"label": "Shirt", "with": 40, "without": 38, "p_value": None,
                                                    "detected": False, "mean_with": None, "mean_without": 0.2}))
    parser = parsed(page)
    assert parser.mismatches == [] and parser.open == []
    names = [tag for tag, _ in parser.tags]
    assert names.count("html") == names.count("body") == names.count("main") == 1
    assert page.count("<svg") == sum(r["p_value"] is not None for r in results)
    assert "How to read this" in page and "for reference only" in page and "Not detected does not mean" in page
    assert "None" not in re.sub(r"<[^>]*>", "", page)


def test_physical_block_appears_only_when_present():
    physical = {"label": "Shirt", "with": 40, "without": 40, "p_value": 0.001, "detected": True,
                "mean_with": 0.41, "mean_without": 0.12}
    assert "Physical mark" not in render_html(document(mark()))
    page = render_html(document(mark(), physical=physical))
    assert "Physical mark" in page and "0.41" in page and "0.001" in page and "<strong>detected</strong>" in page


def test_early_stop_and_queries_are_reported():
    page = render_html(document(mark(), queries=4100, stopped_early=True))
    assert "4,100 of 8,200 planned" in page
    assert "could not have changed any decision" in page


def test_the_paper_column_and_the_focused_images_appear_only_when_there_is_something_to_show():
    with_paper = render_html(document(mark(), images_tested=5))
    assert "Paper&#x27;s V</th>" in with_paper and "fires (4 of 5 rounds)" in with_paper
    assert "200 read without a mark; 5 of them also with the marks" in with_paper
    without = render_html(document(mark(paper_v=None), mark(site="flickr.com", paper_v=None), images_tested=200))
    assert "<th>Paper&#x27;s V</th>" not in without and "fires (" not in without
    assert "<dd>200</dd>" in without
