"""Verification through the native host (native_host/PROTOCOL.md, "Verification runs"): a real host process, a
real model trained here, real aux images, and runs that go on when the host that started them is gone."""

from __future__ import annotations

import base64
import html
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="scripts/test installs torch")
pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent import paths, vault  # noqa: E402
from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.lab.training import export_onnx, train  # noqa: E402

from conftest import encode, run_cli, small_real_photo  # noqa: E402
from host_client import HostProcess  # noqa: E402

SITE = "example.com"
PASSPHRASE = "a long and private passphrase"
QUICK = {"label": "Shirt", "images": 60, "panel_size": 9}
"""A run of a few seconds."""
LONG = {"label": "Shirt", "images": 400, "panel_size": 39, "sequential": False, "focus": "all"}
"""A run of about half a minute on two cores (every aux image blended with every mark): a few seconds a batch,
so it is still running when cancelled."""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """The spec of a small model trained on real Fashion-MNIST (it never saw any mark)."""
    data = fashion_mnist("train")
    subset = np.random.default_rng(3).choice(len(data), 6000, replace=False)
    run = train(data.take(subset), epochs=1, seed=2)
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    export_onnx(run, path)
    return f"onnx:{path}"


@pytest.fixture(scope="module")
def aux(tmp_path_factory) -> str:
    """400 Fashion-MNIST test images as PNG files: the aux folder."""
    folder = tmp_path_factory.mktemp("aux")
    for index, image in enumerate(fashion_mnist("test").images[:400]):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return str(folder)


def mark_a_photo(host: HostProcess) -> str:
    """Mark one upload for SITE, so its mark is one the verification tests; returns the mark's id."""
    assert host.request("sites.set", {"site": SITE, "enabled": True}, "enable")["ok"]
    photo = base64.b64encode(encode(small_real_photo("Wood", 320), "JPEG")).decode()
    reply = host.request("mark", {"image": photo, "site": SITE}, "mark")
    assert reply["data"]["status"] == "marked", reply
    return reply["data"]["mark_id"]


@pytest.fixture
def host(initialised):
    process = HostProcess()
    process.mark_id = mark_a_photo(process)
    yield process
    process.close()


def send(host: HostProcess, request_id: str, action: str, params: dict) -> None:
    host.send({"id": request_id, "version": 1, "action": action, "params": params})


def replies(host: HostProcess, *request_ids: str) -> tuple[dict, dict]:
    """Read until each of `request_ids` has its reply: (progress events by id, reply by id)."""
    events, final = {request_id: [] for request_id in request_ids}, {}
    while len(final) < len(request_ids):
        message = host.receive()
        assert message is not None, "the host closed its output"
        if "event" in message:
            assert message["event"] == "progress" and message["id"] not in final
            events[message["id"]].append(message["data"])
        else:
            final[message["id"]] = message
    return events, final


def watch(host: HostProcess, run: str) -> tuple[list[dict], dict]:
    """verify.watch to its end: (the progress events' data, the reply)."""
    send(host, "watch", "verify.watch", {"run": run})
    events, final = replies(host, "watch")
    return events["watch"], final["watch"]


def start(host: HostProcess, model: str, aux: str, **params) -> str:
    reply = host.request("verify.start", {"model": model, "aux": aux, **params}, "start")
    assert reply["ok"], reply
    assert reply["data"]["status"]["state"] == "running"
    return reply["data"]["run"]


def files_of(run: str) -> list[str]:
    return [path.read_text() for path in (paths.data_dir() / "runs" / run).iterdir()]


def shows(secret: bytes, text: str) -> bool:
    return secret.hex() in text or base64.b64encode(secret).decode() in text


def code(reply: dict) -> str:
    assert not reply["ok"] and reply["error"]["message"], reply
    return reply["error"]["code"]


def test_a_run_streams_its_progress_and_keeps_its_result(host, model, aux):
    assert "verify" in host.request("hello")["data"]["capabilities"]
    run = start(host, model, aux, **QUICK)
    events, reply = watch(host, run)
    assert events and all(event["run"] == run and event["state"] == "running" for event in events)
    final = reply["data"]
    assert final["state"] == "done" and final["decision"] in ("detected", "not detected") and final["finished"]
    assert final["progress"]["images_done"] > 0 and final["progress"]["eta_seconds"] is not None
    assert host.request("verify.status", {"run": run})["data"] == final

    document = host.request("verify.result", {"run": run})["data"]
    assert [result["mark_id"] for result in document["results"]] == [host.mark_id]
    assert document["decision"] == final["decision"]
    assert html.escape(final["sentence"]) in host.request("verify.report", {"run": run})["data"]["html"]

    assert (paths.data_dir() / "runs" / run).stat().st_mode & 0o777 == 0o700
    assert not any(shows(vault.unlock(None).secret, text) for text in files_of(run))


def test_cancel_stops_a_run_and_history_lists_runs_newest_first(host, model, aux):
    cancelled = start(host, model, aux, **LONG)
    send(host, "watch", "verify.watch", {"run": cancelled})
    assert host.receive()["event"] == "progress"
    send(host, "cancel", "verify.cancel", {"run": cancelled})
    _, final = replies(host, "watch", "cancel")
    assert final["cancel"]["data"]["run"] == cancelled
    assert final["watch"]["data"]["state"] == "cancelled" and "decision" not in final["watch"]["data"]
    reply = host.request("verify.result", {"run": cancelled})
    assert code(reply) == "no_result" and reply["error"]["state"] == "cancelled"

    done = start(host, model, aux, **QUICK)
    assert watch(host, done)[1]["data"]["state"] == "done"
    runs = host.request("verify.history")["data"]["runs"]
    assert [(entry["run"], entry["state"]) for entry in runs] == [(done, "done"), (cancelled, "cancelled")]
    assert runs[0]["sentence"] and runs[0]["model"] == model and runs[1]["decision"] is None
    assert host.request("verify.history", {"limit": 1})["data"]["runs"] == runs[:1]


def test_a_run_outlives_the_hosts_that_watch_it(host, model, aux):
    run = start(host, model, aux, label="Shirt", images=200, panel_size=19, sequential=False, focus="all")
    send(host, "watch", "verify.watch", {"run": run})
    assert host.receive()["event"] == "progress"
    host.proc.kill()  # what a browser does to a host whose port closed
    host.proc.wait()

    second = HostProcess()
    send(second, "watch", "verify.watch", {"run": run})
    assert second.receive()["data"]["state"] == "running"  # after the first host died
    assert second.close(timeout=5) == 0  # a watch in flight does not hold a disconnected host

    third = HostProcess()
    try:
        assert watch(third, run)[1]["data"]["state"] == "done"
        assert third.request("verify.result", {"run": run})["data"]["results"][0]["mark_id"] == host.mark_id
    finally:
        third.close()


def test_a_worker_that_dies_reads_as_failed(host, model, aux):
    run = start(host, model, aux, **LONG)
    status_file = paths.data_dir() / "runs" / run / "status.json"
    os.kill(json.loads(status_file.read_text())["pid"], signal.SIGKILL)
    reply = watch(host, run)[1]
    assert reply["data"]["state"] == "failed"
    assert reply["data"]["error"]["message"] == "the verification worker stopped unexpectedly"


def test_requests_that_cannot_run_are_refused_with_the_reason(host, model, aux, tmp_path):
    refused = {"no aux": ({"model": model}, "'aux'"),
               "missing aux folder": ({"model": model, "aux": str(tmp_path / "nowhere")}, "nowhere"),
               "level out of range": ({"model": model, "aux": aux, "level": 2}, "level"),
               "unknown parameter": ({"model": model, "aux": aux, "speed": "fast"}, "'speed'"),
               "images as text": ({"model": model, "aux": aux, "images": "many"}, "'images'"),
               "sites not strings": ({"model": model, "aux": aux, "sites": [3]}, "'sites'"),
               "focus as a word": ({"model": model, "aux": aux, "focus": "some"}, "'focus'"),
               "focus of no image": ({"model": model, "aux": aux, "focus": 0}, "focus")}
    for case, (params, words) in refused.items():
        reply = host.request("verify.start", params, case)
        assert code(reply) == "bad_request" and words in reply["error"]["message"], reply
    assert host.request("verify.history")["data"]["runs"] == []  # a refused request leaves no run behind

    for action in ("verify.status", "verify.watch", "verify.cancel", "verify.result", "verify.report"):
        for run in ("20990101-000000-abcdef", "../../vault", "20990101-000000-abcdef/../../vault", ""):
            assert code(host.request(action, {"run": run}, action)) == "unknown_run", (action, run)
        assert code(host.request(action, {"run": 7}, action)) == "bad_request"

    run = start(host, "tensorflow:/models/net.pb", aux, **QUICK)
    final = watch(host, run)[1]["data"]
    assert final["state"] == "failed" and final["error"]["code"] == "verify_failed"
    assert "unknown model 'tensorflow:/models/net.pb'" in final["error"]["message"]
    reply = host.request("verify.report", {"run": run})
    assert code(reply) == "no_result" and "unknown model" in reply["error"]["message"]


def test_a_protected_vault_hands_its_secret_to_the_worker(home, model, aux):
    run_cli("init", "--passphrase-env", "PW", env={"PW": PASSPHRASE})
    host = HostProcess()
    try:
        assert code(host.request("verify.start", {"model": model, "aux": aux, **QUICK})) == "locked"
        assert host.request("unlock", {"passphrase": PASSPHRASE})["ok"]
        mark_id = mark_a_photo(host)
        run = start(host, model, aux, **QUICK)
        assert watch(host, run)[1]["data"]["state"] == "done"
        assert host.request("verify.result", {"run": run})["data"]["results"][0]["mark_id"] == mark_id
    finally:
        host.close()
    secret = vault.unlock(PASSPHRASE).secret
    for text in files_of(run) + [(paths.data_dir() / "logs" / "host.log").read_text()]:
        assert PASSPHRASE not in text and not shows(secret, text)
