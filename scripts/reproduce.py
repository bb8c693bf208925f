#!/usr/bin/env python3
"""Reproduce the paper's experiments with the product's own marking and verification.

Usage: .venv/bin/python scripts/reproduce.py PRESET [--quick] [--runs N] [--out DIR]
Presets (agent/lab/presets.py): single, multi, same-class, recompress, countermeasures, null, families.
Each run trains a clean and a marked model on Fashion-MNIST (Debian's dataset-fashion-mnist) and tests the same
marks against both; results.json, table.md and rates.png go to --out (default results/PRESET).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.lab import experiment, presets, results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(presets.PRESETS))
    parser.add_argument("--quick", action="store_true", help="the small variant CI runs")
    parser.add_argument("--runs", type=int, default=5, help="models per setting (seeds 0 .. N-1)")
    parser.add_argument("--out", type=Path, help="where results go (default results/PRESET)")
    args = parser.parse_args()
    out = args.out or ROOT / "results" / args.preset
    command = "scripts/reproduce.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"{args.preset}: {presets.PRESETS[args.preset]['about']}", flush=True)
    runs = []
    partial = out / "runs.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    for setting in presets.settings(args.preset, args.quick):
        for seed in range(args.runs):
            started = time.perf_counter()
            run = experiment.run(setting, seed)
            runs.append(run)
            with partial.open("a") as log:
                log.write(json.dumps(run) + "\n")
            hits = sum(t["marked"]["detected"] for t in run["trials"])
            false = sum(t["clean"]["detected"] for t in run["trials"])
            print(f"  {setting.key() or 'defaults'} seed {seed}: accuracy {run['accuracy_clean']:.3f} clean, "
                  f"{run['accuracy_marked']:.3f} marked; detected {hits}/{len(run['trials'])} on the marked "
                  f"model, {false} on the clean one ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = results.write(runs, out, command)
    print(results.markdown(rows, command))
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'rates.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
