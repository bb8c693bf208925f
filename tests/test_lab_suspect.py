"""The suspect models of agent/lab/suspect.py, checked with the real verification (no browser): the model trained
on site A's uploads shows A's mark and not B's, the clean model shows neither, and the marks cost little accuracy.

The checks run at level 0.01 (the panel grows to 199 external marks): a mark that was never learned is then
flagged at most one time in a hundred, where the default level 0.05 would make these assertions fail one run in
twenty by design. At that level, with two marks, site A's mark must beat all 199 external marks, so the checks
test on the 20 aux photos closest to the label rather than the default 5: on one of these models five photos
gave A's mark a lead of z = 4.4-6.1 and one external mark beat it in 1 of 30 runs, twenty photos z = 5.2-7.7 and
none in 30."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="scripts/test installs torch")
pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent import db, vault  # noqa: E402
from agent.verify import session  # noqa: E402

# the session's suspect models take one to a few minutes to train on two busy cores, in the first test's setup
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LEVEL = 0.01
FOCUS = 20


def verify(models, onnx, monkeypatch) -> dict:
    monkeypatch.setenv("ISOTOPES_HOME", str(models.home))
    conn = db.connect()
    try:
        return session.run(session.Request(model=f"onnx:{onnx}", aux=str(models.aux), own=str(models.own),
                                           level=LEVEL, focus=FOCUS), vault.unlock(None), conn)
    finally:
        conn.close()


def by_site(document: dict) -> dict[str, dict]:
    return {result["site"]: result for result in document["results"]}


def test_the_marked_model_shows_site_a_and_not_site_b(suspect_models, monkeypatch):
    document = verify(suspect_models, suspect_models.marked_onnx, monkeypatch)
    results = by_site(document)
    assert set(results) == {suspect_models.site_a, suspect_models.site_b}
    assert document["panel_size"] == 199  # two marks, Holm: 2 / 200 = 0.01
    a, b = results[suspect_models.site_a], results[suspect_models.site_b]
    assert a["label"] == suspect_models.label  # found from the user's own photos
    assert a["detected"] and a["p_adjusted"] <= LEVEL and a["z"] > 3, a
    assert not b["detected"], b
    assert document["decision"] == "detected"


def test_the_clean_model_shows_no_mark(suspect_models, monkeypatch):
    document = verify(suspect_models, suspect_models.clean_onnx, monkeypatch)
    assert document["decision"] == "not detected", document["results"]
    assert not any(result["detected"] for result in document["results"])


def test_the_marks_cost_at_most_two_points_of_accuracy(suspect_models):
    assert suspect_models.accuracy_clean > 0.8
    assert suspect_models.accuracy_marked >= suspect_models.accuracy_clean - 0.02


def test_every_marked_training_image_is_an_upload_to_site_a_in_the_ledger(suspect_models, monkeypatch):
    monkeypatch.setenv("ISOTOPES_HOME", str(suspect_models.home))
    conn = db.connect()
    try:
        rows = dict(conn.execute("SELECT site, COUNT(*) FROM uploads WHERE status = 'marked' GROUP BY site")
                    .fetchall())
    finally:
        conn.close()
    assert rows == {suspect_models.site_a: 1500, suspect_models.site_b: 1}  # a quarter of 6,000 Pullovers
