"""Saved models through the native host (native_host/PROTOCOL.md, "Saved models"): models.save checks each
entry against the real thing (a real ONNX and TorchScript model, a real model API on a real socket, real
folders of photos) and says which field is wrong; verify.start runs a saved model with one parameter."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytest.importorskip("torch", reason="scripts/test installs torch")
pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent import db  # noqa: E402
from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.verify.models import load_model  # noqa: E402

from host_client import HostProcess  # noqa: E402
from model_api import ServedModel, serve_model  # noqa: E402
from test_host_verify import aux, mark_a_photo, replies, send  # noqa: E402,F401 (aux: a fixture)


@pytest.fixture(scope="module")
def api(fashion_model):
    """The session's Fashion-MNIST model behind a real model API answering in the scores-vector shape."""
    _, folder = fashion_model
    with ServedModel(serve_model.build_app(load_model(f"onnx:{folder / 'model.onnx'}"))) as server:
        yield server


@pytest.fixture
def host(initialised):
    process = HostProcess()
    yield process
    process.close()


def save(host: HostProcess, **params) -> dict:
    return host.request("models.save", params, "save")


def http_entry(api, aux_folder, **changes) -> dict:
    labels = list(fashion_mnist("test").classes)
    return {"name": "Fashion API", "kind": "http", "location": api.url, "preset": "scores-vector",
            "labels": labels, "size": 28, "aux": aux_folder} | changes


def test_a_model_api_with_a_preset_is_checked_saved_listed_and_removed(host, api, aux):
    before = api.health()["requests"]
    reply = save(host, **http_entry(api, aux, own=aux, label="Shirt"))
    assert reply["ok"], reply
    saved = reply["data"]
    assert api.health()["requests"] == before + 1  # the check asked the API once
    assert saved["kind"] == "http" and saved["preset"] == "scores-vector" and saved["label"] == "Shirt"
    assert saved["output"] == "probabilities" and saved["size"] == [28, 28] and len(saved["labels"]) == 10
    assert saved["aux_images"] == 400 and saved["own_images"] == 400
    listed = host.request("models.list")["data"]
    assert listed["models"] == [saved]
    assert {"scores-vector", "label-score-list", "label-list"} == {p["name"] for p in listed["presets"]}
    assert all(p["description"] for p in listed["presets"])
    assert host.request("models.remove", {"id": saved["id"]})["data"] == {"removed": saved["id"]}
    assert host.request("models.list")["data"]["models"] == []
    gone = host.request("models.remove", {"id": saved["id"]})
    assert gone["error"]["code"] == "unknown_model"


def test_local_onnx_and_torchscript_files_are_checked(host, fashion_model, aux):
    _, folder = fashion_model
    for kind, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        reply = save(host, name=kind, kind=kind, location=str(folder / name), aux=aux)
        assert reply["ok"], reply
        assert reply["data"]["labels"][6] == "Shirt" and reply["data"]["label"] == "auto"


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"location": "ftp://example.com/model"}, "location", "not an http:// or https:// address"),
    ({"labels": ["a", "b", "a"]}, "labels", "listed twice: a"),
    ({"labels": []}, "labels", "list the model's labels"),
    ({"size": 4}, "size", "8 to 1024 pixels"),
    ({"preset": "no-such-preset"}, "preset", "must be one of"),
    ({"aux": "relative/folder"}, "aux", "not a full path"),
    ({"aux": "/nonexistent/aux"}, "aux", "is not a folder"),
    ({"label": "Spaceship"}, "label", "no label 'Spaceship'"),
    ({"labels": ["only", "three", "labels"]}, "preset", "3 labels"),
    ({"name": "  "}, "name", "give the model a name"),
], ids=["scheme", "duplicate-label", "no-labels", "size", "preset", "relative-aux", "missing-aux", "label",
        "label-count", "name"])
def test_a_bad_entry_names_the_field_at_fault_and_saves_nothing(host, api, aux, changes, field, words):
    reply = save(host, **http_entry(api, aux) | changes)
    assert not reply["ok"] and reply["error"]["code"] == "bad_model", reply
    assert reply["error"]["field"] == field and words in reply["error"]["message"]
    assert host.request("models.list")["data"]["models"] == []


def test_an_api_that_is_down_or_answers_in_another_shape_is_refused_at_save(host, fashion_model, aux, tmp_path):
    _, folder = fashion_model
    model = load_model(f"onnx:{folder / 'model.onnx'}")
    with ServedModel(serve_model.build_app(model, "top-k")) as top_k:
        wrong_shape = save(host, **http_entry(top_k, aux))  # a top-K answer where the preset wants a vector
        url = top_k.url
    assert wrong_shape["error"]["field"] == "preset", wrong_shape
    assert "response.path 'probabilities' is not in the answer" in wrong_shape["error"]["message"]
    down = save(host, **http_entry(top_k, aux) | {"location": url})  # the server is gone now
    assert down["error"]["field"] == "location" and "connection failed" in down["error"]["message"], down
    broken_config = tmp_path / "api.json"
    broken_config.write_text('{"preset": "scores-vector", "labels": ["a"], "input": {"size": [28]}}')
    for config, words in ((broken_config, "input.size"), (tmp_path / "missing.toml", "cannot be read")):
        reply = save(host, name="custom", kind="http", location=url, api_config=str(config), aux=aux)
        assert reply["error"]["field"] == "api_config" and words in reply["error"]["message"], reply
    assert host.request("models.list")["data"]["models"] == []


def test_a_file_that_is_no_model_is_refused_and_the_host_keeps_serving(host, aux, tmp_path):
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"\x08\x07" + b"not a protobuf at all" * 50)
    reply = save(host, name="junk", kind="onnx", location=str(junk), aux=aux)
    assert reply["error"]["code"] == "bad_model" and reply["error"]["field"] == "location", reply
    assert "cannot be loaded" in reply["error"]["message"] or "sidecar" in reply["error"]["message"]
    missing = save(host, name="junk", kind="torchscript", location=str(tmp_path / "none.pt"), aux=aux)
    assert missing["error"]["field"] == "location" and "there is no file" in missing["error"]["message"]
    assert host.request("hello")["ok"]


def test_saving_again_replaces_a_model_and_names_stay_unique(host, api, aux):
    first = save(host, **http_entry(api, aux))["data"]
    second = save(host, **http_entry(api, aux, name="Other"))["data"]
    clash = save(host, **http_entry(api, aux, name="Fashion API", id=second["id"]))
    assert clash["error"]["field"] == "name" and "another saved model" in clash["error"]["message"]
    renamed = save(host, **http_entry(api, aux, name="Renamed", label="Trouser", id=first["id"]))["data"]
    assert renamed["id"] == first["id"] and renamed["added"] == first["added"] and renamed["label"] == "Trouser"
    assert [m["name"] for m in host.request("models.list")["data"]["models"]] == ["Renamed", "Other"]
    assert save(host, **http_entry(api, aux, name="X", id=999))["error"]["code"] == "unknown_model"


def test_a_saved_model_runs_with_one_parameter_and_its_history_names_it(host, api, aux):
    mark_a_photo(host)
    saved = save(host, **http_entry(api, aux, label="Shirt"))["data"]
    started = host.request("verify.start", {"model_id": saved["id"]}, "start")
    assert started["ok"], started
    status = started["data"]["status"]
    assert status["model_id"] == saved["id"] and status["model_name"] == "Fashion API"
    assert status["model"] == api.url
    send(host, "w", "verify.watch", {"run": started["data"]["run"]})
    _, final = replies(host, "w")
    assert final["w"]["data"]["state"] == "done", final
    result = host.request("verify.result", {"run": started["data"]["run"]})["data"]
    assert result["request"]["label"] == "Shirt" and result["results"][0]["site"] == "example.com"
    history = host.request("verify.history", {"model_id": saved["id"]})["data"]["runs"]
    assert [run["run"] for run in history] == [started["data"]["run"]]
    assert history[0]["model_name"] == "Fashion API" and history[0]["sentence"]
    assert host.request("verify.history", {"model_id": saved["id"] + 1})["data"]["runs"] == []
    refused = host.request("verify.start", {"model_id": saved["id"], "model": "onnx:/x"})
    assert refused["error"]["code"] == "bad_request" and "'model'" in refused["error"]["message"]
    assert host.request("verify.start", {"model_id": 999})["error"]["code"] == "unknown_model"


def test_a_run_uses_the_config_that_was_checked_even_if_the_file_changes(host, api, aux, tmp_path):
    mark_a_photo(host)
    config = tmp_path / "api.toml"
    labels = ", ".join(json.dumps(label) for label in fashion_mnist("test").classes)
    config.write_text(f'preset = "scores-vector"\nlabels = [{labels}]\n[input]\nsize = [28, 28]\n')
    saved = save(host, name="From a file", kind="http", location=api.url, api_config=str(config), aux=aux,
                 label="Shirt")["data"]
    assert saved["api_config"] == str(config) and saved["preset"] is None
    config.write_text("this is no longer TOML")
    started = host.request("verify.start", {"model_id": saved["id"]}, "start")["data"]
    send(host, "w", "verify.watch", {"run": started["run"]})
    _, final = replies(host, "w")
    assert final["w"]["data"]["state"] == "done", final


def test_a_version_1_database_gains_the_saved_models_table_and_keeps_its_rows(tmp_path):
    path = tmp_path / "isotopes.db"
    old = sqlite3.connect(path)
    old.executescript(db._SCHEMA + "PRAGMA user_version = 1;")
    old.execute("INSERT INTO sites (site, enabled, updated) VALUES ('example.com', 1, 'then')")
    old.commit()
    old.close()
    conn = db.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION == 2
    assert [tuple(row) for row in conn.execute("SELECT site, enabled FROM sites")] == [("example.com", 1)]
    assert conn.execute("SELECT COUNT(*) FROM saved_models").fetchone()[0] == 0
