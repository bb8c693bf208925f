"""Frames and chunks in-process: every frame the host writes fits the browser's 1 MiB limit, whatever the reply."""

from __future__ import annotations

import io
import json
import struct

import pytest

from agent.host.framing import MAX_REPLY_FRAME_BYTES, FrameWriter


def frames_of(message: dict) -> list[dict]:
    buffer = io.BytesIO()
    FrameWriter(buffer).send(message)
    data, frames = buffer.getvalue(), []
    while data:
        (length,) = struct.unpack("=I", data[:4])
        assert length <= MAX_REPLY_FRAME_BYTES
        frames.append(json.loads(data[4:4 + length]))
        data = data[4 + length:]
    return frames


@pytest.mark.parametrize("filler", ["A", '"', "\\\\", "\u00e9\u4e2d", "\n"])
def test_replies_of_any_text_fit_in_frames_and_reassemble(filler):
    message = {"id": "r", "ok": True, "data": {"rows": [filler * 1000] * 3000}}
    frames = frames_of(message)
    assert len(frames) > 1 and [frame["chunk"] for frame in frames] == list(range(len(frames)))
    assert json.loads("".join(frame["part"] for frame in frames)) == message


def test_small_replies_are_one_frame():
    assert frames_of({"id": 1, "ok": True, "data": {}}) == [{"id": 1, "ok": True, "data": {}}]
