"""install-host / uninstall-host: every browser's folders on every platform, and a real install here."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from agent.host import install
from agent.host.callers import CHROMIUM_EXTENSION_ID, FIREFOX_EXTENSION_ID, HOST_NAME, chromium_origin
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
HOME = Path("/home/ana")
NAME = f"{HOST_NAME}.json"


def test_extension_id_comes_from_the_committed_public_key():
    manifest = json.loads((ROOT / "extension" / "manifest.json").read_text())
    digest = hashlib.sha256(base64.b64decode(manifest["key"])).hexdigest()[:32]
    assert "".join(chr(ord("a") + int(c, 16)) for c in digest) == CHROMIUM_EXTENSION_ID
    assert "PRIVATE" not in json.dumps(manifest)


def planned(platform, browsers, **options):
    return install.plan(browsers, platform=platform, home=HOME, data_dir=HOME / "data", prefix=Path("/opt/py"),
                        **options)


@pytest.mark.parametrize("browser, folder", [
    ("chrome", "/home/ana/.config/google-chrome/NativeMessagingHosts"),
    ("chromium", "/home/ana/.config/chromium/NativeMessagingHosts"),
    ("edge", "/home/ana/.config/microsoft-edge/NativeMessagingHosts"),
    ("brave", "/home/ana/.config/BraveSoftware/Brave-Browser/NativeMessagingHosts"),
    ("firefox", "/home/ana/.mozilla/native-messaging-hosts")])
def test_linux_user_folders(browser, folder):
    plan = planned("linux", [browser])
    assert list(plan.manifests) == [Path(folder) / NAME]
    assert plan.launcher == HOME / "data" / "native-host" / "isotopes-host" and not plan.registry


def test_linux_honours_xdg_config_home_and_system_folders():
    assert list(planned("linux", ["chromium"], xdg_config_home=Path("/cfg")).manifests) == [
        Path("/cfg/chromium/NativeMessagingHosts") / NAME]
    system = planned("linux", ["chrome", "firefox"], system=True)
    assert set(system.manifests) == {Path("/etc/opt/chrome/native-messaging-hosts") / NAME,
                                     Path("/usr/lib/mozilla/native-messaging-hosts") / NAME,
                                     Path("/usr/lib64/mozilla/native-messaging-hosts") / NAME}
    assert system.launcher == Path("/opt/py/share/isotopes/isotopes-host")


def test_macos_folders():
    plan = planned("darwin", ["chrome", "brave", "firefox"])
    support = HOME / "Library" / "Application Support"
    assert plan.manifests == {support / "Google/Chrome/NativeMessagingHosts" / NAME: "chromium",
                              support / "BraveSoftware/Brave-Browser/NativeMessagingHosts" / NAME: "chromium",
                              support / "Mozilla/NativeMessagingHosts" / NAME: "firefox"}
    assert Path("/Library/Microsoft/Edge/NativeMessagingHosts") / NAME in planned(
        "darwin", ["edge"], system=True).manifests


def test_windows_registry_keys():
    plan = planned("win32", ["chrome", "edge", "firefox"])
    folder = HOME / "data" / "native-host"
    assert plan.launcher == folder / "isotopes-host.bat"
    assert plan.registry == {
        rf"HKCU\Software\Google\Chrome\NativeMessagingHosts\{HOST_NAME}": folder / f"{HOST_NAME}.chromium.json",
        rf"HKCU\Software\Microsoft\Edge\NativeMessagingHosts\{HOST_NAME}": folder / f"{HOST_NAME}.chromium.json",
        rf"HKCU\Software\Mozilla\NativeMessagingHosts\{HOST_NAME}": folder / f"{HOST_NAME}.firefox.json"}
    system = planned("win32", ["chromium"], system=True)
    assert list(system.registry) == [rf"HKLM\Software\Chromium\NativeMessagingHosts\{HOST_NAME}"]
    script = install.launcher_script("windows", r"C:\Py\python.exe", r"C:\Users\ana\iso")
    assert script.startswith("@echo off\r\n") and r'set "ISOTOPES_HOME=C:\Users\ana\iso"' in script
    assert r'"C:\Py\python.exe" -m agent.cli host %*' in script


def test_manifests_name_the_launcher_and_only_our_extension():
    chromium = json.loads(install.manifest_json("chromium", Path('/a "quoted"/isotopes-host')))
    assert chromium == {"name": HOST_NAME, "description": chromium["description"],
                        "path": '/a "quoted"/isotopes-host', "type": "stdio", "allowed_origins": [chromium_origin()]}
    firefox = json.loads(install.manifest_json("firefox", Path("/x/isotopes-host")))
    assert firefox["allowed_extensions"] == [FIREFOX_EXTENSION_ID] and "allowed_origins" not in firefox


def test_install_into_a_temporary_home_and_user_data_dir(initialised, tmp_path, monkeypatch):
    home = tmp_path / "userhome"
    (home / ".config" / "chromium").mkdir(parents=True)  # a Chromium profile exists: detected
    (home / ".mozilla").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    out = run_cli("install-host").stdout
    chromium = home / ".config/chromium/NativeMessagingHosts" / NAME
    firefox = home / ".mozilla/native-messaging-hosts" / NAME
    assert str(chromium) in out and str(firefox) in out and "google-chrome" not in out
    udd = tmp_path / "profile"
    run_cli("install-host", "--user-data-dir", str(udd))
    manifest = json.loads((udd / "NativeMessagingHosts" / NAME).read_text())
    launcher = Path(manifest["path"])
    assert launcher.is_absolute() and os.access(launcher, os.X_OK)
    assert manifest["allowed_origins"] == [f"chrome-extension://{CHROMIUM_EXTENSION_ID}/"]
    assert json.loads(firefox.read_text())["path"] == str(launcher)
    # The launcher starts this installation's host, which answers the extension.
    hello = json.dumps({"id": 1, "version": 1, "action": "hello"}).encode()
    result = subprocess.run([str(launcher), chromium_origin()], input=len(hello).to_bytes(4, "little") + hello,
                            capture_output=True, timeout=60)
    assert json.loads(result.stdout[4:])["data"]["protocol"] == 1
    removed = run_cli("uninstall-host").stdout
    assert str(chromium) in removed and not chromium.exists() and not firefox.exists() and not launcher.exists()
    run_cli("uninstall-host", "--user-data-dir", str(udd))
    assert not (udd / "NativeMessagingHosts" / NAME).exists()


def test_uninstall_leaves_other_hosts_alone(initialised, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    other = tmp_path / ".mozilla/native-messaging-hosts" / NAME
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"name": "someone.else"}))
    run_cli("uninstall-host")
    assert other.exists()


def test_sandboxed_browsers_get_their_extra_steps(tmp_path):
    (tmp_path / ".var/app/org.mozilla.firefox").mkdir(parents=True)
    (tmp_path / "snap/chromium").mkdir(parents=True)
    notes = " ".join(install.sandbox_notes(tmp_path))
    assert "flatpak override --user --talk-name=org.freedesktop.Flatpak org.mozilla.firefox" in notes
    assert "Chromium from Snap cannot start native hosts" in notes
