"""Blend a mark into a photo, keeping everything else about the photo: x' = a * t[m] + (1 - a) * x[m].

The mask m covers the whole photo: the square mark is scaled to cover it and centre-cropped (one resize with
a source box). EXIF orientation is applied first, so the mark lands on the picture as people see it, and the
output carries orientation 1. The output keeps the input's format and its quality settings (a JPEG reuses the
input's quantisation tables and chroma subsampling), its ICC profile, EXIF, resolution and alpha channel.

What cannot be marked raises ``Unmarkable`` (the caller passes the bytes through unchanged, with the reason);
what should be markable but cannot be processed raises ``BlendFailed``. Neither ever yields corrupted output.
"""

from __future__ import annotations

import io
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import imagehash
import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

MAX_PIXELS = 100_000_000
"""Larger images are refused as possible decompression bombs (a 100 MP RGB image decodes to 300 MB)."""

MARKED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
"""Input format -> output format. MPO (a camera JPEG with extra frames) is written as a plain JPEG."""

WEBP_LOSSY_QUALITY = 90
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="isotopes-blend")


class Unmarkable(Exception):
    """The file is not a photo this agent can mark (the reason says why); pass it through unchanged."""

    code = "unmarkable"


class NotAnImage(Unmarkable):
    """The bytes are in no image format at all."""

    code = "not_an_image"


class BlendFailed(Exception):
    """The file looks like a photo but could not be processed; nothing usable was produced."""

    code = "image_damaged"


@dataclass(frozen=True)
class BlendedPhoto:
    data: bytes
    format: str
    width: int
    height: int
    phash: str
    note: str | None = None  # what marking changed besides the pixels, for the ledger


def blend_arrays(photo: np.ndarray, mark: np.ndarray, alpha: float) -> np.ndarray:
    """x' = a * t + (1 - a) * x on same-shaped arrays, rounded to the photo's integer type."""
    mixed = alpha * mark.astype(np.float64) + (1.0 - alpha) * photo.astype(np.float64)
    return np.clip(np.rint(mixed), 0, np.iinfo(photo.dtype).max).astype(photo.dtype)


def cover(mark: Image.Image, width: int, height: int) -> Image.Image:
    """The square mark scaled to cover width x height, centre-cropped, in one resampling pass.

    Enlarging uses nearest-neighbour (5x faster than bilinear on 12 MP, and a trainer's downscaling averages the
    blocks back to the mark); shrinking averages areas (BOX), as a trainer's resize does.
    """
    side = mark.width
    if width >= height:
        box_w, box_h = side, side * height / width
    else:
        box_w, box_h = side * width / height, side
    box = ((side - box_w) / 2, (side - box_h) / 2, (side + box_w) / 2, (side + box_h) / 2)
    enlarging = width >= box_w
    resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
    return mark.resize((width, height), resample, box=box)


def perceptual_hash(image: Image.Image) -> str:
    """pHash of an upright image, computed on a reduced copy (fast on 18 MP, same result as on the full image
    up to resampling noise, which pHash is built to ignore)."""
    if image.mode.startswith("I"):  # 16-bit greyscale: keep the top 8 bits (convert() would clip to white)
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8))
    factor = max(1, min(image.size) // 256)
    small = image.reduce(factor) if factor > 1 else image
    return str(imagehash.phash(small.convert("RGB")))


def blend_photo(data: bytes, mark_pixels: Callable[[], np.ndarray], alpha: float) -> BlendedPhoto:
    """Mark the encoded photo `data` with the (square, RGB) mark that `mark_pixels` returns, at strength `alpha`."""
    photo = _open(data)
    width, height = photo.size
    if _orientation(photo) in (5, 6, 7, 8):
        width, height = height, width
    # The mark is rendered and resized on another core while this one decodes the photo.
    covering = _pool.submit(lambda: cover(Image.fromarray(mark_pixels(), "RGB"), width, height))
    try:
        photo.load()
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        covering.cancel()
        raise BlendFailed(f"the image data is damaged or truncated ({exc})") from None
    source_info = dict(photo.info)
    quantization = getattr(photo, "quantization", None)
    sampling = JpegImagePlugin.get_sampling(photo) if photo.format in ("JPEG", "MPO") else -1
    output_format = MARKED_FORMATS[photo.format]
    ImageOps.exif_transpose(photo, in_place=True)
    blended = _blend_modes(photo, covering.result(), alpha)
    phash = _pool.submit(perceptual_hash, blended)  # on the other core while this one encodes
    encoded = _encode(blended, output_format, source_info, _exif_without_thumbnail(photo), quantization, sampling,
                      data)
    note = "16-bit colour was reduced to 8-bit" if _is_16bit_colour_png(data) else None
    return BlendedPhoto(data=encoded, format=output_format, width=blended.width, height=blended.height,
                        phash=phash.result(), note=note)


def _open(data: bytes) -> Image.Image:
    if not data:
        raise NotAnImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            photo = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise BlendFailed(f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise _sniff(data) from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise BlendFailed(f"the image header is damaged ({exc})") from None
    if photo.width * photo.height > MAX_PIXELS:
        raise BlendFailed(f"refused as a possible decompression bomb: {photo.width}x{photo.height} is "
                          f"{photo.width * photo.height / 1e6:.0f} MP, over the {MAX_PIXELS / 1e6:.0f} MP limit")
    if photo.format != "MPO" and getattr(photo, "n_frames", 1) > 1:
        raise Unmarkable(f"animated {photo.format} images are not marked")
    if photo.format not in MARKED_FORMATS:
        raise Unmarkable(f"{photo.format} images are not marked (JPEG, PNG and WebP are)")
    return photo


def _sniff(data: bytes) -> Unmarkable:
    """Why Pillow could not identify `data`: a known image kind it cannot decode, or no image at all."""
    head = data[:512].lstrip()
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"avif", b"avis"):
        return Unmarkable("HEIC/HEIF/AVIF images are not marked (no decoder for them is installed)")
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096]):
        return Unmarkable("SVG (vector) images are not marked")
    return NotAnImage("not an image (unrecognised file format)")


def _orientation(photo: Image.Image) -> int:
    try:
        return int(photo.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block must not stop marking; Pillow raises many types here
        return 1


def _blend_modes(photo: Image.Image, mark: Image.Image, alpha: float) -> Image.Image:
    mode = photo.mode
    if mode == "P" or (mode in ("RGB", "L") and "transparency" in photo.info):  # palette, or a colour key
        photo = photo.convert("RGBA" if "transparency" in photo.info else "RGB")
    elif mode == "1":
        photo = photo.convert("L")
    elif mode == "PA":
        photo = photo.convert("RGBA")
    mode = photo.mode
    if mode in ("RGB", "L", "CMYK"):
        return Image.blend(photo, _as_mode(mark, mode), alpha)
    if mode in ("RGBA", "LA"):
        colour = Image.blend(photo.convert(mode[:-1]), _as_mode(mark, mode[:-1]), alpha)
        colour.putalpha(photo.getchannel("A"))
        return colour
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNG: blend at full depth
        values = np.clip(np.asarray(photo), 0, 65535).astype(np.uint16)
        mark16 = np.asarray(mark.convert("L"), np.float64) * 257.0
        return Image.fromarray(blend_arrays(values, mark16, alpha))  # uint16 -> mode I;16
    raise Unmarkable(f"images in colour mode {mode} are not marked")


def _exif_without_thumbnail(photo: Image.Image) -> bytes | None:
    """The photo's EXIF re-serialised without IFD1, whose thumbnail is an unmarked copy of the photo."""
    if "exif" not in photo.info:
        return None
    try:
        exif = photo.getexif()
        for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            exif.get_ifd(ifd)  # loaded sub-IFDs are written back by tobytes()
        return exif.tobytes()
    except Exception:  # an unreadable EXIF block is dropped rather than copied blind (it may hold a thumbnail)
        return None


def _is_16bit_colour_png(data: bytes) -> bool:
    """A PNG of 16-bit RGB(A) samples: Pillow decodes it to 8 bits per channel."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24] == 16 and data[25] in (2, 6)


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    return image if image.mode == mode else image.convert(mode)  # convert() copies even to the same mode


def _encode(image: Image.Image, fmt: str, info: dict, exif: bytes | None, quantization, sampling: int,
            source: bytes) -> bytes:
    options: dict = {}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    if exif:
        options["exif"] = exif
    if "dpi" in info:
        options["dpi"] = info["dpi"]
    if fmt == "JPEG":
        if quantization:
            options["qtables"] = quantization
            options["subsampling"] = sampling if sampling != -1 else 0
        else:
            options["quality"] = 95
        options["progressive"] = bool(info.get("progressive") or info.get("progression"))
        options["optimize"] = False
    elif fmt == "WEBP":
        if _webp_is_lossless(source):
            options["lossless"] = True
        else:
            options["quality"] = WEBP_LOSSY_QUALITY
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP file holds a lossless (VP8L) bitstream: walk its RIFF chunks."""
    offset = 12
    while offset + 8 <= len(data):
        fourcc, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        offset += 8 + size + (size & 1)
    return False
