"""WebExtension native messaging frames: a 4-byte native-endian length, then UTF-8 JSON."""

from __future__ import annotations

import json
import struct
import threading
from typing import BinaryIO

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""The largest frame the extension may send (the browser's own limit)."""
MAX_REPLY_FRAME_BYTES = 1024 * 1024
"""The browser drops the port on a host -> extension frame larger than this."""
CHUNK_CHARS = 768 * 1024
"""Replies whose JSON is longer than this go out in chunks of at most this many characters of it."""
_ENVELOPE_ROOM = 4096
"""Bytes kept free in a chunk frame for its envelope (id, chunk numbers)."""

_LENGTH = struct.Struct("=I")


class StreamClosed(Exception):
    """The input ended; ``clean`` is False when it ended inside a frame."""

    def __init__(self, clean: bool, detail: str = ""):
        super().__init__(detail or "stream closed")
        self.clean = clean


class FrameTooLarge(Exception):
    def __init__(self, length: int):
        super().__init__(f"a frame of {length} bytes is over the {MAX_REQUEST_BYTES}-byte limit")
        self.length = length


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        piece = stream.read(count - len(data))
        if not piece:
            break
        data += piece
    return bytes(data)


def read_frame(stream: BinaryIO) -> bytes:
    """The next frame's payload. Raises StreamClosed at the end of input, FrameTooLarge (after discarding the
    frame's bytes, so the next frame can still be read) for an oversized one."""
    prefix = _read_exactly(stream, _LENGTH.size)
    if not prefix:
        raise StreamClosed(clean=True)
    if len(prefix) < _LENGTH.size:
        raise StreamClosed(clean=False, detail=f"truncated length prefix ({len(prefix)} of 4 bytes)")
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_REQUEST_BYTES:
        remaining = length
        while remaining:
            piece = stream.read(min(remaining, 1 << 20))
            if not piece:
                raise StreamClosed(clean=False, detail=f"stream closed inside an oversized frame of {length} bytes")
            remaining -= len(piece)
        raise FrameTooLarge(length)
    payload = _read_exactly(stream, length)
    if len(payload) < length:
        raise StreamClosed(clean=False, detail=f"stream closed after {len(payload)} of {length} declared bytes")
    return payload


def encode_frame(message: dict) -> bytes:
    payload = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode()
    return _LENGTH.pack(len(payload)) + payload


def _chunks(text: str) -> list[str]:
    """`text` cut into pieces that stay under the frame limit once JSON-escaped again inside a chunk frame:
    escaping doubles quotes and backslashes, so a piece full of them is cut shorter."""
    pieces, start = [], 0
    limit = MAX_REPLY_FRAME_BYTES - _ENVELOPE_ROOM
    while start < len(text):
        size = CHUNK_CHARS
        while len(json.dumps(text[start:start + size])) > limit:
            size //= 2
        pieces.append(text[start:start + size])
        start += size
    return pieces


class FrameWriter:
    """Writes replies to the extension from any thread, cutting long ones into chunks."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict) -> None:
        text = json.dumps(message, ensure_ascii=True, separators=(",", ":"))
        if len(text) <= CHUNK_CHARS:
            frames = [_LENGTH.pack(len(text)) + text.encode()]
        else:
            pieces = _chunks(text)
            frames = [encode_frame({"id": message.get("id"), "chunk": index, "chunks": len(pieces), "part": piece})
                      for index, piece in enumerate(pieces)]
        if any(len(frame) - _LENGTH.size > MAX_REPLY_FRAME_BYTES for frame in frames):
            raise ValueError("a reply frame would exceed the browser's 1 MiB limit")
        with self._lock:
            for frame in frames:
                self._stream.write(frame)
            self._stream.flush()
