"""Models behind an HTTP API: scripts/serve_model.py serving a model trained here, over real sockets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent.lab.datasets import fashion_mnist  # noqa: E402
from agent.verify.api_answers import ModelResponseError  # noqa: E402
from agent.verify.models import load_model, top_k_ranks  # noqa: E402
from agent.verify.preprocess import ModelConfigError  # noqa: E402
from model_api import ServedModel, serve_model  # noqa: E402

SCRIPT = Path(serve_model.__file__)
FAST = {"backoff": 0.01}  # tests need not wait long between retries


@pytest.fixture(scope="module")
def onnx_model(fashion_model):
    return load_model(f"onnx:{fashion_model[1] / 'model.onnx'}")


@pytest.fixture(scope="module")
def images():
    return fashion_mnist("test").images[:300]


@pytest.fixture(scope="module")
def expected(onnx_model, images):
    """The in-process probabilities the API's answers must reproduce."""
    return onnx_model.predict(images)


def served(model, shape="vector", top_k=5, token=None, **faults) -> ServedModel:
    return ServedModel(serve_model.build_app(model, shape, top_k, serve_model.Faults(**faults), token))


def config_file(folder: Path, model, shape="vector", top_k=5, **fields) -> Path:
    """The server's --print-config for this shape, with `fields` on top, written to a file."""
    path = folder / "api.json"
    path.write_text(json.dumps(serve_model.api_config(model, shape, top_k) | FAST | fields))
    return path


@pytest.mark.parametrize("shape, request_fields", [  # batch 1 is encoded on the event loop, 16 on threads
    ("vector", {"batch": 1}), ("vector", {"batch": 16}), ("vector", {"encoding": "raw"}),
    ("top-k", {"batch": 1}), ("top-k", {"batch": 16})])
def test_the_api_gives_the_in_process_probabilities(home, tmp_path, onnx_model, images, expected, shape,
                                                    request_fields):
    with served(onnx_model, shape, top_k=10) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, shape, 10, request=request_fields))
        assert (model.labels, model.size, model.output, model.device) == (onnx_model.labels, (28, 28),
                                                                           "probabilities", "cpu")
        got = model.predict(images)
        sent = -(-len(images) // request_fields.get("batch", 1))
        assert got.shape == (300, 10) and np.abs(got - expected).max() < 1e-4
        assert model.requests == server.health()["requests"] == sent and model.cache_hits == model.retries == 0


@pytest.mark.parametrize("shape, top_k", [("top-k", 3), ("labels", 1), ("labels", 3)])
def test_top_k_and_label_answers_give_ranks(home, tmp_path, onnx_model, images, expected, shape, top_k):
    with served(onnx_model, shape, top_k) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, shape, top_k, request={"batch": 8}))
        got = model.predict(images[:100])
    assert model.output == "ranks" and np.array_equal(got, top_k_ranks(expected[:100], top_k))


def test_faults_are_retried_until_the_answer_is_right(home, tmp_path, onnx_model, images, expected):
    """Four faults at 10% each: 40% of the requests fail, some several times in a row."""
    with served(onnx_model, fail_429=0.1, fail_500=0.1, slow=0.1, slow_seconds=0.5, drop=0.1, seed=1) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, timeout=0.2, retries=15, backoff=0.001))
        got = model.predict(images[:100])
        health = server.health()
    assert np.abs(got - expected[:100]).max() < 1e-4
    assert min(health["faults"][kind] for kind in ("429", "500", "slow", "drop")) > 0, health
    assert model.retries == sum(health["faults"].values())
    assert model.requests == health["requests"] == 100 + model.retries


def test_retry_after_is_honoured_and_giving_up_says_why(home, tmp_path, onnx_model, images):
    with served(onnx_model, fail_429=1.0, retry_after=1) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, retries=1))
        started = time.monotonic()
        with pytest.raises(ModelResponseError, match="gave up after 1 retry; the last failure: HTTP 429"):
            model.predict(images[:1])
    assert time.monotonic() - started >= 1 and model.requests == 2


def test_a_server_that_goes_down_then_away(home, tmp_path, onnx_model, images, expected):
    with served(onnx_model, down_after=5) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, retries=2, concurrency=1))
        with pytest.raises(ModelResponseError, match=re.escape(server.url) + ": gave up after 2 retries; "
                                                     "the last failure: HTTP 503"):
            model.predict(images[:10])
    assert model.requests == 5 + 3
    assert np.array_equal(model.predict(images[:5]), expected[:5])  # what was answered before is kept
    with pytest.raises(ModelResponseError, match="gave up after 2 retries; the last failure: connection failed "
                                                 r"\(Cannot connect to host"):
        model.predict(images[5:6])


@pytest.mark.parametrize("malform, shape, fields, words", [
    ("not-json", "vector", {}, "the answer is not JSON: '<html>"),
    ("wrong-shape", "vector", {}, "9 scores per image; the config names 10 labels"),
    ("nan", "vector", {}, "NaN or infinite scores"),
    ("not-normalised", "vector", {}, r"not probabilities \(row sums 2 to 2"),
    ("unknown-label", "top-k", {}, r"unknown label '[^']+ \(renamed\)'"),
    (None, "vector", {"response": {"path": "predictions.0"}}, "response.path 'predictions.0' is not in the answer"),
    (None, "vector", {"request": {"batch": 4}, "response": {"path": "probabilities.0"}},
     "holds 1 score rows for a request of 4 images"),
    (None, "top-k", {"output": "probabilities"}, "lists 5 of 10 labels")])
def test_malformed_answers_say_what_is_wrong(home, tmp_path, onnx_model, images, malform, shape, fields, words):
    with served(onnx_model, shape, malform=malform) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, shape, **fields))
        with pytest.raises(ModelResponseError, match=re.escape(server.url) + ": .*" + words):
            model.predict(images[:4])
    assert model.retries == 0


def test_a_rerun_is_answered_from_the_cache(home, tmp_path, onnx_model, images, expected):
    with served(onnx_model) as server:
        config = config_file(tmp_path, onnx_model, request={"batch": 10})
        load_model(server.url, config).predict(images[:50])
        model = load_model(server.url, config)  # a new model object: the cache is on disk
        assert np.abs(model.predict(images[:60]) - expected[:60]).max() < 1e-4
        assert (model.cache_hits, model.requests, server.health()["requests"]) == (50, 1, 6)
        assert np.abs(model.predict(images[:60]) - expected[:60]).max() < 1e-4
        assert (model.cache_hits, model.requests, server.health()["requests"]) == (110, 1, 6)
        with pytest.raises(ValueError, match=r"expected \(N, 28, 28, 3\) uint8"):
            model.predict(np.zeros((1, 32, 32, 3), np.uint8))
    assert (home / "cache" / "model-responses.db").is_file()


def test_headers_come_from_the_environment_and_stay_out_of_the_cache(home, tmp_path, monkeypatch, onnx_model,
                                                                     images, expected):
    secret = "s3cret-1sotopes-token"
    headers = {"Authorization": {"env": "ISOTOPES_TEST_TOKEN", "prefix": "Bearer "}}
    monkeypatch.delenv("ISOTOPES_TEST_TOKEN", raising=False)
    with served(onnx_model, token=secret) as server:
        config = config_file(tmp_path, onnx_model, headers=headers)
        with pytest.raises(ModelConfigError, match="headers.Authorization: the environment variable "
                                                   "ISOTOPES_TEST_TOKEN is not set"):
            load_model(server.url, config)
        monkeypatch.setenv("ISOTOPES_TEST_TOKEN", "wrong")
        refused = load_model(server.url, config)
        with pytest.raises(ModelResponseError, match="HTTP 401: .*a valid bearer token is required"):
            refused.predict(images[:1])
        assert refused.requests == 1  # a 4xx other than 429 is not retried
        monkeypatch.setenv("ISOTOPES_TEST_TOKEN", secret)
        assert np.abs(load_model(server.url, config).predict(images[:20]) - expected[:20]).max() < 1e-4
    for file in (home / "cache").iterdir():
        assert secret.encode() not in file.read_bytes(), file


def test_a_toml_config_and_a_thread_without_an_event_loop(home, tmp_path, onnx_model, images, expected):
    (tmp_path / "api.toml").write_text(f"""preset = "scores-vector"
labels = {json.dumps(list(onnx_model.labels))}
concurrency = 2
[input]
size = [28, 28]
[request]
batch = 8
""")
    results = []
    with served(onnx_model) as server:
        model = load_model(server.url, tmp_path / "api.toml")
        thread = threading.Thread(target=lambda: results.append(model.predict(images[:40])))
        thread.start()
        thread.join(30)
    assert np.abs(results[0] - expected[:40]).max() < 1e-4 and model.requests == 5


def test_concurrency_and_rate_limit_are_kept(home, tmp_path, onnx_model, images):
    with served(onnx_model, slow=1.0, slow_seconds=0.05) as server:  # every answer takes 50 ms: requests overlap
        load_model(server.url, config_file(tmp_path, onnx_model, concurrency=3)).predict(images[:12])
        assert server.health()["most_in_flight"] == 3
    with served(onnx_model) as server:
        model = load_model(server.url, config_file(tmp_path, onnx_model, rate_limit=40))
        started = time.monotonic()
        model.predict(images[:20])
        assert time.monotonic() - started >= 19 / 40


def test_the_server_script_serves_what_it_prints(home, tmp_path, fashion_model, images, expected):
    command = [sys.executable, str(SCRIPT), str(fashion_model[1] / "model.onnx"), "--shape", "labels",
               "--top-k", "2"]
    printed = subprocess.run(command + ["--print-config"], capture_output=True, text=True, check=True, timeout=60)
    (tmp_path / "api.json").write_text(printed.stdout)
    server = subprocess.Popen(command + ["--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline().split()
        assert first[0] == "serving" and first[1].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(first[1].replace("/predict", "/health"), timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        got = load_model(first[1], tmp_path / "api.json").predict(images[:30])
    finally:
        server.terminate()
        server.wait(10)
    assert np.array_equal(got, top_k_ranks(expected[:30], 2))


BASE = {"preset": "scores-vector", "labels": ["a", "b"], "input": {"size": [28, 28]}}


@pytest.mark.parametrize("config, words", [
    ({"preset": "nope"}, "preset must be one of label-list, label-score-list, scores-vector, not 'nope'"),
    ({"preset": "scores-vector", "labels": ["a"]}, "input is missing"),
    ({"labels": ["a"], "input": {"size": [28]}}, "input.size must be"),
    ({"labels": ["a"], "input": {"size": 28}}, "request is missing"),
    (BASE | {"labels": []}, "labels must be a non-empty list"),
    (BASE | {"request": {"encoding": "ftp"}}, "request.encoding must be one of json-base64, multipart, raw"),
    (BASE | {"request": {"batch": 0}}, "request.batch must be a whole number > 0, not 0"),
    (BASE | {"request": {"encoding": "raw", "batch": 4}}, "request.batch must be 1 with request.encoding raw"),
    (BASE | {"request": {"format": "gif"}}, "request.format must be one of png, jpeg"),
    (BASE | {"response": {"kind": "matrix"}}, "response.kind must be one of vector, list"),
    (BASE | {"response": {"path": 3}}, "response.path must be a string"),
    (BASE | {"response": {"score": "s"}}, "unknown field response.score "),
    (BASE | {"output": "votes"}, "output must be one of probabilities, logits, ranks"),
    (BASE | {"output": "ranks"}, "output ranks needs response.kind list"),
    (BASE | {"preset": "label-list", "output": "probabilities"}, "output probabilities needs response.score_key"),
    (BASE | {"timeout": -1}, "timeout must be a number > 0, not -1"),
    (BASE | {"retries": 1.5}, "retries must be a whole number >= 0, not 1.5"),
    (BASE | {"concurency": 2}, "unknown field concurency "),
    (BASE | {"headers": {"X-Key": "literal"}}, "headers.X-Key must be a table of fields"),
    (BASE | {"headers": {"X-Key": {"value": "x"}}}, "unknown field headers.X-Key.value")])
def test_bad_api_configs_name_the_file_and_field(tmp_path, config, words):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match=re.escape(f"{path}: {words}")):
        load_model("http://127.0.0.1:9/predict", path)


def test_bad_config_files_and_specs(tmp_path, fashion_model):
    with pytest.raises(ModelConfigError, match="needs an API config"):
        load_model("http://127.0.0.1:9/predict")
    with pytest.raises(ModelConfigError, match="an API config is for a model API"):
        load_model(f"onnx:{fashion_model[1] / 'model.onnx'}", tmp_path / "api.json")
    with pytest.raises(ModelConfigError, match=r"api\.json cannot be read"):
        load_model("http://127.0.0.1:9/predict", tmp_path / "api.json")
    (tmp_path / "api.yaml").write_text("preset: scores-vector")
    with pytest.raises(ModelConfigError, match="is a .json or .toml file"):
        load_model("http://127.0.0.1:9/predict", tmp_path / "api.yaml")
    (tmp_path / "api.toml").write_text("preset = ")
    with pytest.raises(ModelConfigError, match=r"api\.toml is not valid TOML"):
        load_model("http://127.0.0.1:9/predict", tmp_path / "api.toml")
    (tmp_path / "api.json").write_text(json.dumps(BASE))
    with pytest.raises(ModelConfigError, match="not an http"):
        load_model("http:///predict", tmp_path / "api.json")
