"""The `isotopes` command line: output shapes, exit codes, where outputs go, what it refuses."""

from __future__ import annotations

import hashlib
import json
import shutil

from PIL import Image

from agent.settings import DEFAULT_ALPHA
from conftest import real_photo, run_cli, run_json


def test_mark_json_describes_every_file(initialised, tmp_path):
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    result = run_cli("mark", str(real_photo("Wood")), str(pdf), "--site", "https://www.Example.com/upload",
                     "--out", str(tmp_path / "out"), "--json")
    items = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert result.returncode == 0
    photo, other = items
    assert set(photo) >= {"input", "output", "site", "mark_id", "status", "sha256_in", "sha256_out"}
    assert (photo["status"], photo["site"], photo["format"]) == ("marked", "example.com", "JPEG")
    assert photo["sha256_in"] == hashlib.sha256(real_photo("Wood").read_bytes()).hexdigest()
    assert photo["sha256_out"] == hashlib.sha256((tmp_path / "out" / "Wood.jpg").read_bytes()).hexdigest()
    assert photo["alpha"] == DEFAULT_ALPHA and photo["epoch"] == 0
    assert other["status"] == "skipped" and "not an image" in other["reason"]
    assert (tmp_path / "out" / "notes.pdf").read_bytes() == pdf.read_bytes()


def test_default_output_sits_beside_the_input(initialised, tmp_path):
    source = tmp_path / "holiday.jpg"
    shutil.copy(real_photo("Dune"), source)
    run_cli("mark", str(source), "--site", "a.com", "--alpha", "0.2")
    marked = tmp_path / "holiday.marked.jpg"
    assert Image.open(marked).size == Image.open(source).size
    assert source.read_bytes() == real_photo("Dune").read_bytes()  # the input is never touched
    assert run_json("ledger", "list")[0]["alpha"] == 0.2


def test_failures_exit_nonzero_and_keep_going(initialised, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(real_photo("Garden").read_bytes()[:5000])
    result = run_cli("mark", str(broken), str(tmp_path / "missing.jpg"), str(real_photo("Aqua")),
                     "--site", "a.com", "--out", str(tmp_path / "out"), "--json", check=False)
    assert result.returncode == 1
    statuses = [(item["status"], item["output"]) for item in json.loads(result.stdout)]
    assert statuses == [("failed", None), ("failed", None), ("marked", str(tmp_path / "out" / "Aqua.jpg"))]
    assert not (tmp_path / "out" / "broken.jpg").exists()


def test_existing_outputs_are_not_replaced_unless_identical_or_forced(initialised, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "Aqua.jpg").write_bytes(b"someone else's file")
    first = run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(out), "--json", check=False)
    assert first.returncode == 1 and "exists" in json.loads(first.stdout)[0]["reason"]
    assert (out / "Aqua.jpg").read_bytes() == b"someone else's file"
    run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(out), "--force")
    again = run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(out))  # same bytes: fine
    assert again.returncode == 0


def test_bad_arguments(initialised, tmp_path):
    assert run_cli("mark", str(real_photo()), "--site", "co.uk", check=False).returncode == 1
    bad_alpha = run_cli("mark", str(real_photo()), "--site", "a.com", "--alpha", "1.5", check=False)
    assert bad_alpha.returncode == 1 and "--alpha" in bad_alpha.stderr
    assert run_cli("mark", check=False).returncode == 2
    assert run_cli(check=False).returncode == 2


def test_an_output_that_would_replace_its_input_fails_alone(initialised, tmp_path):
    own = tmp_path / "Aqua.jpg"
    own.write_bytes(real_photo("Aqua").read_bytes())
    result = run_cli("mark", str(real_photo("Dune")), str(own), "--site", "a.com", "--out", str(tmp_path), "--json",
                     check=False)
    items = json.loads(result.stdout)  # the batch still reports every file
    assert result.returncode == 1 and [item["status"] for item in items] == ["marked", "failed"]
    assert "replace the input" in items[1]["reason"] and own.read_bytes() == real_photo("Aqua").read_bytes()


def test_a_sites_family_change_starts_a_new_mark_of_that_family(initialised, tmp_path):
    run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(tmp_path / "first"))
    changed = run_cli("sites", "set", "a.com", "--family", "texture")
    assert "texture marks on" in changed.stdout
    assert run_json("sites", "list")[0]["family"] == "texture"
    run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(tmp_path / "second"))
    marks = sorted((mark["epoch"], mark["family"]) for mark in run_json("marks", "list"))
    assert marks == [(0, "structured"), (1, "texture")]
    unknown = run_cli("sites", "set", "a.com", "--family", "stripes", check=False)
    assert unknown.returncode == 2 and "--family" in unknown.stderr
    assert run_json("sites", "list")[0]["family"] == "texture"
