"""Real headless Chromium reaches the real host through the manifest that `isotopes install-host` wrote."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from agent import paths
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def test_extension(tmp_path) -> Path:
    folder = tmp_path / "extension"
    shutil.copytree(Path(__file__).parent / "fixtures" / "host-test-extension", folder)
    product = json.loads((ROOT / "extension" / "manifest.json").read_text())
    manifest = {"manifest_version": 3, "name": "Isotopes host test", "version": "1", "key": product["key"],
                "permissions": ["nativeMessaging"], "background": {"service_worker": "worker.js"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def worker(initialised, tmp_path, test_extension):
    sync_api = pytest.importorskip("playwright.sync_api", reason="scripts/test installs playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test installs Debian's chromium")
    profile = tmp_path / "profile"
    run_cli("install-host", "--user-data-dir", str(profile))
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS + [f"--disable-extensions-except={test_extension}",
                                   f"--load-extension={test_extension}"])
        try:
            service_worker = context.service_workers[0] if context.service_workers else \
                context.wait_for_event("serviceworker", timeout=30_000)
            yield service_worker
        finally:
            context.close()


def test_chromium_reaches_the_host(worker):
    result = worker.evaluate("callHost({id: 'h', version: 1, action: 'hello'})")
    assert result["reply"]["ok"] and result["reply"]["data"]["protocol"] == 1


def test_a_photo_marked_through_chromium_arrives_byte_exact(worker):
    run_cli("sites", "enable", "photos.example")
    photo = Path("/usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg").read_bytes()  # 8.5 MB
    image = base64.b64encode(photo).decode()
    result = worker.evaluate("""async (image) => {
        const {reply, frames} = await callHost({id: 'm', version: 1, action: 'mark',
                                               params: {image, url: 'https://photos.example/upload'}});
        return {reply: {...reply, data: {...reply.data, image: undefined}}, frames,
                sha256: await sha256Base64(reply.data.image)};
    }""", image)
    data = result["reply"]["data"]
    assert result["frames"] >= 10  # chunked under the browser's 1 MiB frame limit, or Chromium drops the port
    conn = sqlite3.connect(paths.database_file())
    (ledger_sha,) = conn.execute("SELECT sha256_out FROM uploads WHERE id = ?", (data["ledger_id"],)).fetchone()
    assert result["sha256"] == data["sha256_out"] == ledger_sha
