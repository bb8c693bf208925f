"""The blend itself, and everything about a photo that marking must keep: format, quality, ICC, alpha, EXIF."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from agent.blending import blend_arrays, blend_photo, cover
from agent.marks.families import render
from conftest import encode, real_photo, small_real_photo

MARK = render("texture", bytes(range(32)))


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_blend_matches_hand_computed_values():
    photo = np.array([[[0, 100, 255], [10, 20, 30]]], np.uint8)
    mark = np.array([[[255, 0, 255], [110, 220, 130]]], np.uint8)
    # 0.3 * t + 0.7 * x: 0.3*255 + 0 = 76.5 -> 76 (round half to even), 0 + 70 = 70, 255; 33+7 = 40, 66+14, 39+21
    assert blend_arrays(photo, mark, 0.3).tolist() == [[[76, 70, 255], [40, 80, 60]]]


def test_blend_photo_is_the_formula_on_a_lossless_photo():
    photo = small_real_photo("Aqua", 300)
    out = decode(blend_photo(encode(photo, "PNG"), lambda: MARK, 0.25).data)
    expected = blend_arrays(np.asarray(photo), np.asarray(cover(Image.fromarray(MARK), *photo.size)), 0.25)
    # Pillow's blend rounds in 8-bit fixed point: at most one level from the exact formula.
    assert np.abs(np.asarray(out, np.int16) - expected.astype(np.int16)).max() <= 1


def test_cover_fills_the_frame_with_the_centre_of_the_mark():
    mark = Image.fromarray(MARK)
    wide = np.asarray(cover(mark, 1024, 256))
    assert wide.shape == (256, 1024, 3)
    # 2x enlargement of the middle quarter-height band: pixel (y, x) comes from mark (192 + y/2, x/2)
    assert (wide[::2, ::2] == MARK[192:320, :]).all()
    tall = np.asarray(cover(mark, 64, 128))
    assert tall.shape == (128, 64, 3)


def test_jpeg_keeps_format_quantisation_subsampling_and_progressive_flag():
    source = real_photo("FreshFlower").read_bytes()  # a progressive JPEG
    original = decode(source)
    marked = decode(blend_photo(source, lambda: MARK, 0.3).data)
    assert marked.format == "JPEG" and marked.size == original.size
    assert marked.quantization == original.quantization
    assert JpegImagePlugin.get_sampling(marked) == JpegImagePlugin.get_sampling(original)
    assert marked.info.get("progressive") == original.info.get("progressive") == 1


@pytest.mark.parametrize("quality", [60, 95])
def test_jpeg_size_stays_comparable(quality):
    source = encode(small_real_photo("Garden", 1024), "JPEG", quality=quality)
    marked = blend_photo(source, lambda: MARK, 0.3).data
    assert 0.5 < len(marked) / len(source) < 2.0


def test_png_with_icc_profile_and_alpha():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = small_real_photo("LadyBird", 320).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, photo.width, dtype=np.uint8), (photo.height, 1))
    photo.putalpha(Image.fromarray(alpha, "L"))
    marked = decode(blend_photo(encode(photo, "PNG", icc_profile=srgb), lambda: MARK, 0.3).data)
    assert marked.format == "PNG" and marked.mode == "RGBA"
    assert marked.info["icc_profile"] == srgb
    assert (np.asarray(marked.getchannel("A")) == alpha).all()
    assert not (np.asarray(marked.convert("RGB")) == np.asarray(photo.convert("RGB"))).all()


def test_jpeg_keeps_icc_profile():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(small_real_photo("Dune"), "JPEG", quality=90, icc_profile=srgb)
    assert decode(blend_photo(source, lambda: MARK, 0.3).data).info["icc_profile"] == srgb


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_stays_webp_and_keeps_its_compression_kind(lossless):
    photo = small_real_photo("TwoWings", 320)
    source = encode(photo, "WEBP", lossless=lossless, quality=85)
    data = blend_photo(source, lambda: MARK, 0.3).data
    assert decode(data).format == "WEBP"
    assert (b"VP8L" in data[:64]) is lossless
    if lossless:  # lossless output: exactly the blend
        expected = blend_arrays(np.asarray(photo), np.asarray(cover(Image.fromarray(MARK), *photo.size)), 0.3)
        assert np.abs(np.asarray(decode(data), np.int16) - expected).max() <= 1


def test_exif_orientation_is_applied_before_blending():
    photo = small_real_photo("Storm", 400)  # landscape as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    exif[0x010F] = "TestCam"
    source = encode(photo, "PNG", exif=exif.tobytes())
    marked = decode(blend_photo(source, lambda: MARK, 0.3).data)
    upright = photo.transpose(Image.Transpose.ROTATE_270)
    assert marked.size == upright.size == (photo.height, photo.width)
    assert marked.getexif().get(0x0112, 1) == 1  # pixels are upright now; a viewer must not rotate again
    assert marked.getexif().get(0x010F) == "TestCam"  # the rest of EXIF survives
    expected = blend_arrays(np.asarray(upright), np.asarray(cover(Image.fromarray(MARK), *upright.size)), 0.3)
    assert np.abs(np.asarray(marked, np.int16) - expected).max() <= 1


def test_marking_is_deterministic():
    source = encode(small_real_photo("Garden"), "JPEG", quality=90)
    first = blend_photo(source, lambda: MARK, 0.3)
    assert blend_photo(source, lambda: MARK, 0.3) == first


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """EXIF (little-endian TIFF) with IFD0 holding Make, and IFD1 holding a JPEG thumbnail."""
    make = b"TestCam\x00"
    ifd0_at, ifd1_at = 8, 8 + 2 + 12 + 4
    make_at = ifd1_at + 2 + 2 * 12 + 4
    thumb_at = make_at + len(make)
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), make_at) + struct.pack("<I", ifd1_at)
    ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, thumb_at) + \
        struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail)) + struct.pack("<I", 0)
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + ifd1 + make + thumbnail


def test_the_unmarked_exif_thumbnail_is_dropped_and_the_rest_kept():
    photo = small_real_photo("Garden", 640)
    thumbnail = encode(photo.resize((160, 100)), "JPEG", quality=80)
    source = encode(photo, "JPEG", quality=90, exif=exif_with_thumbnail(thumbnail))
    assert thumbnail in source and decode(source).getexif().get(0x010F) == "TestCam"
    marked = blend_photo(source, lambda: MARK, 0.3).data
    assert thumbnail not in marked  # an unmarked copy of the photo must not ride along
    assert decode(marked).getexif().get(0x010F) == "TestCam"


def test_16bit_greyscale_output_has_a_meaningful_perceptual_hash():
    from agent.blending import perceptual_hash
    grey = np.asarray(small_real_photo("Dune").convert("L"), np.uint16) * 257
    marked = decode(blend_photo(encode(Image.fromarray(grey), "PNG"), lambda: MARK, 0.3).data)
    eight_bit = Image.fromarray((np.asarray(marked).astype(np.uint32) >> 8).astype(np.uint8))
    assert perceptual_hash(marked) == perceptual_hash(eight_bit) != perceptual_hash(Image.new("L", (64, 64)))
