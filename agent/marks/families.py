"""Mark families: procedural generators of rich, image-like patterns.

The paper (appendix A.3) found that marks with many distinct features (ImageNet photos) are memorised far
better than pixel squares or noise. A family turns a 32-byte seed into a square RGB image with features at
many scales: colours, edges and shapes. Every family is registered in ``FAMILIES``; the default is the one the
reproduction harness measured best: structured marks, which models trained to convergence learn more
specifically than textures (docs/results/README.md, "Models trained to convergence").
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from .stream import Stream

BASE_SIZE = 512
"""Side of a rendered mark; blending resizes it to cover the photo."""

Family = Callable[[bytes, int], np.ndarray]


def _smooth_noise(stream: Stream, label: str, grid: int, size: int) -> np.ndarray:
    """A (size, size, 3) field in [0, 1) varying smoothly over `grid` cells per side."""
    cells = stream.uniform(label, (3, grid, grid)).astype(np.float32)
    channels = [np.asarray(Image.fromarray(c, mode="F").resize((size, size), Image.Resampling.BICUBIC))
                for c in cells]
    return np.stack(channels, axis=-1)


def _colour(values: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour from three uniforms (hue, saturation, value)."""
    hue, sat, val = float(values[0]), 0.5 + 0.5 * float(values[1]), 0.35 + 0.65 * float(values[2])
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return tuple(int(round(255 * c)) for c in rgb)


def _polygon(cx: float, cy: float, radius: float, corners: int, turn: float, jitter: np.ndarray) -> list:
    angles = turn * 2 * np.pi + np.arange(corners) * 2 * np.pi / corners
    radii = radius * (0.55 + 0.45 * jitter[:corners])
    return [(float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a, r in zip(angles, radii)]


def _stripes(draw: ImageDraw.ImageDraw, size: int, p: np.ndarray, fill, fill2) -> None:
    """Parallel bands at a random angle inside a rotated square patch; p = (cx, cy, half side, angle, period)."""
    cx, cy, half = p[0] * size, p[1] * size, p[2] * size
    angle = p[3] * np.pi
    period = max(3.0, half * (0.15 + 0.5 * p[4]))
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    offset = -half
    band = 0
    while offset < half:
        a = np.array([cx, cy]) + u * offset
        b = a + u * period / 2
        corners = [a - v * half, b - v * half, b + v * half, a + v * half]
        draw.polygon([tuple(map(float, c)) for c in corners], fill=fill if band % 2 == 0 else fill2)
        offset += period / 2
        band += 1


def _checker(draw: ImageDraw.ImageDraw, size: int, p: np.ndarray, fill, fill2) -> None:
    """An axis-aligned checkerboard; p = (cx, cy, half side, cells, unused)."""
    half = p[2] * size
    cells = 2 + int(p[3] * 8)
    x0, y0, cell = p[0] * size - half, p[1] * size - half, 2 * half / cells
    for row in range(cells):
        for col in range(cells):
            x, y = x0 + col * cell, y0 + row * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=fill if (row + col) % 2 == 0 else fill2)


def _draw_shapes(image: Image.Image, stream: Stream, label: str, count: int, scale: float,
                 opacity: float) -> Image.Image:
    """Composite `count` random shapes (polygons, ellipses, lines, stripes, checkers) of about `scale`."""
    size = image.width
    overlay = image.copy()
    mask = Image.new("L", image.size, 0)
    draw, mask_draw = ImageDraw.Draw(overlay), ImageDraw.Draw(mask)
    params = stream.uniform(label, (count, 16))
    alpha = int(round(255 * opacity))
    for p in params:
        kind = int(p[0] * 5)
        fill, fill2 = _colour(p[1:4]), _colour(p[4:7])
        cx, cy, radius = p[7] * size, p[8] * size, scale * size * (0.5 + p[9])
        if kind == 0:
            shape = _polygon(cx, cy, radius, 3 + int(p[10] * 5), p[11], p[12:16])
            draw.polygon(shape, fill=fill)
            mask_draw.polygon(shape, fill=alpha)
        elif kind == 1:
            box = [cx - radius, cy - radius * (0.3 + p[10]), cx + radius, cy + radius * (0.3 + p[10])]
            draw.ellipse(box, fill=fill, outline=fill2, width=max(1, int(radius * 0.15)))
            mask_draw.ellipse(box, fill=alpha)
        elif kind == 2:
            end = (cx + radius * 2 * np.cos(p[10] * 2 * np.pi), cy + radius * 2 * np.sin(p[10] * 2 * np.pi))
            width = max(2, int(radius * 0.2 * (0.3 + p[11])))
            draw.line([(cx, cy), end], fill=fill, width=width)
            mask_draw.line([(cx, cy), end], fill=alpha, width=width)
        else:
            patch = np.concatenate([p[7:9], [scale * (0.5 + p[9])], p[10:12]])
            (_stripes if kind == 3 else _checker)(draw, size, patch, fill, fill2)
            (_stripes if kind == 3 else _checker)(mask_draw, size, patch, alpha, alpha)
    return Image.composite(overlay, image, mask)


def texture(seed: bytes, size: int = BASE_SIZE) -> np.ndarray:
    """Multi-scale colour noise under three layers of shapes, from large to small."""
    stream = Stream(seed)
    field = np.zeros((size, size, 3), np.float32)
    for octave, grid in enumerate((2, 4, 8, 16, 32, 64)):
        field += (0.75 ** octave) * (_smooth_noise(stream, f"octave{octave}", grid, size) - 0.5)
    low, high = np.percentile(field, [1, 99])
    base = np.clip((field - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(base, "RGB")
    for layer, (count, scale, opacity) in enumerate(((6, 0.18, 0.85), (18, 0.07, 0.9), (60, 0.025, 1.0))):
        image = _draw_shapes(image, stream, f"shapes{layer}", count, scale, opacity)
    return np.asarray(image)


def structured(seed: bytes, size: int = BASE_SIZE) -> np.ndarray:
    """Flat colours and hard edges: large polygons, stripes and checkers on a two-colour gradient."""
    stream = Stream(seed)
    ends = stream.uniform("background", 6)
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    base = (1 - t) * np.array(_colour(ends[:3]), np.float32) + t * np.array(_colour(ends[3:]), np.float32)
    image = Image.fromarray(np.broadcast_to(base, (size, size, 3)).astype(np.uint8), "RGB")
    for layer, (count, scale) in enumerate(((5, 0.3), (12, 0.12), (30, 0.05))):
        image = _draw_shapes(image, stream, f"structured{layer}", count, scale, 1.0)
    return np.asarray(image)


FAMILIES: dict[str, Family] = {"texture": texture, "structured": structured}
DEFAULT_FAMILY = "structured"


def render(family: str, seed: bytes, size: int = BASE_SIZE) -> np.ndarray:
    """The (size, size, 3) uint8 mark of `family` for `seed`."""
    try:
        generator = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown mark family {family!r}; known: {', '.join(sorted(FAMILIES))}") from None
    return generator(seed, size)
