#!/usr/bin/env python3
"""What a mark costs to look at: PSNR and SSIM of marked against original real photos at each strength, and a
PNG grid of one photo at each strength for the README.

Photos: Debian's mate-backgrounds (real photographs). Marks: fresh external marks of each family (never a user's
own), blended by the product's marking path (agent.blending.blend_photo) at each strength.
Usage: .venv/bin/python scripts/visual_cost.py [--out docs/results]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.blending import blend_photo  # noqa: E402
from agent.marks.families import FAMILIES, render  # noqa: E402
from agent.marks.keys import external_seeds  # noqa: E402

PHOTOS = sorted(Path("/usr/share/backgrounds/mate/nature").glob("*.jpg"))
STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5)
WORKING_WIDTH = 1024  # photos are measured at this width, as a viewer would see them on a screen


def _photo(path: Path) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        small = image.resize((WORKING_WIDTH, round(image.height * WORKING_WIDTH / image.width)),
                             Image.Resampling.BOX)
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    return buffer.getvalue()


def _marked(data: bytes, mark: np.ndarray, alpha: float) -> np.ndarray:
    with Image.open(io.BytesIO(blend_photo(data, lambda: mark, alpha).data)) as image:
        return np.asarray(image.convert("RGB"))


def measure() -> list[dict]:
    rows = []
    photos = [(path.stem, _photo(path)) for path in PHOTOS]
    for family in FAMILIES:
        marks = [render(family, seed) for seed in external_seeds(len(photos))]
        for alpha in STRENGTHS:
            psnr, ssim = [], []
            for (_, data), mark in zip(photos, marks):
                with Image.open(io.BytesIO(data)) as image:
                    original = np.asarray(image.convert("RGB"))
                marked = _marked(data, mark, alpha)
                psnr.append(peak_signal_noise_ratio(original, marked, data_range=255))
                ssim.append(structural_similarity(original, marked, channel_axis=2, data_range=255))
            rows.append({"family": family, "alpha": alpha, "photos": len(photos), "psnr_db": float(np.mean(psnr)),
                         "ssim": float(np.mean(ssim))})
    return rows


def grid(path: Path, photo: Path, family: str) -> None:
    data = _photo(photo)
    mark = render(family, external_seeds(1)[0])
    tiles = [Image.open(io.BytesIO(data)).convert("RGB")]
    tiles += [Image.fromarray(_marked(data, mark, alpha)) for alpha in STRENGTHS]
    width = 320
    tiles = [tile.resize((width, round(tile.height * width / tile.width)), Image.Resampling.BOX) for tile in tiles]
    sheet = Image.new("RGB", (3 * width, 2 * (tiles[0].height + 20)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (tile, caption) in enumerate(zip(tiles, ["original"] + [f"a = {a}" for a in STRENGTHS])):
        x, y = (index % 3) * width, (index // 3) * (tile.height + 20)
        sheet.paste(tile, (x, y + 20))
        draw.text((x + 6, y + 4), caption, fill="black")
    sheet.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    if not PHOTOS:
        print("error: install Debian's mate-backgrounds (scripts/test does)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure()
    lines = ["| family | a | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['alpha']} | {r['psnr_db']:.1f} | {r['ssim']:.3f} |" for r in rows]
    table = "\n".join(lines) + "\n"
    print(f"{len(PHOTOS)} real photos at {WORKING_WIDTH} px wide, marked by the product's blending:\n{table}")
    (args.out / "visual-cost.md").write_text("Produced by `scripts/visual_cost.py`.\n\n" + table)
    for family in FAMILIES:
        grid(args.out / f"strengths-{family}.png", PHOTOS[0], family)
    print(f"wrote {args.out / 'visual-cost.md'} and strength grids {args.out}/strengths-*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
