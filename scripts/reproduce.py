#!/usr/bin/env python3
"""Reproduce the paper's experiments with the product's own marking and verification.

Usage: .venv/bin/python scripts/reproduce.py PRESET [--quick] [--runs N] [--out DIR] [--data DIR --size S]
       [--resume] [--keep DIR]
Presets (agent/lab/presets.py, each with its question): defaults, single, converged, power, data-size, multi,
learnable, same-class, recompress, countermeasures, null, families.
Each run trains a clean and a marked model on Fashion-MNIST (Debian's dataset-fashion-mnist), or on --data (any
folder of real images with one subfolder per class, scaled to --size pixels), and tests the same marks against
both; results.json, table.md and rates.png go to --out (default results/PRESET). --keep DIR keeps every run's
models, vault and ledger for analyses that query the same models again (about 3.5 MB a run).
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.lab import experiment, presets, results  # noqa: E402


def _key(setting: dict, seed: int) -> str:
    return json.dumps([setting, seed], sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=sorted(presets.PRESETS))
    parser.add_argument("--quick", action="store_true", help="the small variant CI runs")
    parser.add_argument("--runs", type=int, default=5, help="models per setting (seeds 0 .. N-1)")
    parser.add_argument("--out", type=Path, help="where results go (default results/PRESET)")
    parser.add_argument("--data", type=Path, help="a folder with one subfolder of images per class")
    parser.add_argument("--size", type=int, default=32, help="image side for --data (default 32)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in OUT/runs.jsonl and only add the missing ones")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each run's models, vault and ledger in DIR/SETTING-seedN for later analyses")
    args = parser.parse_args()
    dataset = experiment.folder_dataset(args.data, args.size) if args.data else experiment.fashion()
    out = args.out or ROOT / "results" / args.preset
    command = "scripts/reproduce.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"{args.preset}: {presets.PRESETS[args.preset].about}", flush=True)
    partial = out / "runs.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    wanted = [(setting, seed) for setting in presets.settings(args.preset, args.quick) for seed in range(args.runs)]
    keys = {_key(asdict(setting), seed) for setting, seed in wanted}
    kept = [json.loads(line) for line in partial.read_text().splitlines()] if args.resume and partial.exists() \
        else []
    runs = [run for run in kept if _key(run["setting"], run["seed"]) in keys]
    partial.write_text("".join(json.dumps(run) + "\n" for run in runs))
    done = {_key(run["setting"], run["seed"]) for run in runs}
    clean_models: dict = {}  # each seed's clean model, trained once for every setting that trains alike
    for setting, seed in wanted:
        if _key(asdict(setting), seed) in done:
            continue
        started = time.perf_counter()
        keep = args.keep / f"{setting.key() or 'defaults'}-seed{seed}" if args.keep else None
        run = experiment.run(setting, seed, dataset, clean_models=clean_models, keep=keep)
        runs.append(run)
        with partial.open("a") as log:
            log.write(json.dumps(run) + "\n")
        hits = sum(t["marked"]["detected"] for t in run["trials"])
        false = sum(t["clean"]["detected"] for t in run["trials"])
        print(f"  {setting.key() or 'defaults'} seed {seed}: accuracy {run['accuracy_clean']:.3f} clean, "
              f"{run['accuracy_marked']:.3f} marked; detected {hits}/{len(run['trials'])} on the marked "
              f"model, {false} on the clean one ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = results.write(runs, out, command, presets.PRESETS[args.preset].paper)
    print(results.markdown(rows, command, presets.PRESETS[args.preset].paper))
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'rates.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
