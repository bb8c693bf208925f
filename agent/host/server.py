"""The host's message loop: read frames, check them, run each request on a worker thread, reply by id.

Only frames ever reach the real stdout: file descriptor 1 is pointed at stderr at start-up, so a stray print
from any library lands in the browser's error log instead of corrupting the stream.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from .. import paths
from . import callers
from .framing import FrameTooLarge, FrameWriter, StreamClosed, read_frame
from .handlers import ACTIONS, PROTOCOL_VERSION, ProtocolError, Session

log = logging.getLogger("isotopes.host")
EXIT_FORBIDDEN = 3
HEAVY_ACTIONS = {"mark", "marks.preview"}
"""Actions that decode and encode photos. They run on their own workers, so a queue of big photos never
delays a quick request such as hello or sites.get."""
HEAVY_WORKERS, LIGHT_WORKERS = 2, 2
MAX_HEAVY_IN_FLIGHT = 8
"""Photos queued or being marked at once; past this the reader waits, so memory stays bounded (each may be
up to 64 MiB) and the browser holds the rest."""
WAITING_ACTIONS = {"models.save", "verify.start"}
"""Actions that wait seconds to a minute on another process (a model check, a run's worker starting). They run
on their own workers, so the quick requests that uploads depend on (sites.get) never queue behind them."""
WAITING_WORKERS = 2
WATCH_ACTIONS = {"verify.watch"}
"""Actions that last as long as a verification run. Each holds a worker of its own, so watching never delays
another request."""
MAX_WATCHES = 16
"""Watches at once; more wait for one to end."""
MAX_ID_CHARS = 256


def _setup_logging() -> None:
    folder = paths.data_dir() / "logs"
    folder.mkdir(mode=0o700, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(folder / "host.log", maxBytes=1 << 20, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Binary stdin/stdout for frames; fd 1 then points at stderr for everything else."""
    if sys.platform == "win32":
        import msvcrt
        msvcrt.setmode(sys.stdin.fileno(), os.O_BINARY)
        msvcrt.setmode(sys.stdout.fileno(), os.O_BINARY)
    sys.stdout.flush()
    frames_out = os.fdopen(os.dup(1), "wb")  # buffered: every write() is written whole
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, frames_out


class Refused(Exception):
    """A request that cannot be served, with its id when the frame got far enough to have one."""

    def __init__(self, request_id, error: ProtocolError):
        super().__init__(str(error))
        self.request_id = request_id
        self.error = error


def parse_request(payload: bytes) -> tuple[object, str, dict]:
    """(id, action, params) of a frame; raises Refused."""
    try:
        return _parse(payload)
    except ProtocolError as error:
        raise Refused(None, error) from None


def _parse(payload: bytes) -> tuple[object, str, dict]:
    try:
        request = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("bad_frame", "the frame is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_frame", f"the frame is not valid JSON ({exc.msg} at {exc.pos})") from None
    except (ValueError, RecursionError) as exc:  # absurd numbers, absurd nesting
        raise ProtocolError("bad_frame", f"the frame's JSON cannot be read ({type(exc).__name__})") from None
    if not isinstance(request, dict):
        raise ProtocolError("bad_frame", f"the frame is JSON {type(request).__name__}, not an object")
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)) or \
            len(str(request_id)) > MAX_ID_CHARS:
        raise ProtocolError("bad_request", f"'id' must be a string or an integer of at most {MAX_ID_CHARS} "
                                           "characters")

    def failure(code: str, message: str) -> Refused:
        return Refused(request_id, ProtocolError(code, message))

    if request.get("version") != PROTOCOL_VERSION:
        raise failure("unsupported_version", f"protocol version {str(request.get('version'))[:20]!r} is not "
                                             f"supported; this agent speaks {PROTOCOL_VERSION}")
    action = request.get("action")
    if not isinstance(action, str):
        raise failure("bad_request", "'action' must be a string")
    if action not in ACTIONS:
        raise failure("unknown_action", f"unknown action {action[:100]!r}")
    params = request.get("params", {})
    if not isinstance(params, dict):
        raise failure("bad_request", "'params' must be an object")
    return request_id, action, params


class Host:
    def __init__(self, frames_in: BinaryIO, frames_out: BinaryIO):
        self.frames_in = frames_in
        self.writer = FrameWriter(frames_out)
        self.session = Session()
        self.heavy = ThreadPoolExecutor(max_workers=HEAVY_WORKERS, thread_name_prefix="isotopes-photo")
        self.light = ThreadPoolExecutor(max_workers=LIGHT_WORKERS, thread_name_prefix="isotopes-request")
        self.watches = ThreadPoolExecutor(max_workers=MAX_WATCHES, thread_name_prefix="isotopes-watch")
        self.waiting = ThreadPoolExecutor(max_workers=WAITING_WORKERS, thread_name_prefix="isotopes-waiting")
        self.heavy_slots = threading.BoundedSemaphore(MAX_HEAVY_IN_FLIGHT)

    def reply_error(self, request_id, error: ProtocolError) -> None:
        self._send({"id": request_id, "ok": False, "error": error.to_json()})

    def _send(self, message: dict) -> None:
        try:
            self.writer.send(message)
        except ValueError as exc:  # cannot be framed: say so in a reply that can
            log.error("reply to %r cannot be sent: %s", message.get("id"), exc)
            self._send({"id": message.get("id"), "ok": False,
                        "error": {"code": "internal_error", "message": "the reply was too large to send"}})
        except OSError as exc:
            log.warning("reply to %r not delivered: %s", message.get("id"), exc)

    def handle(self, request_id, action: str, params: dict) -> None:
        started = time.perf_counter()
        try:
            data = ACTIONS[action](self.session, params)
            if isinstance(data, Generator):
                data = self._stream(request_id, data)
            reply = {"id": request_id, "ok": True, "data": data}
            outcome = "ok"
        except ProtocolError as error:
            reply = {"id": request_id, "ok": False, "error": error.to_json()}
            outcome = error.code
        except Exception:
            log.exception("%s %r failed", action, request_id)
            reply = {"id": request_id, "ok": False,
                     "error": {"code": "internal_error", "message": f"the agent failed on {action}: this is a bug; "
                                                                   "details are in the host log"}}
            outcome = "internal_error"
        self._send(reply)
        log.info("%s %r -> %s in %.0f ms", action, request_id, outcome, (time.perf_counter() - started) * 1000)

    def _stream(self, request_id, events: Generator[dict, None, dict]) -> dict:
        """Send each event a streaming handler yields; what it returns is the reply's data."""
        while True:
            try:
                event = next(events)
            except StopIteration as end:
                return end.value
            self._send({"id": request_id, "event": "progress", "data": event})

    def next_request(self) -> tuple[object, str, dict] | None:
        """Read and check one frame; answers bad frames itself and returns None for them."""
        try:
            payload = read_frame(self.frames_in)
        except FrameTooLarge as exc:
            log.warning("%s", exc)
            self.reply_error(None, ProtocolError("too_large", str(exc)))
            return None
        try:
            return parse_request(payload)
        except Refused as refused:
            log.warning("refused a frame: %s", refused.error.code)
            self.reply_error(refused.request_id, refused.error)
            return None

    def dispatch(self, request_id, action: str, params: dict) -> None:
        if action in WATCH_ACTIONS:
            self.watches.submit(self.handle, request_id, action, params)
            return
        if action in WAITING_ACTIONS:
            self.waiting.submit(self.handle, request_id, action, params)
            return
        if action not in HEAVY_ACTIONS:
            self.light.submit(self.handle, request_id, action, params)
            return
        self.heavy_slots.acquire()
        future = self.heavy.submit(self.handle, request_id, action, params)
        future.add_done_callback(lambda _: self.heavy_slots.release())

    def serve(self) -> int:
        code = 0
        try:
            while True:
                request = self.next_request()
                if request is not None:
                    self.dispatch(*request)
        except StreamClosed as closed:
            if closed.clean:
                log.info("the extension disconnected")
            else:
                log.warning("input stream broken: %s", closed)
        except Exception:
            log.exception("the message loop failed")
            code = 1
        finally:
            # Nobody can receive replies any more: queued work is dropped, running work finishes, watches end.
            self.session.stopping.set()
            for pool in (self.heavy, self.light, self.waiting, self.watches):
                pool.shutdown(wait=True, cancel_futures=True)
        return code

    def refuse(self, caller: str | None) -> int:
        """Answer the first request of a caller that is not the Isotopes extension, then quit."""
        log.warning("refusing caller %r", caller)
        error = ProtocolError("forbidden", f"this agent only talks to the Isotopes extension, not {caller!r}")
        request_id = None
        try:
            request_id = parse_request(read_frame(self.frames_in))[0]
        except Refused as refused:
            request_id = refused.request_id
        except (StreamClosed, FrameTooLarge):
            pass
        self.reply_error(request_id, error)
        return EXIT_FORBIDDEN


def run(argv: list[str]) -> int:
    """`isotopes host`: serve the extension on stdin/stdout until it disconnects."""
    _setup_logging()
    frames_in, frames_out = _claim_stdio()
    caller, allowed = callers.identify(argv)
    host = Host(frames_in, frames_out)
    if not allowed:
        return host.refuse(caller)
    log.info("started for %s (pid %d)", caller, os.getpid())
    return host.serve()
