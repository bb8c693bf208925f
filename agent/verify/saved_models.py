"""The models a user saved to check with one click (the options page's Models section), each checked before
it is saved: the folders hold photos, the model loads and answers one query in the expected shape.

The check loads the model runtime (onnxruntime, torch, aiohttp) and queries the model, so it runs in a process
of its own (``python -m agent.verify.saved_models``, the entry as JSON on stdin, the finding on stdout) with a
time limit: a model file that crashes its runtime, or an API that hangs, cannot take the agent down with it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import db
from .api_config import preset_description, preset_names, read_document
from .preprocess import ModelConfigError

KINDS = ("http", "onnx", "torchscript")
CHECK_SECONDS = 60
"""The longest a check may take, model loading and one query included."""
MIN_AUX_IMAGES = 10
SIZE_RANGE = (8, 1024)
MAX_LABELS = 100_000
_CHECK_RETRIES, _CHECK_TIMEOUT = 1, 20.0
"""A check asks a model API with fewer retries and a shorter timeout than a run: a user waits for it."""


class EntryProblem(ValueError):
    """An entry that cannot be saved: `field` names the parameter at fault, the message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class UnknownModel(LookupError):
    """No saved model has that id."""


@dataclass(frozen=True)
class Entry:
    """What the user typed: the model, how to talk to it (model APIs), the folders, and the label."""

    name: str
    kind: str
    location: str
    aux: str
    preset: str | None = None
    labels: tuple[str, ...] | None = None
    size: int | None = None
    api_config: str | None = None
    own: str | None = None
    label: str = "auto"

    @property
    def spec(self) -> str:
        return spec_of(self.kind, self.location)


def spec_of(kind: str, location: str) -> str:
    """The model as load_model and `isotopes verify --model` name it."""
    return location if kind == "http" else f"{kind}:{location}"


def _full_path(text: str | None, field: str, what: str, required: bool = True) -> str | None:
    """A path the user typed, with ~ expanded; it must be absolute (the agent has no working folder of theirs)."""
    text = (text or "").strip()
    if not text:
        if required:
            raise EntryProblem(field, f"give {what}")
        return None
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise EntryProblem(field, f"{text!r} is not a full path (it should start with / or ~)")
    return str(path)


def described(entry: Entry) -> tuple[Entry, dict | None]:
    """`entry` with its text fields tidied, and the API config document of a model API, after checking what
    can be checked without loading anything; raises EntryProblem."""
    name = entry.name.strip()
    if not name:
        raise EntryProblem("name", "give the model a name")
    if entry.kind not in KINDS:
        raise EntryProblem("kind", f"the kind must be one of {', '.join(KINDS)}, not {entry.kind!r}")
    http = entry.kind == "http"
    if http:
        location = entry.location.strip()
        if not location.startswith(("http://", "https://")):
            raise EntryProblem("location", f"{location!r} is not an http:// or https:// address"
                               if location else "give the model API's address")
    else:
        location = _full_path(entry.location, "location", "the model file's path")
    tidy = Entry(name=name, kind=entry.kind, location=location,
                 aux=_full_path(entry.aux, "aux", "the folder of aux photos"),
                 own=_full_path(entry.own, "own", "", required=False),
                 label=(entry.label or "").strip() or "auto",
                 preset=entry.preset if http else None, labels=entry.labels if http else None,
                 size=entry.size if http else None,
                 api_config=_full_path(entry.api_config, "api_config", "", required=False) if http else None)
    return tidy, _api_document(tidy) if tidy.kind == "http" else None


def _api_document(entry: Entry) -> dict:
    """The API config of a model API: a preset with the labels and size, or the config file's document."""
    if (entry.preset is None) == (entry.api_config is None):
        raise EntryProblem("preset", "choose the API's answer format: a preset, or an API config file")
    if entry.api_config is not None:
        try:
            return read_document(Path(entry.api_config))
        except ModelConfigError as exc:
            raise EntryProblem("api_config", str(exc)) from None
    if entry.preset not in preset_names():
        raise EntryProblem("preset", f"the preset must be one of {', '.join(preset_names())}, not {entry.preset!r}")
    labels = [label.strip() for label in entry.labels or ()]
    if not labels or not all(labels):
        raise EntryProblem("labels", "list the model's labels, one per line, in the order the API uses")
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        raise EntryProblem("labels", f"a label is listed twice: {', '.join(twice[:5])}")
    if len(labels) > MAX_LABELS:
        raise EntryProblem("labels", f"at most {MAX_LABELS} labels")
    if entry.size is None or not SIZE_RANGE[0] <= entry.size <= SIZE_RANGE[1]:
        raise EntryProblem("size", f"the input size must be {SIZE_RANGE[0]} to {SIZE_RANGE[1]} pixels")
    return {"preset": entry.preset, "labels": labels, "input": {"size": [entry.size, entry.size]}}


def presets() -> list[dict]:
    """The presets a model API may use, with what each one's answers look like."""
    return [{"name": name, "description": preset_description(name)} for name in preset_names()]


# --- the check, in a process of its own -------------------------------------------------------------------

def check(entry: Entry, api_document: dict | None) -> dict:
    """Check `entry` in a separate process within CHECK_SECONDS; returns what it found (labels, output, size,
    aux_images, own_images); raises EntryProblem."""
    task = json.dumps({"entry": asdict(entry), "api_document": api_document})
    try:
        finished = subprocess.run([sys.executable, "-m", "agent.verify.saved_models"], input=task.encode(),
                                  capture_output=True, timeout=CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        raise EntryProblem("location", f"the model did not answer the check within {CHECK_SECONDS} s") from None
    try:
        answer = json.loads(finished.stdout)
    except json.JSONDecodeError:
        last = (finished.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise EntryProblem("location", f"the model's runtime crashed while loading or running it "
                                       f"(exit status {finished.returncode}: {last[:300]})") from None
    if "problem" in answer:
        raise EntryProblem(answer["problem"]["field"], answer["problem"]["message"])
    return answer["found"]


def _count_images(folder: str, field: str, least: int) -> int:
    from .images import ImageFolderError, image_files, read_image

    path = Path(folder)
    try:
        files = image_files(path)
    except ImageFolderError:
        raise EntryProblem(field, f"{path} is not a folder") from None
    readable = sum(read_image(file, (8, 8)) is not None for file in files[:least])
    if readable < least:
        wanted = f"at least {least} readable photos" if least > 1 else "a readable photo"
        raise EntryProblem(field, f"{path} holds {len(files)} photo files, {readable} of them readable: "
                                  f"it needs {wanted}")
    return len(files)


def _probe(entry: Entry, api_document: dict | None, scratch: Path) -> dict:
    """The check itself (in the checking process): folders, model, one query, label."""
    from .api_answers import ModelUnreachable
    from .images import read_folder
    from .models import load_model
    from .session import label_index

    aux_images = _count_images(entry.aux, "aux", MIN_AUX_IMAGES)
    own_images = _count_images(entry.own, "own", 1) if entry.own else None
    config_field = "api_config" if entry.api_config else "preset"
    api_config = None
    if api_document is not None:
        api_config = scratch / "api.json"
        api_config.write_text(json.dumps(api_document | {"retries": _CHECK_RETRIES, "timeout": _CHECK_TIMEOUT}))
    elif not Path(entry.location).is_file():
        raise EntryProblem("location", f"there is no file {entry.location}")
    try:
        model = load_model(entry.spec, api_config)
    except ModelConfigError as exc:
        raise EntryProblem(config_field if api_config else "location", str(exc)) from None
    except Exception as exc:  # the runtime's own errors (a file that is no model): their message says why
        raise EntryProblem("location", f"{entry.location} cannot be loaded as a {entry.kind} model: {exc}") from None
    photo = read_folder(Path(entry.aux), model.size, limit=1)
    try:
        outputs = model.predict(photo)
    except ModelUnreachable as exc:
        raise EntryProblem("location", str(exc)) from None
    except ModelConfigError as exc:
        raise EntryProblem(config_field, str(exc)) from None
    except Exception as exc:
        raise EntryProblem("location", f"the model failed on a photo of the aux folder: {exc}") from None
    if outputs.shape != (1, len(model.labels)):
        raise EntryProblem(config_field if api_config else "location",
                           f"the model answered {outputs.shape[-1]} scores for {len(model.labels)} labels")
    if entry.label != "auto":
        try:
            label_index(model, entry.label)
        except ValueError as exc:
            raise EntryProblem("label", str(exc)) from None
    return {"labels": list(model.labels), "output": model.output, "size": list(model.size),
            "aux_images": aux_images, "own_images": own_images}


def _check_here() -> int:
    task = json.loads(sys.stdin.read())
    entry = Entry(**task["entry"] | {"labels": tuple(task["entry"]["labels"] or ()) or None})
    with tempfile.TemporaryDirectory() as scratch:
        try:
            answer = {"found": _probe(entry, task["api_document"], Path(scratch))}
        except EntryProblem as exc:
            answer = {"problem": {"field": exc.field, "message": str(exc)}}
    print(json.dumps(answer))
    return 0


# --- the stored list --------------------------------------------------------------------------------------

def _as_json(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "location": row["location"],
            "preset": row["preset"], "api_config": row["api_config"], "aux": row["aux"], "own": row["own"],
            "label": row["label"], **json.loads(row["found"]), "added": row["added"], "checked": row["checked"]}


def save(conn: sqlite3.Connection, entry: Entry, api_document: dict | None, found: dict,
         replace: int | None = None) -> dict:
    """Store a checked entry (as a new model, or in place of model `replace`); returns the saved model."""
    now = db.now()
    values = (entry.name, entry.kind, entry.location, entry.preset, entry.api_config,
              None if api_document is None else json.dumps(api_document), entry.aux, entry.own, entry.label,
              json.dumps(found))
    with db.transaction(conn):
        clash = conn.execute("SELECT id FROM saved_models WHERE name = ?", (entry.name,)).fetchone()
        if clash is not None and clash["id"] != replace:
            raise EntryProblem("name", f"another saved model is called {entry.name!r}")
        if replace is None:
            model_id = conn.execute(
                "INSERT INTO saved_models (name, kind, location, preset, api_config, api_document, aux, own, "
                "label, found, added, checked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, now, now)).lastrowid
        else:
            updated = conn.execute(
                "UPDATE saved_models SET name = ?, kind = ?, location = ?, preset = ?, api_config = ?, "
                "api_document = ?, aux = ?, own = ?, label = ?, found = ?, checked = ? WHERE id = ?",
                (*values, now, replace)).rowcount
            if not updated:
                raise UnknownModel(f"there is no saved model {replace}")
            model_id = replace
    return get(conn, model_id)


def _row(conn: sqlite3.Connection, model_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM saved_models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise UnknownModel(f"there is no saved model {model_id}")
    return row


def get(conn: sqlite3.Connection, model_id: int) -> dict:
    """One saved model; raises UnknownModel."""
    return _as_json(_row(conn, model_id))


def listing(conn: sqlite3.Connection) -> list[dict]:
    """Every saved model, oldest first."""
    return [_as_json(row) for row in conn.execute("SELECT * FROM saved_models ORDER BY id")]


def remove(conn: sqlite3.Connection, model_id: int) -> None:
    """Forget a saved model (its runs stay); raises UnknownModel."""
    with db.transaction(conn):
        if not conn.execute("DELETE FROM saved_models WHERE id = ?", (model_id,)).rowcount:
            raise UnknownModel(f"there is no saved model {model_id}")


def run_request(conn: sqlite3.Connection, model_id: int) -> tuple[dict, dict | None, dict]:
    """What verify.start runs for a saved model: the request (session.Request's JSON form, without the API
    config's path), the API config document it was checked with, and the saved model."""
    row = _row(conn, model_id)
    saved = _as_json(row)
    request = {"model": spec_of(row["kind"], row["location"]), "aux": row["aux"], "label": row["label"]}
    if row["own"]:
        request["own"] = row["own"]
    return request, json.loads(row["api_document"]) if row["api_document"] else None, saved


if __name__ == "__main__":
    sys.exit(_check_here())
