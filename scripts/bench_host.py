#!/usr/bin/env python3
"""Benchmark: what the native host adds on top of marking, and how fast it answers.

Prints, side by side:
  - a 5 MB JPEG marked through a real `isotopes host` process (base64, framing, chunked reply, reassembly)
    against the same bytes marked in-process (Marker.prepare + ledger record): target, at most 150 ms more;
  - the median round trip of a small request (hello) on an open port: target, under 2 ms;
  - process start to the hello reply, as when the browser starts the host on demand: target, under 300 ms.

The photo is Debian's mate-backgrounds Elephants_3840x2160 re-encoded at quality 96 (5.3 MB).
Usage: .venv/bin/python scripts/bench_host.py [--runs N]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from host_client import HostProcess  # noqa: E402  (the tests' raw-frame client)

PHOTO = Path("/usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg")
SITE = "bench.example"


def five_megabyte_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.open(PHOTO).save(buffer, "JPEG", quality=96)
    return buffer.getvalue()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["ISOTOPES_HOME"] = home
        from agent import db, settings, vault
        from agent.marking import Marker
        marker = Marker(vault.create(None), db.connect())
        settings.update(marker.conn, SITE, enabled=True)
        data = five_megabyte_jpeg()
        encoded = base64.b64encode(data).decode()

        host = HostProcess()
        host.request("mark", {"image": encoded, "site": SITE})  # both sides render the mark once first
        marker.record(marker.prepare(data, SITE))
        through_host, in_process = [], []
        for run in range(args.runs):
            start = time.perf_counter()
            reply = host.request("mark", {"image": encoded, "site": SITE}, f"m{run}")
            base64.b64decode(reply["data"]["image"])
            through_host.append(time.perf_counter() - start)
            start = time.perf_counter()
            marker.record(marker.prepare(data, SITE))
            in_process.append(time.perf_counter() - start)

        small = []
        for run in range(500):
            start = time.perf_counter()
            host.request("hello", request_id=run)
            small.append(time.perf_counter() - start)
        host.close()

        startup = []
        for _ in range(args.runs):
            start = time.perf_counter()
            process = HostProcess()
            process.request("hello")
            startup.append(time.perf_counter() - start)
            process.close()

    host_ms, local_ms = median_ms(through_host), median_ms(in_process)
    print(f"{'measure':44} {'median':>10} {'target':>10}")
    print(f"{f'mark {len(data) / 1e6:.1f} MB JPEG in-process':44} {local_ms:8.1f}ms")
    print(f"{'mark the same through the host':44} {host_ms:8.1f}ms")
    print(f"{'  added by the host':44} {host_ms - local_ms:8.1f}ms {'<= 150ms':>10}")
    print(f"{'small request round trip (hello)':44} {median_ms(small):8.2f}ms {'< 2ms':>10}")
    print(f"{'process start to hello reply':44} {median_ms(startup):8.1f}ms {'< 300ms':>10}")


if __name__ == "__main__":
    main()
