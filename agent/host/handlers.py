"""One handler per protocol action. Each takes the session and the request's params and returns the reply's
``data``, or raises ``ProtocolError`` with a code from native_host/PROTOCOL.md."""

from __future__ import annotations

import base64
import binascii
import sqlite3
import threading
from typing import Callable, Generator

from .. import __version__, db, ledger, settings, vault
from ..blending import BlendFailed, Unmarkable, blend_photo
from ..marking import Marker
from ..marks import registry
from ..marks.families import render
from ..marks.keys import external_seeds
from ..sitename import SiteError, site_of
from ..verify import runs, saved_models
from .framing import MAX_REPLY_FRAME_BYTES, MAX_REQUEST_BYTES

PROTOCOL_VERSION = 1
PREVIEW_MAX_BYTES = 2 * 1024 * 1024
WATCH_SECONDS = 0.5
"""How often verify.watch reads a run's status."""


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, **extra):
        super().__init__(message)
        self.code = code
        self.extra = extra

    def to_json(self) -> dict:
        return {"code": self.code, "message": str(self)} | self.extra


class Session:
    """The host's state: the unlocked vault (if any), a marker, and a database connection for the other actions."""

    def __init__(self):
        self._lock = threading.Lock()
        self._unlocking = threading.Lock()
        self._vault: vault.Vault | None = None
        self._marker: Marker | None = None
        self._conn: sqlite3.Connection | None = None
        self.stopping = threading.Event()
        """Set when the host stops serving: long waits (verify.watch) end early."""

    def db(self) -> sqlite3.Connection:
        """The session's own connection (the marker has another); callers hold ``self.lock`` while using it."""
        if self._conn is None:
            self._conn = db.connect()
        return self._conn

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def vault_state(self) -> dict:
        """Whether a vault exists, needs a passphrase, and is open in this host; ``problem`` if it is damaged."""
        state = {"exists": vault.exists(), "protected": False, "unlocked": self._vault is not None}
        if state["exists"]:
            try:
                state["protected"] = _guard_vault(vault.is_protected)
            except ProtocolError as exc:
                state["problem"] = exc.to_json()
        return state

    def unlock(self, passphrase: str | None) -> None:
        opened = _guard_vault(lambda: vault.unlock(passphrase))
        with self._lock:
            self._vault = opened
            self._marker = Marker(opened, db.connect())

    def marker(self) -> Marker:
        """The marker, opening a vault without passphrase on first use; raises no_vault or locked."""
        with self._unlocking:  # two first requests at once must not open the vault twice
            if self._marker is None:
                if not vault.exists():
                    raise ProtocolError("no_vault", "there is no vault yet: run `isotopes init`")
                if _guard_vault(vault.is_protected):
                    raise ProtocolError("locked", "the vault is locked: unlock it with its passphrase first")
                self.unlock(None)
            return self._marker


def _guard_vault(operation: Callable):
    try:
        return operation()
    except vault.WrongPassphrase as exc:
        raise ProtocolError("wrong_passphrase", str(exc)) from None
    except vault.VaultMissing as exc:
        raise ProtocolError("no_vault", str(exc)) from None
    except vault.VaultError as exc:
        raise ProtocolError("vault_damaged", str(exc)) from None


# --- parameter checking ------------------------------------------------------------------------------------

def _param(params: dict, name: str, kind: type | tuple, required: bool = True, default=None):
    if name not in params or params[name] is None:
        if required:
            raise ProtocolError("bad_request", f"missing parameter {name!r}")
        return default
    value = params[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ProtocolError("bad_request", f"parameter {name!r} must be {names}, not {type(value).__name__}")
    return value


MAX_TEXT = 1024


def _text(params: dict, name: str) -> str | None:
    """An optional short text parameter (a file name, an origin)."""
    value = _param(params, name, str, required=False)
    if value is not None and len(value) > MAX_TEXT:
        raise ProtocolError("bad_request", f"parameter {name!r} is longer than {MAX_TEXT} characters")
    return value


def _site(params: dict, required: bool = True) -> str | None:
    text = _param(params, "site", str, required=False) or _param(params, "url", str, required=False)
    if text is None:
        if required:
            raise ProtocolError("bad_request", "missing parameter 'site' (or 'url')")
        return None
    return _site_name(text)


def _site_name(text: str) -> str:
    try:
        return site_of(text)
    except SiteError as exc:
        raise ProtocolError("bad_request", f"bad site: {exc}") from None


def _image(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_request", "parameter 'image' is not valid base64") from None


# --- actions -----------------------------------------------------------------------------------------------

def hello(session: Session, params: dict) -> dict:
    return {"protocol": PROTOCOL_VERSION, "agent_version": __version__, "actions": sorted(ACTIONS),
            "capabilities": ["mark", "chunked-replies", "sites", "ledger", "verify", "models"],
            "vault": session.vault_state(),
            "limits": {"max_request_bytes": MAX_REQUEST_BYTES, "max_frame_bytes": MAX_REPLY_FRAME_BYTES}}


def unlock(session: Session, params: dict) -> dict:
    session.unlock(_param(params, "passphrase", str))
    return {"vault": session.vault_state()}


def mark(session: Session, params: dict) -> dict:
    encoded = _param(params, "image", str)
    site = _site(params)
    name = _text(params, "name")
    origin = _text(params, "origin")
    data = _image(encoded)
    marker = session.marker()
    with session.lock:
        site_settings = settings.get(session.db(), site)
    if not site_settings.enabled:
        raise ProtocolError("site_not_enabled", f"marking is not enabled for {site}")
    outcome = _guard_vault(lambda: marker.prepare(data, site, origin=origin, name=name))
    upload = marker.record(outcome)
    if outcome.problem is not None:
        raise ProtocolError(outcome.problem, upload.reason, ledger_id=upload.id, reason=upload.reason)
    reply = {key: getattr(upload, key) for key in ("status", "site", "mark_id", "epoch", "alpha", "sha256_in",
                                                   "sha256_out", "format", "width", "height", "reason")}
    reply["ledger_id"] = upload.id
    if upload.status == "marked":
        reply["image"] = base64.b64encode(outcome.data).decode("ascii")
    return reply


def marks_preview(session: Session, params: dict) -> dict:
    """The image blended at a chosen strength with a mark of the site's family, nothing recorded: for the user
    to see what a strength looks like. The mark is a fresh external one, never the user's: a preview at a
    high strength of a known image would otherwise hand the secret mark to whoever asked."""
    data = _image(_param(params, "image", str))
    site = _site(params)
    alpha = _param(params, "alpha", (int, float))
    if len(data) > PREVIEW_MAX_BYTES:
        raise ProtocolError("bad_request", f"a preview image must be under {PREVIEW_MAX_BYTES // 1024} KiB")
    try:
        settings.check_alpha(alpha)
        with session.lock:
            family = settings.get(session.db(), site).family
        seed = external_seeds(1)[0]
        marked = blend_photo(data, lambda: render(family, seed), float(alpha)).data
    except ValueError as exc:
        raise ProtocolError("bad_request", str(exc)) from None
    except (Unmarkable, BlendFailed) as exc:
        raise ProtocolError(exc.code, str(exc)) from None
    return {"image": base64.b64encode(marked).decode("ascii"), "alpha": alpha, "site": site}


_SETTABLE = {"enabled": bool, "alpha": (int, float), "fraction": (int, float), "rotation_seconds": int,
             "on_failure": str, "family": str}


def sites_get(session: Session, params: dict) -> dict:
    site = _site(params, required=False)
    with session.lock:
        if site is not None:
            return settings.get(session.db(), site).to_json()
        return {"sites": [entry.to_json() for entry in settings.all_sites(session.db())]}


def sites_set(session: Session, params: dict) -> dict:
    site = _site(params)
    changes = {}
    for name, kind in _SETTABLE.items():
        if name in params:
            nullable = name == "rotation_seconds"
            changes[name] = _param(params, name, kind, required=not nullable)
    try:
        with session.lock:
            return settings.update(session.db(), site, **changes).to_json()
    except ValueError as exc:
        raise ProtocolError("bad_request", str(exc)) from None


def marks_list(session: Session, params: dict) -> dict:
    site = _site(params, required=False)
    with session.lock:
        return {"marks": registry.summary(session.db(), site)}


def marks_rotate(session: Session, params: dict) -> dict:
    site = _site(params)
    marker = session.marker()
    with session.lock:
        family = settings.get(session.db(), site).family
        return registry.rotate(session.db(), marker.vault, site, family).to_json()


def ledger_query(session: Session, params: dict) -> dict:
    site = _site(params, required=False)
    limit = _param(params, "limit", int, required=False, default=100)
    if not 1 <= limit <= 1000:
        raise ProtocolError("bad_request", "parameter 'limit' must be between 1 and 1000")
    with session.lock:
        return {"uploads": [row.to_json() for row in ledger.uploads(session.db(), site=site, limit=limit)]}


def stats(session: Session, params: dict) -> dict:
    with session.lock:
        return {"sites": ledger.stats(session.db())}


# --- saved models (agent/verify/saved_models.py) -------------------------------------------------------------

def _saved(operation: Callable, *args):
    """saved_models.OPERATION(*args), its errors as protocol errors."""
    try:
        return operation(*args)
    except saved_models.UnknownModel as exc:
        raise ProtocolError("unknown_model", str(exc)) from None
    except saved_models.EntryProblem as exc:
        raise ProtocolError("bad_model", str(exc), field=exc.field) from None


def _model_id(params: dict, name: str, required: bool = True) -> int | None:
    value = _param(params, name, int, required=required)
    if value is not None and value < 1:
        raise ProtocolError("bad_request", f"parameter {name!r} must be a saved model's id (1 or more)")
    return value


_ENTRY_TEXTS = ("name", "kind", "location", "aux", "preset", "api_config", "own", "label")


def models_list(session: Session, params: dict) -> dict:
    with session.lock:
        return {"models": saved_models.listing(session.db()), "presets": saved_models.presets()}


def models_save(session: Session, params: dict) -> dict:
    unknown = sorted(set(params) - {*_ENTRY_TEXTS, "labels", "size", "id"})
    if unknown:
        raise ProtocolError("bad_request", f"unknown parameter(s) {', '.join(map(repr, unknown))}")
    texts = {name: _text(params, name) for name in _ENTRY_TEXTS}
    for name in ("name", "kind", "location", "aux"):
        if texts[name] is None:
            raise ProtocolError("bad_request", f"missing parameter {name!r}")
    labels = _param(params, "labels", list, required=False)
    if labels is not None and not all(isinstance(label, str) for label in labels):
        raise ProtocolError("bad_request", "parameter 'labels' must be a list of strings")
    entry = saved_models.Entry(**texts, labels=tuple(labels) if labels is not None else None,
                               size=_param(params, "size", int, required=False))
    replace = _model_id(params, "id", required=False)
    if replace is not None:
        with session.lock:
            _saved(saved_models.get, session.db(), replace)  # an unknown id fails before the long check
    entry, api_document = _saved(saved_models.described, entry)
    found = _saved(saved_models.check, entry, api_document)
    with session.lock:
        return _saved(saved_models.save, session.db(), entry, api_document, found, replace)


def models_remove(session: Session, params: dict) -> dict:
    model_id = _model_id(params, "id")
    with session.lock:
        _saved(saved_models.remove, session.db(), model_id)
    return {"removed": model_id}


# --- verification runs (agent/verify/runs.py) ----------------------------------------------------------------

_REQUEST_FIELDS = {"model": str, "aux": str, "api_config": str, "sites": list, "label": str, "own": str,
                   "level": (int, float), "images": int, "focus": (int, str), "panel_size": int, "sequential": bool,
                   "paper_v": bool}
_REQUIRED_FIELDS = ("model", "aux")
_SAVED_MODEL_FIELDS = ("sites", "level")
"""What verify.start may add to a saved model's request."""


def _verify_request(params: dict) -> dict:
    """The verification request (session.Request's JSON form) in verify.start's params, type-checked here; its
    values are checked by the run's worker, which owns session.Request."""
    allowed = _SAVED_MODEL_FIELDS if "model_id" in params else _REQUEST_FIELDS
    unknown = sorted(set(params) - set(allowed) - {"model_id"})
    if unknown:
        raise ProtocolError("bad_request", f"unknown parameter(s) {', '.join(map(repr, unknown))}"
                           + (" with 'model_id'" if "model_id" in params else ""))
    request = {}
    for name in allowed:
        value = _param(params, name, _REQUEST_FIELDS[name], required=name in _REQUIRED_FIELDS)
        if value is not None:
            request[name] = value
    if "sites" in request:
        if not all(isinstance(site, str) for site in request["sites"]):
            raise ProtocolError("bad_request", "parameter 'sites' must be a list of strings")
        request["sites"] = [_site_name(site) for site in request["sites"]]
    if isinstance(request.get("focus"), str):
        if request["focus"] != "all":
            raise ProtocolError("bad_request", "parameter 'focus' must be a number of images or 'all'")
        request["focus"] = None  # session.Request's "every aux image"
    return request


def _runs(operation: Callable, *args):
    """runs.OPERATION(*args), its errors as protocol errors."""
    try:
        return operation(*args)
    except runs.UnknownRun as exc:
        raise ProtocolError("unknown_run", str(exc)) from None
    except runs.NoResult as exc:
        raise ProtocolError("no_result", str(exc), state=exc.status["state"]) from None


def verify_start(session: Session, params: dict) -> dict:
    request, saved, api_document = _verify_request(params), None, None
    if "model_id" in params:
        with session.lock:
            base, api_document, saved = _saved(saved_models.run_request, session.db(), _model_id(params, "model_id"))
        request = base | request
    secret = session.marker().vault
    try:
        run = runs.start(request, secret, saved, api_document)
    except ValueError as exc:
        raise ProtocolError("bad_request", str(exc)) from None
    return {"run": run, "status": runs.status(run)}


def verify_watch(session: Session, params: dict) -> Generator[dict, None, dict]:
    """The run's status as a progress event each time it changes while the run is running; returns its final
    status (or the current one when the host stops serving)."""
    run = _param(params, "run", str)
    sent = None
    while (current := _runs(runs.status, run))["state"] == "running" and not session.stopping.is_set():
        if current != sent:
            yield current
            sent = current
        session.stopping.wait(WATCH_SECONDS)
    return current


def verify_status(session: Session, params: dict) -> dict:
    return _runs(runs.status, _param(params, "run", str))


def verify_cancel(session: Session, params: dict) -> dict:
    return _runs(runs.cancel, _param(params, "run", str))


def verify_result(session: Session, params: dict) -> dict:
    return _runs(runs.result, _param(params, "run", str))


def verify_report(session: Session, params: dict) -> dict:
    return {"html": _runs(runs.report, _param(params, "run", str))}


def verify_history(session: Session, params: dict) -> dict:
    limit = _param(params, "limit", int, required=False, default=20)
    if not 1 <= limit <= 100:
        raise ProtocolError("bad_request", "parameter 'limit' must be between 1 and 100")
    return {"runs": runs.history(limit, _model_id(params, "model_id", required=False))}


ACTIONS: dict[str, Callable[[Session, dict], dict | Generator[dict, None, dict]]] = {
    "hello": hello, "unlock": unlock, "mark": mark, "sites.get": sites_get, "sites.set": sites_set,
    "marks.list": marks_list, "marks.rotate": marks_rotate, "marks.preview": marks_preview,
    "ledger.query": ledger_query, "stats": stats, "models.list": models_list, "models.save": models_save,
    "models.remove": models_remove, "verify.start": verify_start, "verify.watch": verify_watch,
    "verify.status": verify_status, "verify.cancel": verify_cancel, "verify.result": verify_result,
    "verify.report": verify_report, "verify.history": verify_history,
}
"""A handler returns the reply's data; a streaming one (a generator) yields progress events' data first."""
