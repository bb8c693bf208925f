"""Talk to a real `isotopes host` subprocess the way a browser does: raw frames on its stdin and stdout."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

from agent.host.callers import chromium_origin

FRAME_LIMIT = 1024 * 1024


class HostProcess:
    def __init__(self, caller: list[str] | None = None, env: dict | None = None):
        """Start the host as Chromium would for the Isotopes extension, or with the given caller arguments."""
        args = [chromium_origin()] if caller is None else caller
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "host", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        self._parts: dict = {}

    def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, request: dict) -> None:
        payload = json.dumps(request).encode()
        self.send_raw(struct.pack("=I", len(payload)) + payload)

    def request(self, action: str, params: dict | None = None, request_id="r1") -> dict:
        self.send({"id": request_id, "version": 1, "action": action, **({"params": params} if params else {})})
        return self.receive()

    def read_frame(self) -> dict | None:
        prefix = self.proc.stdout.read(4)
        if len(prefix) < 4:
            return None
        (length,) = struct.unpack("=I", prefix)
        assert length <= FRAME_LIMIT, f"a {length}-byte frame: the browser would drop the port"
        return json.loads(self.proc.stdout.read(length))

    def receive(self) -> dict | None:
        """The next complete reply, reassembling chunked ones (chunks of several replies may interleave)."""
        while True:
            frame = self.read_frame()
            if frame is None or "chunk" not in frame:
                return frame
            parts = self._parts.setdefault(frame["id"], {})
            parts[frame["chunk"]] = frame["part"]
            if len(parts) == frame["chunks"]:
                del self._parts[frame["id"]]
                return json.loads("".join(parts[i] for i in range(frame["chunks"])))

    def close(self, timeout: float = 60) -> int:
        """Close stdin (the extension disconnects) and wait; keeps what was left on stdout and stderr."""
        if self.proc.returncode is None:
            self.stdout_rest, stderr = self.proc.communicate(timeout=timeout)
            self.stderr_text = stderr.decode(errors="replace")
        return self.proc.returncode
