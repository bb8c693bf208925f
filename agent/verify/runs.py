"""Verification runs that belong to the agent, not to whoever asked for them.

A run is a folder ``<data dir>/runs/RUN_ID`` (``request.json``, ``api.json`` for a saved model API,
``status.json``, ``result.json``, ``report.html``, ``worker.log``) and a detached worker process
(``python -m agent.verify.runs RUN_ID FD``) in a session of its own.
A browser kills the native host when its port closes; the run goes on, and any later host reads how it went.

The worker gets the vault's secret through its stdin pipe (never its command line, environment or disk). It checks
the request before the run counts as started and answers on the pipe FD, so a request that cannot run is an error
of ``start``, not a failed run. torch and onnxruntime load in the worker only: the host stays small.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from .. import db, paths
from ..vault import Vault

RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
"""UTC start time, then random: ids sort by age."""
STATUS_SECONDS = 0.5
"""The worker rewrites status.json at most this often while it runs (and once more when it ends)."""
HISTORY_FIELDS = ("run", "started", "finished", "model", "model_id", "model_name", "state", "decision", "sentence",
                  "error")
_NO_RESULT = {"running": "it is still running", "cancelled": "it was cancelled", "failed": "it failed"}


class UnknownRun(LookupError):
    """No run of that id, or not a run id at all."""


class NoResult(Exception):
    """The run has no result (yet): it is running, was cancelled or failed; ``status`` says which."""

    def __init__(self, status: dict):
        error = status.get("error")
        super().__init__(f"run {status['run']} has no result: {_NO_RESULT[status['state']]}"
                         + (f": {error['message']}" if error else ""))
        self.status = status


def runs_dir() -> Path:
    path = paths.data_dir() / "runs"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _folder(run_id: str) -> Path:
    """The folder of an existing run; raises UnknownRun for anything else (a malformed id never touches the disk)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise UnknownRun(f"{str(run_id)[:80]!r} is not a verification run id")
    folder = runs_dir() / run_id
    if not (folder / "status.json").is_file():
        raise UnknownRun(f"there is no verification run {run_id}")
    return folder


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part."""
    staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    staged.write_text(text)
    os.replace(staged, path)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process holds the pid now; ours cannot be told apart from it
        return True
    return True


# --- the host's side ---------------------------------------------------------------------------------------

def start(request: dict, vault: Vault, saved: dict | None = None, api_document: dict | None = None) -> str:
    """Start a run of `request` (the JSON form of session.Request) in a new detached worker; returns its id once
    the worker has accepted the request. For a saved model (saved_models.run_request), `saved` is the model
    and `api_document` the API config it was checked with, kept in the run's folder. Raises ValueError, saying
    why, for a request that cannot run."""
    if not Path(request["aux"]).is_dir():
        raise ValueError(f"the aux folder {request['aux']!r} does not exist")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    folder = runs_dir() / run_id
    folder.mkdir(mode=0o700)
    if api_document is not None:
        _write_atomically(folder / "api.json", json.dumps(api_document, indent=1))
        request = request | {"api_config": str(folder / "api.json")}
    _write_atomically(folder / "request.json", json.dumps(request, indent=1))
    answer_read, answer_write = os.pipe()
    with open(folder / "worker.log", "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "agent.verify.runs", run_id, str(answer_write)],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, pass_fds=(answer_write,))
    os.close(answer_write)
    threading.Thread(target=worker.wait, daemon=True).start()  # reaped, a finished worker never looks alive
    handoff = {"secret": base64.b64encode(vault.secret).decode(), "protected": vault.protected,
               "created": vault.created, "model_id": saved and saved["id"], "model_name": saved and saved["name"]}
    try:
        worker.stdin.write(json.dumps(handoff).encode())
        worker.stdin.close()
    except BrokenPipeError:
        pass  # it died already: the empty answer below says so
    with os.fdopen(answer_read) as answers:
        answer = answers.readline()
    if not answer:
        raise RuntimeError(f"the verification worker stopped before the run started: see {folder / 'worker.log'}")
    refused = json.loads(answer).get("error")
    if refused is not None:
        worker.wait()
        shutil.rmtree(folder)
        raise ValueError(refused)
    return run_id


def _stored(run_id: str) -> dict:
    """status.json as the worker wrote it; a running run whose worker is gone reads as failed."""
    path = _folder(run_id) / "status.json"
    stored = _read_json(path)
    if stored["state"] == "running" and not _alive(stored["pid"]):
        stored = _read_json(path)  # it may have written its end just before exiting
        if stored["state"] == "running":
            stored |= {"state": "failed", "error": {"code": "verify_failed",
                                                    "message": "the verification worker stopped unexpectedly"}}
    return stored


def status(run_id: str) -> dict:
    """``run``, ``state`` (running, done, failed or cancelled), ``started``, ``finished``, ``model``, ``model_id``
    and ``model_name`` (a saved model's; else null), ``progress`` (the last progress event and ``eta_seconds``),
    ``error`` when failed, ``decision`` and ``sentence`` when done."""
    return {key: value for key, value in _stored(run_id).items() if key != "pid"}


def cancel(run_id: str) -> dict:
    """Ask a running run to stop (its worker stops before its next model call); returns its status."""
    stored = _stored(run_id)
    if stored["state"] == "running":
        try:
            os.kill(stored["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass  # it just ended
    return status(run_id)


def _finished_file(run_id: str, name: str) -> str:
    current = status(run_id)
    if current["state"] != "done":
        raise NoResult(current)
    return (_folder(run_id) / name).read_text()


def result(run_id: str) -> dict:
    """The report document of a finished run (session.run's); raises NoResult for any other run."""
    return json.loads(_finished_file(run_id, "result.json"))


def report(run_id: str) -> str:
    """The self-contained HTML report of a finished run; raises NoResult for any other run."""
    return _finished_file(run_id, "report.html")


def history(limit: int = 20, model_id: int | None = None) -> list[dict]:
    """The latest `limit` runs (of saved model `model_id` only, when given), newest first: run, started,
    finished, model, model_id, model_name, state, decision, sentence, error."""
    ids = sorted((folder.name for folder in runs_dir().iterdir()
                  if RUN_ID.fullmatch(folder.name) and (folder / "status.json").is_file()), reverse=True)
    chosen = []
    for current in map(status, ids):
        if len(chosen) == limit:
            break
        if model_id is None or current.get("model_id") == model_id:
            chosen.append({key: current.get(key) for key in HISTORY_FIELDS})
    return chosen


# --- the worker --------------------------------------------------------------------------------------------

class _StatusFile:
    """The worker's status.json: the run's state and its last progress event with an estimate of the time left."""

    def __init__(self, folder: Path, run_id: str, model: str, model_id: int | None, model_name: str | None):
        self.path = folder / "status.json"
        self.began = self.written = time.monotonic()
        self.status = {"run": run_id, "state": "running", "started": db.now(), "finished": None, "model": model,
                       "model_id": model_id, "model_name": model_name, "pid": os.getpid(), "progress": None}
        _write_atomically(self.path, json.dumps(self.status))

    def progress(self, event: dict) -> None:
        now = time.monotonic()
        done, total = event["queries"], event["queries_planned"]  # finer than images: a batch is many queries
        eta = round((now - self.began) * (total - done) / done, 1) if done else None
        self.status["progress"] = event | {"eta_seconds": eta}
        if now - self.written >= STATUS_SECONDS:
            self.written = now
            _write_atomically(self.path, json.dumps(self.status))

    def end(self, state: str, **fields) -> None:
        self.status |= {"state": state, "finished": db.now(), **fields}
        _write_atomically(self.path, json.dumps(self.status))


def _work(run_id: str, answer_fd: int) -> int:
    """The worker: read the secret, check the request and answer `start`, run, write the result and report."""
    cancel_run = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel_run.set())  # the engine stops before its next model call
    handoff = json.loads(sys.stdin.buffer.read())
    vault = Vault(base64.b64decode(handoff["secret"]), handoff["protected"], handoff["created"])
    from . import engine, report as reports, session  # torch and onnxruntime load here, in the worker only

    folder = runs_dir() / run_id
    with os.fdopen(answer_fd, "w") as answer:
        try:
            request = session.Request.from_json(_read_json(folder / "request.json"))
            request.check()
        except ValueError as exc:
            answer.write(json.dumps({"error": str(exc)}) + "\n")
            return 2
        status_file = _StatusFile(folder, run_id, request.model, handoff["model_id"], handoff["model_name"])
        answer.write(json.dumps({"run": run_id}) + "\n")
    try:
        document = session.run(request, vault, progress=status_file.progress, cancel=cancel_run)
    except engine.Cancelled:
        status_file.end("cancelled")
        return 0
    except (ValueError, OSError) as exc:  # a model, folder or request that cannot be verified: the message says why
        status_file.end("failed", error={"code": "verify_failed", "message": str(exc)})
        return 1
    except Exception:
        traceback.print_exc()
        bug = f"the verification failed on a bug: details are in {folder / 'worker.log'}"
        status_file.end("failed", error={"code": "internal_error", "message": bug})
        return 1
    _write_atomically(folder / "result.json", json.dumps(document, indent=1))
    _write_atomically(folder / "report.html", reports.render_html(document))
    status_file.end("done", decision=document["decision"], sentence=reports.summary_sentence(document))
    return 0


if __name__ == "__main__":
    sys.exit(_work(sys.argv[1], int(sys.argv[2])))
