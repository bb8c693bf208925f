"""The native host's protocol, spoken as raw frames to a real `isotopes host` process (native_host/PROTOCOL.md)."""

from __future__ import annotations

import base64
import sqlite3
import struct
import subprocess
import sys
import threading

import pytest

from agent import paths
from agent.host.callers import FIREFOX_EXTENSION_ID
from conftest import real_photo, run_cli
from host_client import HostProcess

PASSPHRASE = "a long and private passphrase"


def frame(payload: bytes) -> bytes:
    return struct.pack("=I", len(payload)) + payload


def log_text() -> str:
    return (paths.data_dir() / "logs" / "host.log").read_text()


@pytest.fixture
def host(initialised):
    process = HostProcess()
    yield process
    process.close()


def enable(host, site="photos.example"):
    assert host.request("sites.set", {"site": site, "enabled": True}, "enable")["ok"]


def test_hello(host):
    reply = host.request("hello", request_id=7)
    assert reply["id"] == 7 and reply["ok"]
    data = reply["data"]
    assert data["protocol"] == 1 and "mark" in data["actions"] and "chunked-replies" in data["capabilities"]
    assert data["vault"] == {"exists": True, "protected": False, "unlocked": False}
    assert data["limits"]["max_frame_bytes"] == 1024 * 1024


# Each case: raw bytes to send, the expected (id, error code) of the reply.
BAD_FRAMES = {
    "invalid utf-8": (frame(b'{"id": "\xff\xfe", "version": 1}'), None, "bad_frame"),
    "invalid json": (frame(b'{"id": 1, "version": 1,'), None, "bad_frame"),
    "json array": (frame(b'[1, 2, 3]'), None, "bad_frame"),
    "missing id": (frame(b'{"version": 1, "action": "hello"}'), None, "bad_request"),
    "boolean id": (frame(b'{"id": true, "version": 1, "action": "hello"}'), None, "bad_request"),
    "old version": (frame(b'{"id": "v", "version": 0, "action": "hello"}'), "v", "unsupported_version"),
    "missing action": (frame(b'{"id": "a", "version": 1}'), "a", "bad_request"),
    "unknown action": (frame(b'{"id": "u", "version": 1, "action": "launch"}'), "u", "unknown_action"),
    "params not an object": (frame(b'{"id": "p", "version": 1, "action": "stats", "params": []}'), "p",
                             "bad_request"),
    "mark without image": (frame(b'{"id": "m", "version": 1, "action": "mark", "params": {"site": "a.com"}}'), "m",
                           "bad_request"),
    "alpha of wrong type": (frame(b'{"id": "t", "version": 1, "action": "sites.set", '
                                  b'"params": {"site": "a.com", "alpha": "strong"}}'), "t", "bad_request"),
    "alpha out of range": (frame(b'{"id": "r", "version": 1, "action": "sites.set", '
                                 b'"params": {"site": "a.com", "alpha": 1.5}}'), "r", "bad_request"),
    "enabled as a string": (frame(b'{"id": "e", "version": 1, "action": "sites.set", '
                                  b'"params": {"site": "a.com", "enabled": "yes"}}'), "e", "bad_request"),
    "public suffix as site": (frame(b'{"id": "s", "version": 1, "action": "sites.get", '
                                    b'"params": {"site": "co.uk"}}'), "s", "bad_request"),
    "limit out of range": (frame(b'{"id": "l", "version": 1, "action": "ledger.query", '
                                 b'"params": {"limit": 0}}'), "l", "bad_request"),
    "absurdly nested": (frame(b"[" * 100_000), None, "bad_frame"),
    "absurd number": (frame(b'{"id": 1' + b"0" * 5000 + b', "version": 1, "action": "hello"}'), None, "bad_frame"),
    "huge id": (frame(b'{"id": "' + b"x" * 100_000 + b'", "version": 1, "action": "hello"}'), None,
                "bad_request"),
    "huge file name": (frame(b'{"id": "n", "version": 1, "action": "mark", "params": {"site": "a.com", '
                             b'"image": "AAAA", "name": "' + b'\\"' * 400_000 + b'"}}'), "n", "bad_request"),
    "unclosed ipv6 url": (frame(b'{"id": "v6", "version": 1, "action": "sites.get", '
                                b'"params": {"url": "http://[::1"}}'), "v6", "bad_request"),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_bad_frame_gets_its_error_and_the_host_keeps_serving(host, case):
    raw, request_id, code = BAD_FRAMES[case]
    host.send_raw(raw)
    reply = host.receive()
    assert (reply["id"], reply["ok"], reply["error"]["code"]) == (request_id, False, code)
    assert reply["error"]["message"]
    assert host.request("hello", request_id="after")["ok"]


def test_image_errors_are_recorded_and_coded(host):
    enable(host)
    cases = [("not base64", {"image": "this is not base64!"}, "bad_request"),
             ("text", {"image": base64.b64encode(b"just some text, not a photo").decode()}, "not_an_image"),
             ("truncated", {"image": base64.b64encode(real_photo("Garden").read_bytes()[:20000]).decode()},
              "image_damaged")]
    for request_id, params, code in cases:
        reply = host.request("mark", params | {"url": "https://photos.example/up"}, request_id)
        assert reply["error"]["code"] == code, reply
        if code != "bad_request":
            assert reply["error"]["ledger_id"] and reply["error"]["reason"]
    rows = host.request("ledger.query")["data"]["uploads"]
    assert [(row["status"], row["site"]) for row in rows] == [("failed", "photos.example"),
                                                              ("skipped", "photos.example")]


def test_mark_refuses_sites_not_enabled(host):
    image = base64.b64encode(real_photo("Aqua").read_bytes()).decode()
    reply = host.request("mark", {"image": image, "url": "https://www.elsewhere.example/post"})
    assert reply["error"]["code"] == "site_not_enabled" and "elsewhere.example" in reply["error"]["message"]
    assert host.request("ledger.query")["data"]["uploads"] == []


def test_oversized_frame_is_discarded_and_the_stream_stays_in_sync(host):
    declared = 64 * 1024 * 1024 + 1
    writer = threading.Thread(target=lambda: host.send_raw(struct.pack("=I", declared) + bytes(declared)))
    writer.start()
    reply = host.receive()
    writer.join()
    assert (reply["id"], reply["error"]["code"]) == (None, "too_large")
    assert host.request("hello", request_id="next")["id"] == "next"


@pytest.mark.parametrize("tail, logged", [(b"\x05\x00", "truncated length prefix"),
                                          (struct.pack("=I", 100) + b'{"id": 1', "stream closed after 8 of 100")])
def test_stream_broken_mid_message_exits_cleanly_with_a_log_line(initialised, tail, logged):
    process = HostProcess()
    assert process.request("hello")["ok"]
    process.send_raw(tail)
    assert process.close() == 0
    assert process.stdout_rest == b"" and "Traceback" not in process.stderr_text
    assert logged in log_text()


def test_locked_vault(home):
    run_cli("init", "--passphrase-env", "PW", env={"PW": PASSPHRASE})
    host = HostProcess()
    try:
        assert host.request("hello")["data"]["vault"] == {"exists": True, "protected": True, "unlocked": False}
        enable(host)
        image = base64.b64encode(real_photo("Aqua").read_bytes()).decode()
        params = {"image": image, "site": "photos.example"}
        assert host.request("mark", params)["error"]["code"] == "locked"
        assert host.request("unlock", {"passphrase": "guess"})["error"]["code"] == "wrong_passphrase"
        host.send_raw(frame(b'{"id": "s", "version": 1, "action": "unlock", "params": {"passphrase": "\\ud800"}}'))
        assert host.receive()["error"]["code"] == "wrong_passphrase"  # not an internal error, no traceback
        assert host.request("unlock", {"passphrase": PASSPHRASE})["data"]["vault"]["unlocked"] is True
        assert host.request("mark", params)["data"]["status"] == "marked"
    finally:
        host.close()
    assert PASSPHRASE not in log_text() and "Traceback" not in log_text()


def test_no_vault(home):
    host = HostProcess()
    try:
        assert host.request("hello")["data"]["vault"]["exists"] is False
        assert host.request("marks.rotate", {"site": "a.com"})["error"]["code"] == "no_vault"
    finally:
        host.close()


def test_queued_work_is_dropped_when_the_extension_disconnects(host):
    enable(host)
    photo = base64.b64encode(open("/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg", "rb").read())
    for index in range(6):
        host.send({"id": index, "version": 1, "action": "mark",
                   "params": {"image": photo.decode(), "site": "photos.example"}})
    assert host.close() == 0
    rows = sqlite3.connect(paths.database_file()).execute("SELECT COUNT(*) FROM uploads").fetchone()[0]
    assert rows < 6  # the two running marks may finish; the queued ones are not processed for nobody


def test_a_forbidden_caller_gets_exactly_one_reply_even_for_a_bad_frame(initialised):
    host = HostProcess(["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"])
    host.send_raw(frame(b"{not json"))
    reply = host.receive()
    assert (reply["id"], reply["error"]["code"]) == (None, "forbidden")
    assert host.close() == 3 and host.stdout_rest == b""


@pytest.mark.parametrize("caller", [["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"],
                                    ["/home/u/.mozilla/native-messaging-hosts/x.json", "evil@example.com"], []])
def test_other_callers_are_refused(initialised, caller):
    host = HostProcess(caller)
    reply = host.request("hello")
    assert reply["error"]["code"] == "forbidden"
    assert host.close() == 3


def test_firefox_caller_is_served(initialised):
    host = HostProcess(["/home/u/.mozilla/native-messaging-hosts/org.isotopes.agent.json", FIREFOX_EXTENSION_ID])
    assert host.request("hello")["ok"]
    assert host.close() == 0


def test_stdout_carries_only_frames_and_stderr_no_traceback(host):
    for raw, *_ in BAD_FRAMES.values():
        host.send_raw(raw)
        assert host.receive()["ok"] is False  # each reply parses as a frame
    assert host.close() == 0
    assert host.stdout_rest == b"" and "Traceback" not in host.stderr_text


def test_the_host_start_up_path_imports_no_model_runtime():
    """The browser starts the host on demand: torch and onnxruntime must load only when verification asks."""
    code = ("import sys; import agent.cli, agent.host.server; "
            "print(sorted({'torch', 'onnxruntime', 'scipy'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
