"""Marking through a real host process: big photos in chunked replies, many requests at once, live settings."""

from __future__ import annotations

import base64
import hashlib
import io
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent import paths
from agent.marks.families import DEFAULT_FAMILY
from agent.settings import DEFAULT_ALPHA
from conftest import encode, real_photo
from host_client import HostProcess

ELEPHANTS = "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg"


@pytest.fixture
def host(initialised):
    process = HostProcess()
    assert process.request("sites.set", {"site": "photos.example", "enabled": True})["ok"]
    yield process
    process.close()


def ledger_sha256_out(ledger_id: int) -> str:
    conn = sqlite3.connect(paths.database_file())
    return conn.execute("SELECT sha256_out FROM uploads WHERE id = ?", (ledger_id,)).fetchone()[0]


def photo_bytes(megapixels: int) -> bytes:
    """Real photos of about 1, 5, 12 and 18 MP: as shipped, or the 17.9 MP painting resized."""
    if megapixels == 1:
        return real_photo("GreenMeadow").read_bytes()
    if megapixels == 5:
        return real_photo("Wood").read_bytes()
    with open(ELEPHANTS, "rb") as handle:
        data = handle.read()
    if megapixels == 18:
        return data
    return encode(Image.open(io.BytesIO(data)).resize((4000, 3000)), "JPEG", quality=90)


@pytest.mark.parametrize("megapixels", [1, 5, 12, 18])
def test_chunked_reply_reassembles_to_the_ledgers_bytes(host, megapixels):
    data = photo_bytes(megapixels)
    reply = host.request("mark", {"image": base64.b64encode(data).decode(), "url": "https://photos.example/new",
                                  "name": f"{megapixels}mp.jpg"}, f"mark-{megapixels}")
    assert reply["ok"], reply
    marked = base64.b64decode(reply["data"]["image"])
    assert hashlib.sha256(marked).hexdigest() == reply["data"]["sha256_out"] == ledger_sha256_out(
        reply["data"]["ledger_id"])
    assert marked != data and Image.open(io.BytesIO(marked)).size == Image.open(io.BytesIO(data)).size


def test_ten_concurrent_marks_are_matched_by_id(host):
    photos = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
              "TwoWings"]
    def send_all():  # all sent at once, while replies are read, as the browser does
        for name in photos:
            host.send({"id": name, "version": 1, "action": "mark",
                       "params": {"image": base64.b64encode(real_photo(name).read_bytes()).decode(),
                                  "site": "photos.example", "name": name}})

    sender = threading.Thread(target=send_all)
    sender.start()
    replies = {}
    for _ in photos:
        reply = host.receive()
        replies[reply["id"]] = reply
    sender.join()
    assert set(replies) == set(photos)
    for name, reply in replies.items():
        assert reply["ok"], reply
        source = real_photo(name).read_bytes()
        assert reply["data"]["sha256_in"] == hashlib.sha256(source).hexdigest()  # the reply is this photo's
        assert hashlib.sha256(base64.b64decode(reply["data"]["image"])).hexdigest() == reply["data"]["sha256_out"]
    assert len(host.request("ledger.query")["data"]["uploads"]) == len(photos)


def test_quick_requests_do_not_wait_behind_a_queue_of_big_photos(host):
    big = base64.b64encode(photo_bytes(18)).decode()
    for index in range(6):  # more photos than there are workers
        host.send({"id": f"big{index}", "version": 1, "action": "mark", "params": {"image": big,
                                                                                 "site": "photos.example"}})
    host.send({"id": "quick", "version": 1, "action": "hello"})
    host.send({"id": "settings", "version": 1, "action": "sites.get", "params": {"site": "photos.example"}})
    order = [host.receive()["id"] for _ in range(8)]
    assert set(order[:2]) == {"quick", "settings"}, order


def test_site_settings_change_the_next_mark(host):
    image = base64.b64encode(real_photo("Aqua").read_bytes()).decode()
    first = host.request("mark", {"image": image, "site": "photos.example"})["data"]
    changed = host.request("sites.set", {"url": "https://m.photos.example/", "alpha": 0.15})["data"]
    assert changed["alpha"] == 0.15 and changed["enabled"] is True
    second = host.request("mark", {"image": image, "site": "photos.example"})["data"]
    assert (first["alpha"], second["alpha"]) == (DEFAULT_ALPHA, 0.15) and first["sha256_out"] != second["sha256_out"]
    rotated = host.request("marks.rotate", {"site": "photos.example"})["data"]
    third = host.request("mark", {"image": image, "site": "photos.example"})["data"]
    assert third["mark_id"] == rotated["mark_id"] != second["mark_id"]
    family = host.request("sites.set", {"site": "photos.example", "family": "texture"})["data"]
    fourth = host.request("mark", {"image": image, "site": "photos.example"})["data"]
    assert family["family"] == "texture" and fourth["mark_id"] not in (third["mark_id"], second["mark_id"])
    marks = host.request("marks.list")["data"]["marks"]
    assert [(m["epoch"], m["family"], m["uploads"], m["current"]) for m in marks] == [
        (0, "structured", 2, False), (1, "structured", 1, False), (2, "texture", 1, True)]
    assert host.request("stats")["data"]["sites"]["photos.example"]["marked"] == 4
    host.request("sites.set", {"site": "photos.example", "fraction": 0.0})
    skipped = host.request("mark", {"image": image, "site": "photos.example"})["data"]
    assert skipped["status"] == "skipped" and "image" not in skipped and "not selected" in skipped["reason"]


def test_preview_blends_at_the_chosen_strength_and_records_nothing(host):
    sample = (Path(__file__).resolve().parents[1] / "extension" / "assets" / "sample.jpg").read_bytes()
    faint, strong = (base64.b64decode(host.request("marks.preview", {"image": base64.b64encode(sample).decode(),
                                                                     "site": "photos.example", "alpha": alpha},
                                                   f"p{alpha}")["data"]["image"]) for alpha in (0.1, 0.5))
    original = np.asarray(Image.open(io.BytesIO(sample)).convert("L"), np.float32)

    def distance(data: bytes) -> float:
        return float(np.abs(np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32) - original).mean())

    assert 0 < distance(faint) < distance(strong)
    assert host.request("ledger.query")["data"]["uploads"] == []
    assert host.request("marks.list")["data"]["marks"] == []  # no mark was issued for a preview


def test_preview_never_reveals_the_users_mark(host):
    """Blending a black image at 0.99 would return the mark itself: a preview must use an external mark."""
    black = base64.b64encode(encode(Image.new("RGB", (512, 512)), "PNG")).decode()
    shown = host.request("marks.preview", {"image": black, "site": "photos.example", "alpha": 0.99})["data"]
    from agent import db, vault
    from agent.marks import registry
    key = vault.unlock(None)
    secret_mark = registry.pixels(key, registry.current(db.connect(), key, "photos.example", DEFAULT_FAMILY))
    revealed = np.asarray(Image.open(io.BytesIO(base64.b64decode(shown["image"]))).convert("RGB"), np.float32)
    assert np.abs(revealed - secret_mark).mean() > 40  # an unrelated mark, not the user's
    assert host.request("marks.preview", {"image": "AAAA", "site": "photos.example", "alpha": 2})["error"][
        "code"] == "bad_request"
