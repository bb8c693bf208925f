"""The ledger under real pressure: many writers at once, a writer killed mid-batch, and `ledger find`."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import time

from PIL import Image

from agent import paths
from conftest import ISOTOPES, real_photo, run_cli, run_json

PHOTOS = ["Wood", "Aqua", "Storm", "Dune", "LadyBird", "GreenMeadow"]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_many_marking_processes_share_one_ledger(initialised, tmp_path):
    workers = 6
    procs = [subprocess.Popen(ISOTOPES + ["mark", *(str(real_photo(p)) for p in PHOTOS[:4]), "--site", "a.com",
                                          "--out", str(tmp_path / f"out{i}"), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    rows = run_json("ledger", "list")
    assert len(rows) == workers * 4 and all(row["status"] == "marked" for row in rows)
    assert len({row["mark_id"] for row in rows}) == 1  # the first mark of a.com was issued exactly once
    for i in range(workers):
        for name in PHOTOS[:4]:
            assert sha256(tmp_path / f"out{i}" / f"{name}.jpg") in {row["sha256_out"] for row in rows}
    conn = sqlite3.connect(paths.database_file())
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_writer_killed_mid_batch_loses_no_committed_row(initialised, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(40):
        (inputs / f"photo{i:02}.jpg").write_bytes(real_photo(PHOTOS[i % len(PHOTOS)]).read_bytes())
    out = tmp_path / "out"
    proc = subprocess.Popen(ISOTOPES + ["mark", *sorted(map(str, inputs.iterdir())), "--site", "a.com",
                                        "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.jpg"))) < 8:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("*.jpg"))
    assert 8 <= len(done) < 40, "the writer was not killed mid-batch"
    conn = sqlite3.connect(paths.database_file())
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {row[0]: row[1:] for row in conn.execute("SELECT name, status, sha256_out, mark_id FROM uploads")}
    for path in done:  # every completed output has its committed row, with its exact bytes
        assert rows[path.name][0] == "marked" and rows[path.name][1] == sha256(path) and rows[path.name][2]
    assert len(rows) in (len(done), len(done) + 1)  # at most one row committed whose file was not renamed yet
    assert all(status == "marked" for status, *_ in rows.values())
    # and the ledger keeps working afterwards
    run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--out", str(tmp_path / "after"))
    assert conn.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == len(rows) + 1


def test_find_exact_original_resized_and_unrelated(initialised, tmp_path):
    run_cli("mark", str(real_photo("Storm")), str(real_photo("Dune")), "--site", "a.com", "--out", str(tmp_path))
    marked = tmp_path / "Storm.jpg"
    exact = run_json("ledger", "find", str(marked))
    assert exact["verdict"].startswith("marked: byte-identical")
    assert exact["matches"][0]["upload"]["sha256_out"] == sha256(marked)

    original = run_json("ledger", "find", str(real_photo("Storm")), check=False)
    assert original["verdict"].startswith("not marked: this is the original")

    copy = tmp_path / "resized.jpg"
    Image.open(marked).resize((960, 640)).save(copy, quality=70)
    found = run_json("ledger", "find", str(copy))
    assert found["verdict"].startswith("marked: a resized or re-encoded copy")
    assert found["matches"][0]["upload"]["name"] == "Storm.jpg" and found["matches"][0]["mark_present"]

    # A faint mark barely moves the perceptual hash, so a copy of the unmarked original looks alike;
    # the mark check tells the two apart.
    run_cli("mark", str(real_photo("Aqua")), "--site", "a.com", "--alpha", "0.1", "--out", str(tmp_path / "faint"))
    shrunk_original = tmp_path / "original-small.jpg"
    Image.open(real_photo("Aqua")).resize((1280, 800)).save(shrunk_original, quality=70)
    looks_alike = run_json("ledger", "find", str(shrunk_original), check=False)
    assert looks_alike["matches"][0]["kind"] == "similar" and looks_alike["matches"][0]["mark_present"] is False
    assert looks_alike["verdict"].startswith("not marked: it looks like")
    faint_copy = tmp_path / "faint-small.jpg"
    Image.open(tmp_path / "faint" / "Aqua.jpg").resize((1280, 800)).save(faint_copy, quality=70)
    assert run_json("ledger", "find", str(faint_copy))["matches"][0]["mark_present"] is True

    unrelated = run_cli("ledger", "find", str(real_photo("Wood")), check=False)
    assert unrelated.returncode == 1 and "not found" in unrelated.stdout


def test_ledger_list_filters_by_site(initialised, tmp_path):
    run_cli("mark", str(real_photo("Aqua")), "--site", "www.a.com", "--out", str(tmp_path / "a"))
    run_cli("mark", str(real_photo("Aqua")), "--site", "b.com", "--out", str(tmp_path / "b"))
    rows = run_json("ledger", "list", "--site", "https://m.a.com/upload")
    assert [row["site"] for row in rows] == ["a.com"]
    assert set(rows[0]) >= {"time", "site", "origin", "mark_id", "epoch", "alpha", "sha256_in", "sha256_out",
                            "phash", "width", "height", "size_in", "size_out", "format", "status", "reason"}
