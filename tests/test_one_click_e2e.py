"""One-click verification (issue 7) in real headless Chromium: the real extension's options page, the real agent
as its native host, real model APIs (scripts/serve_model.py on real sockets) serving real ONNX models trained
here, one on isotopes of site A made through the agent's own marking path and one that never saw a mark."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("torch", reason="scripts/test installs torch")
pytest.importorskip("onnxruntime", reason="scripts/test installs onnxruntime")

from agent.verify.models import load_model  # noqa: E402

from conftest import run_cli  # noqa: E402
from model_api import ServedModel, serve_model  # noqa: E402
from test_extension_e2e import CHROMIUM, EXTENSION_URL, FLAGS, playwright, wait_for  # noqa: E402,F401 (a fixture)

pytestmark = pytest.mark.timeout(900)  # the first test may also train the suspect models (conftest.py)

RUN_TIMEOUT_MS = 180_000
"""A check of 200 aux photos over HTTP takes 10-40 s on two busy cores."""


@pytest.fixture(scope="module")
def browser(playwright, suspect_models, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """Chromium with the extension, its native host installed, and the suspect models' agent home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISOTOPES_HOME", str(suspect_models.home))  # the native host inherits it from the browser
        profile = tmp_path_factory.mktemp("profile")
        run_cli("install-host", "--user-data-dir", str(profile))
        context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                               headless=True, args=FLAGS)
        try:
            yield context
        finally:
            context.close()


def served(onnx_path, **faults) -> ServedModel:
    """A model API (the scores-vector preset's shape) for the model file, with the given injected faults."""
    return ServedModel(serve_model.build_app(load_model(f"onnx:{onnx_path}"), faults=serve_model.Faults(**faults)))


def options_page(browser):
    page = browser.new_page()
    page.goto(f"{EXTENSION_URL}/options/options.html")
    page.wait_for_selector("#model-format option", state="attached")  # the presets came from the agent
    return page


def add_model(page, name: str, location: str, aux, *, kind: str = "http", preset: str | None = "scores-vector",
              labels: list[str] = (), size: int = 28, api_config=None, own=None):
    """Fill in the Add a model form and submit it; returns the form's error text (empty when it saved)."""
    page.fill("#model-name", name)
    page.select_option("#model-kind", kind)
    page.fill("#model-location", str(location))
    if kind == "http":
        page.select_option("#model-format", f"preset:{preset}" if preset else "custom")
        if preset:
            page.fill("#model-labels", "\n".join(labels))
            page.fill("#model-size", str(size))
        else:
            page.fill("#model-api-config", str(api_config))
    page.fill("#model-aux", str(aux))
    page.fill("#model-own", str(own or ""))
    page.click("#save-model")
    page.locator("#save-model:not([disabled])").wait_for(timeout=90_000)  # the agent checked the entry
    return page.text_content("#add-model-error")


def card(page, name: str):
    return page.locator("article.model-card", has=page.locator(f"h3:text-is('{name}')"))


def check(page, name: str):
    """Click Check my photos on the model's card and wait for the run to end; returns the card."""
    model = card(page, name)
    model.get_by_role("button", name="Check my photos").click()
    model.locator(".run-progress").wait_for(state="visible")
    return model


def wait_for_progress(model) -> None:
    """Until the first batch of aux photos is done (the page's CSP allows no wait_for_function)."""
    wait_for(lambda: model.locator("progress").evaluate("(bar) => bar.value") > 0, timeout=RUN_TIMEOUT_MS / 1000,
             what="the first progress")


def wait_for_verdict(model):
    model.locator(".run-status.verdict").wait_for(timeout=RUN_TIMEOUT_MS)
    model.locator(".mark-result").first.wait_for()
    return model


def marks(model) -> dict[str, str]:
    """Each mark card's site and verdict."""
    return {item.locator(".mark-site").text_content(): item.locator(".mark-verdict").text_content()
            for item in model.locator(".mark-result").all()}


def marks_checked_again_on_a_false_alarm(page, name: str, expected: dict[str, str]) -> dict[str, str]:
    """The mark verdicts of a finished check that includes marks the model never saw. At level 0.05 a test
    flags such a mark 1 time in 20 by design, so a check that differs from `expected` is run once more (a fresh
    external panel); a mark the model learned shows every time. The second check is not independent of the
    first: the user's marks and the aux photos stay the same, and a mark that happens to lead its family on
    this model leads it against any panel. With the two marks here (Holm: each must rank first of 40), a false
    alarm twice in a row has a chance of about 1/79 per mark the model never saw, E[q^78] for the mark's
    quantile q in its family, uniform under the null."""
    model = card(page, name)
    found = marks(model)
    if found != expected:
        model.get_by_role("button", name="Check again").click()
        model.locator(".run-progress").wait_for(state="visible")
        found = marks(wait_for_verdict(model))
    return found


def test_check_my_photos_finds_site_a_not_site_b_and_nothing_in_a_clean_model(browser, suspect_models):
    s = suspect_models
    page = options_page(browser)
    with served(s.marked_onnx) as api:
        assert add_model(page, "Suspect API", api.url, s.aux, labels=s.labels, own=s.own) == ""
        suspect = wait_for_verdict(check(page, "Suspect API"))
        expected = {s.site_a: "Detected", s.site_b: "Not detected"}
        assert marks_checked_again_on_a_false_alarm(page, "Suspect API", expected) == expected
        sentence = suspect.locator(".run-status").text_content()
        assert f"shows the mark you used on {s.site_a}" in sentence and "very likely trained" in sentence
        assert "verdict detected" in suspect.locator(".run-status").get_attribute("class")
    assert add_model(page, "Clean file", s.clean_onnx, s.aux, kind="onnx", own=s.own) == ""
    clean = wait_for_verdict(check(page, "Clean file"))
    expected = {s.site_a: "Not detected", s.site_b: "Not detected"}
    assert marks_checked_again_on_a_false_alarm(page, "Clean file", expected) == expected
    assert clean.locator(".run-status").text_content().startswith("No evidence")
    rows = page.locator("#runs tbody tr")
    rows.nth(1).wait_for()
    assert rows.nth(0).locator("td").nth(1).text_content() == "Clean file"
    assert "No evidence" in rows.nth(0).text_content()
    suspect_rows = [row.text_content() for row in rows.all() if "Suspect API" in row.text_content()]
    assert suspect_rows and "shows the mark" in suspect_rows[0]


def test_the_full_report_opens_as_an_extension_page(browser, suspect_models):
    page = options_page(browser)
    suspect = card(page, "Suspect API")
    link = wait_for_verdict(suspect).get_by_role("link", name="Open the full report")
    with browser.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert re.fullmatch(rf"{EXTENSION_URL}/report/report\.html\?run=[0-9a-f-]+", report.url)
    report.wait_for_selector("svg")
    text = report.text_content("body")
    assert f"shows the mark you used on {suspect_models.site_a}" in text
    assert report.locator("svg").count() >= 1 and suspect_models.site_b in text


def test_a_malformed_api_config_is_refused_at_save_with_the_field_named(browser, suspect_models, tmp_path):
    page = options_page(browser)
    config = tmp_path / "api.json"
    config.write_text('{"preset": "scores-vector", "labels": ["a", "b"], "input": {"size": "big"}}')
    assert add_model(page, "Broken config", "http://127.0.0.1:9/predict", suspect_models.aux, preset=None,
                     api_config=config) == ""
    error = page.locator("#model-api-config-error")
    assert "input.size" in error.text_content()
    assert page.get_attribute("#model-api-config", "aria-invalid") == "true"
    assert page.input_value("#model-name") == "Broken config"  # the user's input stays
    assert card(page, "Broken config").count() == 0


def test_a_check_can_be_cancelled_mid_run(browser, suspect_models):
    s = suspect_models
    page = options_page(browser)
    with served(s.marked_onnx, slow=1.0, slow_seconds=0.05) as api:  # about 80 queries a second
        assert add_model(page, "Slow API", api.url, s.aux, labels=s.labels, own=s.own) == ""
        model = check(page, "Slow API")
        wait_for_progress(model)
        model.get_by_role("button", name="Cancel").click()
        model.locator(".run-status:text('Cancelled')").wait_for(timeout=30_000)
        requests = api.health()["requests"]
        page.wait_for_timeout(1500)
        assert api.health()["requests"] == requests  # the worker stopped asking
    rows = page.locator("#runs tbody tr")
    rows.first.locator("text=Cancelled").wait_for()


def test_closing_and_reopening_the_page_re_attaches_to_the_run(browser, suspect_models):
    s = suspect_models
    page = options_page(browser)
    with served(s.marked_onnx, slow=1.0, slow_seconds=0.01) as api:
        assert add_model(page, "Reopened", api.url, s.aux, labels=s.labels, own=s.own) == ""
        model = check(page, "Reopened")
        wait_for_progress(model)
        page.close()
        again = options_page(browser)
        reopened = card(again, "Reopened")
        reopened.locator(".run-progress").wait_for(state="visible")
        assert reopened.get_by_role("button", name="Cancel").is_visible()
        wait_for_verdict(reopened)
        assert marks(reopened)[s.site_a] == "Detected"


def test_an_api_that_goes_down_mid_run_fails_clearly_and_retry_finishes(browser, suspect_models, tmp_path):
    s = suspect_models
    page = options_page(browser)
    model = load_model(f"onnx:{s.marked_onnx}")
    config = tmp_path / "api.json"
    config.write_text(json.dumps(serve_model.api_config(model, "vector", 5) | {"retries": 1, "backoff": 0.1}))
    # a check asks about 85 requests of 5 photos (the own photos, the aux photos unmarked, then the five
    # closest with the two marks and 39 external ones): down after 60, while the marks are being tested
    failing = ServedModel(serve_model.build_app(model, faults=serve_model.Faults(down_after=60)))
    with failing as api:
        url = api.url
        assert add_model(page, "Flaky API", url, s.aux, preset=None, api_config=config, own=s.own) == ""
        flaky = check(page, "Flaky API")
        status = flaky.locator(".run-status.run-failed")
        status.wait_for(timeout=RUN_TIMEOUT_MS)
        assert "The check failed" in status.text_content() and "503" in status.text_content()
    port = int(url.split(":")[2].split("/")[0])
    with ServedModel(serve_model.build_app(model), port=port):  # the API is back, at the same address
        flaky.get_by_role("button", name="Retry").click()
        wait_for_verdict(flaky)
        assert marks(flaky)[s.site_a] == "Detected"
