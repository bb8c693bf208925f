"""The same extension in Debian's Firefox ESR, driven through WebDriver BiDi by puppeteer-core
(tests/e2e/firefox_upload.mjs): the plain input route marks the photo, checked on the bytes the site received."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import real_photo, run_cli
from e2e.upload_site import UploadSite

ROOT = Path(__file__).resolve().parents[1]
FIREFOX = "/usr/bin/firefox-esr"


def test_plain_input_in_firefox(home, tmp_path):
    if not Path(FIREFOX).exists() or shutil.which("node") is None:
        pytest.fail("Firefox ESR or node is missing: scripts/test installs them")
    user_home = tmp_path / "user"  # Firefox reads host manifests from ~/.mozilla/native-messaging-hosts
    user_home.mkdir()
    run_cli("init", "--no-passphrase")
    run_cli("sites", "enable", "127.0.0.1")
    run_cli("install-host", "--browser", "firefox", env={"HOME": str(user_home)})
    photo = tmp_path / "firefox.jpg"
    photo.write_bytes(real_photo("GreenMeadow").read_bytes())
    site = UploadSite(real_photo("GreenMeadow")).start()
    try:
        result = subprocess.run(["node", str(ROOT / "tests" / "e2e" / "firefox_upload.mjs"), str(ROOT / "extension"),
                                 f"http://127.0.0.1:{site.port}/plain", str(photo), str(tmp_path / "profile")],
                                capture_output=True, text=True, timeout=240, env={**os.environ, "HOME": str(user_home)})
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        [arrived] = site.received_for("/plain")
    finally:
        site.stop()
    status, sha_in, sha_out = sqlite3.connect(home / "isotopes.db").execute(
        "SELECT status, sha256_in, sha256_out FROM uploads WHERE name = 'firefox.jpg'").fetchone()
    assert status == "marked" and sha_in == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert arrived.sha256 == sha_out != sha_in
