"""Marks: derived deterministically from the secret, one per site and epoch, stable forever."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent import db, settings, vault
from agent.marks import registry
from agent.marks.families import FAMILIES, render
from agent.marks.keys import MarkName, mark_id, seed
from agent.sitename import SiteError, site_of
from conftest import encode, real_photo, run_cli, run_json

FIXTURES = Path(__file__).parent / "fixtures"
FIXED_SECRET = vault.Vault(secret=bytes(range(32)), protected=False, created="")


@pytest.mark.parametrize("text, site", [
    ("www.instagram.com", "instagram.com"), ("m.instagram.com", "instagram.com"),
    ("https://www.instagram.com/p/abc?x=1", "instagram.com"), ("WWW.Flickr.com.", "flickr.com"),
    ("photos.example.co.uk", "example.co.uk"), ("alice.github.io", "alice.github.io"),
    ("http://127.0.0.1:8080/upload", "127.0.0.1"), ("localhost", "localhost"),
    ("bücher.de", "xn--bcher-kva.de")])
def test_site_is_the_registrable_domain(text, site):
    assert site_of(text) == site


@pytest.mark.parametrize("text", ["", "co.uk", "github.io", "https://"])
def test_not_a_site(text):
    with pytest.raises(SiteError):
        site_of(text)


def test_marks_are_the_same_in_another_process():
    name = MarkName("instagram.com", 0, "texture")
    here = hashlib.sha256(render("texture", seed(FIXED_SECRET, name)).tobytes()).hexdigest()
    code = ("import hashlib; from agent import vault; from agent.marks.keys import MarkName, seed; "
            "from agent.marks.families import render; "
            "v = vault.Vault(secret=bytes(range(32)), protected=False, created=''); "
            "print(hashlib.sha256(render('texture', seed(v, MarkName('instagram.com', 0, 'texture'))).tobytes())"
            ".hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == there


def test_marks_have_not_changed_since_they_were_first_issued():
    """A user verifies years after marking: the pixels of a mark must never change. The fixture was written by
    the first release; if this fails, old marks can no longer be verified. Fix the generator, not the fixture."""
    for family in FAMILIES:
        golden = np.asarray(Image.open(FIXTURES / f"mark-{family}.png"), np.int16)
        now = np.asarray(render(family, seed(FIXED_SECRET, MarkName("example.com", 3, family))), np.int16)
        assert np.abs(now - golden).mean() < 0.5 and (np.abs(now - golden) > 8).mean() < 0.001


def test_sites_epochs_and_families_get_different_marks_and_ids():
    names = [MarkName("a.com", 0, "texture"), MarkName("b.com", 0, "texture"), MarkName("a.com", 1, "texture"),
             MarkName("a.com", 0, "structured")]
    marks = [render(n.family, seed(FIXED_SECRET, n)).astype(np.int16) for n in names]
    ids = {mark_id(FIXED_SECRET, n) for n in names}
    assert len(ids) == len(names)
    for i in range(len(marks)):
        for j in range(i + 1, len(marks)):
            assert np.abs(marks[i] - marks[j]).mean() > 40  # unrelated images, not small variations
    other_user = vault.Vault(secret=bytes(32), protected=False, created="")
    assert mark_id(other_user, names[0]) != mark_id(FIXED_SECRET, names[0])


def test_marks_are_rich_images():
    """Many colours, edges at many scales: not noise, not flat squares (the paper's appendix A.3)."""
    for family in FAMILIES:
        mark = render(family, bytes(32)).astype(np.float32)
        assert len(np.unique(mark.reshape(-1, 3) // 32, axis=0)) > 40  # many distinct colours
        edges = np.abs(np.diff(mark.mean(axis=2), axis=1))
        assert 0.02 < (edges > 30).mean() < 0.3  # clear edges, but mostly smooth regions
        coarse = np.asarray(Image.fromarray(mark.astype(np.uint8)).reduce(32), np.float32)
        assert coarse.std() > 25  # large-scale structure survives heavy downscaling


def test_rotation_period_and_manual_rotation(home):
    conn, key = db.connect(), vault.create(None)
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    first = registry.current(conn, key, "a.com", "texture", 86400, at=start)
    assert registry.current(conn, key, "a.com", "texture", 86400, at=start + timedelta(hours=23)) == first
    second = registry.current(conn, key, "a.com", "texture", 86400, at=start + timedelta(hours=25))
    assert (first.epoch, second.epoch) == (0, 1) and first.mark_id != second.mark_id
    third = registry.rotate(conn, key, "a.com", "texture")
    assert third.epoch == 2
    assert registry.current(conn, key, "a.com", "texture", None) == third  # no period: stays
    assert registry.current(conn, key, "a.com", "structured", None).epoch == 3  # family change: new epoch
    assert [m.epoch for m in registry.issued(conn, "a.com")] == [0, 1, 2, 3]
    for mark in registry.issued(conn):  # every mark ever issued can still be re-created
        assert registry.pixels(key, mark).shape == (512, 512, 3)


def test_cli_rotate_changes_the_mark_of_later_uploads(initialised, tmp_path):
    photo = str(real_photo("GreenMeadow"))
    before = run_json("mark", photo, "--site", "www.flickr.com", "--out", str(tmp_path / "1"))[0]
    rotated = run_json("marks", "rotate", "--site", "flickr.com")
    after = run_json("mark", photo, "--site", "flickr.com", "--out", str(tmp_path / "2"))[0]
    assert rotated["epoch"] == 1 and after["mark_id"] == rotated["mark_id"] != before["mark_id"]
    assert after["sha256_out"] != before["sha256_out"]
    listed = run_json("marks", "list")
    assert [(m["epoch"], m["uploads"], m["current"]) for m in listed] == [(0, 1, False), (1, 1, True)]


def test_imported_mark_is_stored_encrypted_and_used(initialised, tmp_path):
    own = tmp_path / "mine.png"
    Image.open(real_photo("LadyBird")).save(own)
    imported = run_json("marks", "import", str(own), "--site", "example.org")
    assert imported["family"] == "imported"
    stored = list((initialised / "vault" / "imported").iterdir())
    assert len(stored) == 1
    pixels = registry.pixels(vault.unlock(None), registry.IssuedMark(**imported))
    assert pixels.shape == (512, 512, 3)
    assert pixels.tobytes()[:4096] not in stored[0].read_bytes()  # not stored in the clear
    marked = run_json("mark", str(real_photo("Aqua")), "--site", "example.org", "--out", str(tmp_path / "o"))[0]
    assert marked["mark_id"] == imported["mark_id"]


def test_preview_writes_the_current_mark(initialised, tmp_path):
    run_cli("marks", "preview", "--site", "a.com", "--out", str(tmp_path / "p.png"))
    current = registry.issued(db.connect(), "a.com")[-1]
    assert (np.asarray(Image.open(tmp_path / "p.png")) == registry.pixels(vault.unlock(None), current)).all()


def test_fraction_is_decided_by_content(home):
    from agent.marking import Marker
    marker = Marker(vault.create(None), db.connect())
    settings.update(marker.conn, "a.com", fraction=0.5)
    photos = [encode(Image.open(real_photo("Garden")).reduce(8).rotate(angle), "JPEG") for angle in range(0, 40)]
    first = [marker.mark(p, "a.com")[0].status for p in photos]
    again = [marker.mark(p, "a.com")[0].status for p in photos]
    assert first == again
    assert 10 <= first.count("marked") <= 30  # about half of 40 (binomial: outside this once in ~1,000 runs)
