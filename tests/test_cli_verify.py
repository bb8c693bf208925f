"""`isotopes verify` as a user runs it: a real vault with real marked uploads, a model trained here on real
Fashion-MNIST, aux photos as PNG files in a folder."""

from __future__ import annotations

import pytest
from PIL import Image

pytest.importorskip("torch", reason="scripts/test installs torch")

from conftest import real_photo, run_cli, run_json  # noqa: E402

from agent.lab.datasets import fashion_mnist  # noqa: E402


def _folder(path, images) -> str:
    path.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(path / f"{index:04d}.png")
    return str(path)


@pytest.fixture
def uploads(initialised, tmp_path):
    """Two sites whose marks each marked a real photo."""
    for site in ("instagram.com", "flickr.com"):
        run_cli("sites", "enable", site)
        run_cli("mark", str(real_photo("Wood")), "--site", site, "--out", str(tmp_path / site))
    return initialised


def test_verify_prints_one_document_with_every_field_and_writes_the_report(uploads, fashion_model, tmp_path):
    _, folder = fashion_model
    test = fashion_mnist("test")
    aux = _folder(tmp_path / "aux", test.images[:80])
    report = tmp_path / "report.html"
    document = run_json("verify", "--model", f"onnx:{folder / 'model.onnx'}", "--aux", aux, "--label", "Shirt",
                        "--panel", "19", "--paper-v", "--report", str(report))
    assert document["decision"] in ("detected", "not detected") and document["queries"] > 0
    assert {r["site"] for r in document["results"]} == {"instagram.com", "flickr.com"}
    for result in document["results"]:
        assert result["label"] == "Shirt" and isinstance(result["detected"], bool)
        assert 0 < result["p_value"] <= result["p_adjusted"] <= 1 and len(result["mark_id"]) == 20
        assert set(result["paper_v"]) >= {"detected", "round_pvalues"}
    assert document["panel_size"] == 39  # two marks at level 0.05 need K + 1 >= 40
    # the 80 images unmarked; the 5 closest to Shirt with both marks and 39 external ones; the paper's V: the
    # two true marks and the first external mark on the other images not already given Shirt
    assert 80 + 5 * 41 < document["queries"] <= 80 + 5 * 41 + 75 * 3
    html = report.read_text()
    assert html.count("<svg") == 2 and "flickr.com" in html and "instagram.com" in html
    assert "Paper&#x27;s V</th>" in html

    one_site = run_json("verify", "--model", f"onnx:{folder / 'model.onnx'}", "--aux", aux, "--label", "6",
                        "--site", "https://www.flickr.com/upload")
    assert [r["site"] for r in one_site["results"]] == ["flickr.com"]
    assert one_site["queries"] == 80 + 5 * (1 + 99) and one_site["results"][0]["paper_v"] is None


def test_own_photos_give_the_label_and_a_physical_mark_is_tested_unpaired(uploads, fashion_model, tmp_path):
    _, folder = fashion_model
    test = fashion_mnist("test")
    trousers, shirts = test.images[test.labels == 1][:30], test.images[test.labels == 6][:30]
    own = _folder(tmp_path / "own", trousers)
    document = run_json("verify", "--model", f"onnx:{folder / 'model.onnx'}", "--aux",
                        _folder(tmp_path / "aux", test.images[:40]), "--own", own, "--site", "flickr.com",
                        "--with", own, "--without", _folder(tmp_path / "without", shirts), "--panel", "19")
    assert document["results"][0]["label"] == "Trouser"  # what the model calls the user's own photos
    physical = document["physical"]
    assert physical["with"] == physical["without"] == 30
    assert physical["detected"] and physical["p_value"] < 1e-6 and physical["mean_with"] > physical["mean_without"]


@pytest.mark.parametrize("args, words", [
    (["--model", "onnx:/no/such/model.onnx"], "does not exist"),
    (["--model", "gguf:model"], "unknown model"),
    (["--model", "https://api.example/classify"], "needs an API config"),
    (["--level", "1.5"], "level must be between 0 and 1"),
    (["--label", "Unicorn"], "has no label 'Unicorn'"),
])
def test_bad_requests_say_what_is_wrong(uploads, fashion_model, tmp_path, args, words):
    _, folder = fashion_model
    base = {"--model": f"onnx:{folder / 'model.onnx'}",
            "--aux": _folder(tmp_path / "aux", fashion_mnist("test").images[:12])}
    pairs = dict(zip(args[::2], args[1::2]))
    argv = [item for key, value in (base | pairs).items() for item in (key, value)]
    failed = run_cli("verify", *argv, check=False)
    assert failed.returncode == 1 and words in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr


def test_nothing_to_test_before_any_upload_was_marked(initialised, fashion_model, tmp_path):
    _, folder = fashion_model
    failed = run_cli("verify", "--model", f"onnx:{folder / 'model.onnx'}", "--aux",
                     _folder(tmp_path / "aux", fashion_mnist("test").images[:12]), check=False)
    assert failed.returncode == 1 and "no marked upload yet" in failed.stderr


def test_the_command_line_defaults_are_the_engines():
    """`isotopes verify` spells its defaults out for --help; they must be those the native host's requests get.
    `--focus` takes a number of images or "all"."""
    from agent.cli import _parser
    from agent.verify import session

    args = _parser().parse_args(["verify", "--model", "onnx:model.onnx", "--aux", "aux"])
    defaults = session.Request(model="onnx:model.onnx", aux="aux")
    assert (args.images, args.panel, args.level, args.label, args.focus, args.paper_v) == (
        defaults.images, defaults.panel_size, defaults.level, defaults.label, defaults.focus, defaults.paper_v)
    every = _parser().parse_args(["verify", "--model", "onnx:model.onnx", "--aux", "aux", "--focus", "all"])
    assert every.focus is None and _parser().parse_args(
        ["verify", "--model", "m", "--aux", "a", "--focus", "12"]).focus == 12
    for wrong in ("0", "some", "-3"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["verify", "--model", "m", "--aux", "a", "--focus", wrong])
