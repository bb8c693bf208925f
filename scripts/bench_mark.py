#!/usr/bin/env python3
"""Benchmark: the cost of marking a JPEG against the floor of decoding and re-encoding it.

For real photos of about 1, 5, 12 and 18 MP it prints, side by side, the median time of
  floor:  Pillow decode + re-encode with the input's own quantisation tables and subsampling, and
  mark:   the agent's whole marking path (Marker.prepare: hashes, site settings, mark, blend, encode, pHash),
their ratio (target: at most 1.3 at 12 MP), and the peak memory of marking in a fresh process as a multiple
of the decoded image (target: under 6). Runs are interleaved so machine noise hits both sides alike.

Photos (Debian's mate-backgrounds): GreenMeadow (1.3 MP) and Wood (4.9 MP) as shipped; Elephants_5640x3172
(17.9 MP) as shipped and downscaled to 12 MP. Usage: .venv/bin/python scripts/bench_mark.py [--runs N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, JpegImagePlugin

BACKGROUNDS = Path("/usr/share/backgrounds/mate")


def photos(workdir: Path) -> list[tuple[str, Path]]:
    large = BACKGROUNDS / "abstract" / "Elephants_5640x3172.jpg"
    twelve = workdir / "elephants-12mp.jpg"
    with Image.open(large) as image:
        image.resize((4618, 2598), Image.Resampling.LANCZOS).save(twelve, quality=92, subsampling="4:2:0")
    return [("1 MP", BACKGROUNDS / "nature" / "GreenMeadow.jpg"), ("5 MP", BACKGROUNDS / "nature" / "Wood.jpg"),
            ("12 MP", twelve), ("18 MP", large)]


def floor(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    image.load()
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", qtables=image.quantization, subsampling=JpegImagePlugin.get_sampling(image),
               progressive=bool(image.info.get("progressive")))
    return buffer.getvalue()


def make_marker():
    from agent import db, vault
    from agent.marking import Marker
    return Marker(vault.create(None), db.connect())


def peak_memory(path: Path) -> tuple[int, int]:
    """(bytes marking added to the resident set at its peak, decoded image bytes), in a fresh process.

    The peak is VmHWM after resetting it through /proc/self/clear_refs, minus VmRSS just before marking; the
    input bytes are already in memory then, as they are in the agent (they arrive in a message)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_mark import make_marker
from PIL import Image
def status(key):
    return int(open('/proc/self/status').read().split(key + ':')[1].split()[0]) * 1024
marker = make_marker()
marker.prepare(open({str(BACKGROUNDS / 'nature' / 'GreenMeadow.jpg')!r}, 'rb').read(), 'bench.example')
data = open({str(path)!r}, 'rb').read()
before = status('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')
marker.prepare(data, 'bench.example')
with Image.open({str(path)!r}) as image:
    print(status('VmHWM') - before, image.width * image.height * len(image.getbands()))
"""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "ISOTOPES_HOME": home}).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ISOTOPES_HOME"] = str(Path(workdir) / "home")
        marker = make_marker()
        print(f"{'photo':7} {'size':>11} {'floor ms':>9} {'mark ms':>8} {'ratio':>6} {'first ms':>9} "
              f"{'peak MB':>8} {'decoded MB':>11} {'peak/decoded':>13}")
        for label, path in photos(Path(workdir)):
            data = path.read_bytes()
            with Image.open(path) as image:
                size = f"{image.width}x{image.height}"
            start = time.perf_counter()
            marker.prepare(data, f"first-{label.replace(' ', '')}.example")  # first use of a mark: renders it
            first = time.perf_counter() - start
            floor_times, mark_times = [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                floor(data)
                floor_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                outcome = marker.prepare(data, "bench.example")
                mark_times.append(time.perf_counter() - start)
                assert outcome.status == "marked", outcome.upload.reason
            peak, decoded = peak_memory(path)
            f, m = statistics.median(floor_times), statistics.median(mark_times)
            print(f"{label:7} {size:>11} {f * 1000:9.1f} {m * 1000:8.1f} {m / f:6.2f} {first * 1000:9.1f} "
                  f"{peak / 2**20:8.1f} {decoded / 2**20:11.1f} {peak / decoded:13.2f}")


if __name__ == "__main__":
    main()
