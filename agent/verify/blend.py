"""Blend marks into batches of auxiliary images on the model's device, the way an upload was marked.

An upload is blended at full size and a trainer scales it down; both are linear, so blending the mark scaled to
the model's input size into the aux image at that size gives the same pixels up to rounding. That keeps every
tensor at the model's size: memory is bounded by the batch, whatever the number of aux images.
Torch does the arithmetic (on CUDA when the model runs there, on the CPU otherwise) with the same rounding as
``agent.blending.blend_arrays``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..blending import cover


def mark_at(mark: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A square mark as it covers an image of `size` = (height, width): centre-cropped, area-averaged."""
    height, width = size
    return np.asarray(cover(Image.fromarray(mark, "RGB"), width, height))


def blend_device(model) -> str:
    """Where to blend for `model`: on its GPU when torch can reach one too, on the CPU otherwise (an
    onnxruntime session may run on CUDA while torch is a CPU build)."""
    wanted = getattr(model, "device", "cpu")
    return wanted if wanted == "cpu" or torch.cuda.is_available() else "cpu"


class Blender:
    """Blends marks (already at the model's size) into one batch of aux images held on `device`."""

    CHUNK_VALUES = 1 << 20
    """On the CPU a batch is blended a few images at a time, so that each step's float64 values (8 MB) stay in
    the cache rather than streaming a whole batch through memory at every operation (at 224 px, 200 images are
    240 MB in float64)."""

    def __init__(self, images: np.ndarray, device: str = "cpu"):
        self.device = torch.device(device)
        self.images = torch.as_tensor(np.ascontiguousarray(images), device=self.device)
        values_per_image = max(1, int(np.prod(images.shape[1:])))
        whole_batch = self.device.type == "cuda"  # a GPU has the bandwidth: one step
        self.chunk = max(1, len(images) if whole_batch else self.CHUNK_VALUES // values_per_image)

    def __call__(self, mark: np.ndarray, alpha: float) -> np.ndarray:
        """x' = a * t + (1 - a) * x for every image of the batch, as (N, H, W, 3) uint8. The two products are
        rounded separately and then added, exactly as blend_arrays does in float64."""
        added = alpha * torch.tensor(np.ascontiguousarray(mark), dtype=torch.float64, device=self.device)
        blended = torch.empty_like(self.images)
        for first in range(0, len(self.images), self.chunk):
            part = self.images[first:first + self.chunk].to(torch.float64).mul_(1.0 - alpha)
            blended[first:first + self.chunk] = part.add_(added).round_().clamp_(0, 255)
        return blended.cpu().numpy()
