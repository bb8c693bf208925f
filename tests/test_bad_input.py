"""A corpus of awkward and broken files, each with its exact outcome: marked, passed through, or failed.

Whatever happens, the output is never corrupted: a skipped file comes back byte-identical, a failed one comes
back as nothing (the caller's fail-safe decides), and every case leaves exactly one ledger row.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from agent import db, ledger, vault
from agent.marking import Marker
from conftest import encode, real_photo, small_real_photo


def png_bomb(width: int, height: int) -> bytes:
    """A real decompression bomb: a valid greyscale PNG of width x height zero pixels (~0.1% of its size)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    compressor, row = zlib.compressobj(9), bytes(width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [small_real_photo("GreenMeadow", 160).convert("P"), small_real_photo("Aqua", 160).convert("P")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def cmyk_jpeg() -> bytes:
    return encode(small_real_photo("YellowFlower").convert("CMYK"), "JPEG", quality=90)


def png_16bit() -> bytes:
    grey = np.asarray(small_real_photo("Dune").convert("L"), np.uint16) * 257 + 3  # uses the low byte too
    return encode(Image.fromarray(grey), "PNG")


def palette_png_with_transparency() -> bytes:
    image = small_real_photo("RainDrops", 240).quantize(64)
    image.info["transparency"] = 0
    return encode(image, "PNG", transparency=0)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    return encode(small_real_photo("Blinds"), "JPEG", quality=90, exif=exif.tobytes())


def colour_key_png() -> bytes:
    """An RGB PNG whose pure-green pixels are transparent (a tRNS colour key, no alpha channel)."""
    pixels = np.asarray(small_real_photo("Aqua", 200)).copy()
    pixels[:50, :50] = (0, 255, 0)
    return encode(Image.fromarray(pixels, "RGB"), "PNG", transparency=(0, 255, 0))


def png_16bit_colour() -> bytes:
    """A 16-bit RGB PNG, written by hand: Pillow reads these but cannot write them."""
    rgb = np.asarray(small_real_photo("Dune", 64), np.uint16) * 257
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + \
        chunk(b"IEND", b"")


TRUNCATED = real_photo("Garden").read_bytes()[:60_000]


@pytest.fixture
def marker(home):
    return Marker(vault.create(None), db.connect())


CASES = {
    # name: (make bytes, status, words in the reason, check of the output image or None)
    "zero bytes": (lambda: b"", "skipped", "empty file", None),
    "truncated jpeg": (lambda: TRUNCATED, "failed", "damaged or truncated", None),
    "text named .jpg": (lambda: b"Dear diary,\nnot a photo.\n" * 40, "skipped", "not an image", None),
    "svg": (lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "skipped", "SVG", None),
    "heic": (lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "skipped", "HEIC", None),
    "decompression bomb": (lambda: png_bomb(12_000, 12_000), "failed", "decompression bomb", None),
    "animated gif": (animated_gif, "skipped", "animated GIF", None),
    "cmyk jpeg": (cmyk_jpeg, "marked", None, lambda im: im.format == "JPEG" and im.mode == "CMYK"),
    "16-bit png": (png_16bit, "marked", None,
                   lambda im: im.format == "PNG" and im.mode.startswith("I") and np.asarray(im).max() > 255),
    "palette png with transparency": (palette_png_with_transparency, "marked", None,
                                      lambda im: im.mode == "RGBA" and np.asarray(im.getchannel("A")).min() == 0),
    "png with a colour key": (colour_key_png, "marked", None,
                              lambda im: im.mode == "RGBA" and (np.asarray(im.getchannel("A"))[:50, :50] == 0).all()
                              and (np.asarray(im.getchannel("A"))[60:] == 255).all()),
    "16-bit colour png": (png_16bit_colour, "marked", "16-bit colour was reduced to 8-bit",
                          lambda im: im.format == "PNG" and im.mode == "RGB"),
    "exif-rotated photo": (exif_rotated_jpeg, "marked", None,
                           lambda im: im.size == (300, 480) and im.getexif().get(0x0112, 1) == 1),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_outcome(marker, case):
    make, status, reason, check = CASES[case]
    data = make()
    upload, output = marker.mark(data, "example.com", name=case)
    assert upload.status == status, upload.reason
    if status == "marked":
        image = Image.open(io.BytesIO(output))
        image.load()
        assert check(image)
        assert upload.reason == reason and upload.mark_id  # a marked photo's reason notes what else changed
    elif status == "skipped":
        assert reason in upload.reason
        assert output == data  # passed through byte for byte
    else:
        assert reason in upload.reason
        assert output is None
    rows = ledger.uploads(marker.conn)
    assert [(row.name, row.status, row.reason) for row in rows] == [(case, status, upload.reason)]


def test_the_agent_keeps_working_after_every_bad_input(marker):
    for make, *_ in CASES.values():
        marker.mark(make(), "example.com")
    upload, output = marker.mark(real_photo("Wood").read_bytes(), "example.com")
    assert upload.status == "marked" and Image.open(io.BytesIO(output)).size == (2560, 1920)
    assert len(ledger.uploads(marker.conn)) == len(CASES) + 1
    assert marker.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
