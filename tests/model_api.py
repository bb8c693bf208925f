"""A model API in this process: scripts/serve_model.py's app on a real socket, its event loop on a thread."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import serve_model  # noqa: E402


class ServedModel:
    """``with ServedModel(app) as server:`` serves `app` at ``server.url`` until the block ends, on `port` (0: any
    free one)."""

    def __init__(self, app, port: int = 0):
        self.app, self.port = app, port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServedModel:
        self.thread.start()
        started = serve_model.start(self.app, port=self.port)
        self.runner, self.url = asyncio.run_coroutine_threadsafe(started, self.loop).result(10)
        return self

    def __exit__(self, *_) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def health(self) -> dict:
        """The server's GET /health: request count, most requests in flight, injected faults by kind."""
        with urllib.request.urlopen(self.url.replace("/predict", "/health"), timeout=10) as response:
            return json.load(response)
