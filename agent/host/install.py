"""Register the host with browsers: a launcher that runs this installation's Python, and host manifests.

``plan`` is pure: for a platform, a home directory and the user's choices it lists the files (and, on Windows,
the registry keys) that installing would write, so every platform's layout is unit-tested anywhere.
``install`` and ``uninstall`` carry a plan out on this machine.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from .callers import FIREFOX_EXTENSION_ID, HOST_NAME, chromium_origin

BROWSERS = ("chrome", "chromium", "edge", "brave", "firefox")
CHROMIUM_FAMILY = ("chrome", "chromium", "edge", "brave")

# Per-user manifest folders, relative to the home directory (Linux: to $XDG_CONFIG_HOME for Chromium-family).
_LINUX_USER = {"chrome": ".config/google-chrome", "chromium": ".config/chromium", "edge": ".config/microsoft-edge",
               "brave": ".config/BraveSoftware/Brave-Browser"}
_LINUX_SYSTEM = {"chrome": ["/etc/opt/chrome/native-messaging-hosts"],
                 "chromium": ["/etc/chromium/native-messaging-hosts"],
                 "edge": ["/etc/opt/edge/native-messaging-hosts"],
                 "brave": ["/etc/opt/chrome/native-messaging-hosts"],  # Brave reads Chrome's system folder
                 "firefox": ["/usr/lib/mozilla/native-messaging-hosts", "/usr/lib64/mozilla/native-messaging-hosts"]}
_MAC_SUPPORT = "Library/Application Support"
_MAC_USER = {"chrome": [f"{_MAC_SUPPORT}/Google/Chrome/NativeMessagingHosts"],
             "chromium": [f"{_MAC_SUPPORT}/Chromium/NativeMessagingHosts"],
             "edge": [f"{_MAC_SUPPORT}/Microsoft Edge/NativeMessagingHosts"],
             # Brave on macOS has been seen reading either its own folder or Chrome's: write both.
             "brave": [f"{_MAC_SUPPORT}/BraveSoftware/Brave-Browser/NativeMessagingHosts",
                       f"{_MAC_SUPPORT}/Google/Chrome/NativeMessagingHosts"],
             "firefox": [f"{_MAC_SUPPORT}/Mozilla/NativeMessagingHosts"]}
_MAC_SYSTEM = {"chrome": ["/Library/Google/Chrome/NativeMessagingHosts"],
               "chromium": ["/Library/Application Support/Chromium/NativeMessagingHosts"],
               "edge": ["/Library/Microsoft/Edge/NativeMessagingHosts"],
               "brave": ["/Library/Google/Chrome/NativeMessagingHosts"],
               "firefox": ["/Library/Application Support/Mozilla/NativeMessagingHosts"]}
_WINDOWS_KEYS = {"chrome": [r"Software\Google\Chrome\NativeMessagingHosts"],
                 "chromium": [r"Software\Chromium\NativeMessagingHosts"],
                 "edge": [r"Software\Microsoft\Edge\NativeMessagingHosts"],
                 "brave": [r"Software\Google\Chrome\NativeMessagingHosts"],  # Brave reads Chrome's key
                 "firefox": [r"Software\Mozilla\NativeMessagingHosts"]}


TEMPLATES = Path(__file__).resolve().parents[2] / "native_host"
"""The manifest and launcher templates: native_host/ of the source checkout this agent runs from."""


def _template(name: str) -> str:
    try:
        return (TEMPLATES / name).read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{TEMPLATES / name} is missing: install-host runs from a source checkout of "
                                "isotopes (pip install -e), which carries native_host/") from None


@dataclass(frozen=True)
class Plan:
    launcher: Path
    manifests: dict[Path, str] = field(default_factory=dict)  # manifest file -> browser kind ("chromium"/"firefox")
    registry: dict[str, Path] = field(default_factory=dict)  # Windows: "HKCU\\...\\NAME" -> manifest file


def platform_name(platform: str = sys.platform) -> str:
    if platform.startswith("win"):
        return "windows"
    return "macos" if platform == "darwin" else "linux"


def _kind(browser: str) -> str:
    return "firefox" if browser == "firefox" else "chromium"


def plan(browsers: list[str], *, platform: str, home: Path, system: bool = False, user_data_dir: Path | None = None,
         data_dir: Path, prefix: Path, xdg_config_home: Path | None = None) -> Plan:
    """What installing for `browsers` writes. `data_dir` holds the per-user launcher (and Windows manifests);
    `prefix` (the installation's sys.prefix) holds the system-wide launcher."""
    os_name = platform_name(platform)
    folder = (prefix / "share" / "isotopes") if system else (data_dir / "native-host")
    launcher = folder / ("isotopes-host.bat" if os_name == "windows" else "isotopes-host")
    result = Plan(launcher=launcher)
    manifest_name = f"{HOST_NAME}.json"
    for browser in browsers:
        if user_data_dir is not None:
            if browser == "firefox":
                raise ValueError("--user-data-dir is a Chromium-family option; Firefox has no such folder")
            result.manifests[user_data_dir / "NativeMessagingHosts" / manifest_name] = _kind(browser)
            continue
        if os_name == "windows":
            manifest = folder / f"{HOST_NAME}.{_kind(browser)}.json"
            result.manifests[manifest] = _kind(browser)
            hive = "HKLM" if system else "HKCU"
            for key in _WINDOWS_KEYS[browser]:
                result.registry[f"{hive}\\{key}\\{HOST_NAME}"] = manifest
            continue
        if system:
            folders = [Path(p) for p in (_MAC_SYSTEM if os_name == "macos" else _LINUX_SYSTEM)[browser]]
        elif os_name == "macos":
            folders = [home / p for p in _MAC_USER[browser]]
        elif browser == "firefox":
            folders = [home / ".mozilla" / "native-messaging-hosts"]
        else:
            config = xdg_config_home or home / ".config"
            folders = [config / Path(_LINUX_USER[browser]).relative_to(".config") / "NativeMessagingHosts"]
        for manifest_folder in folders:
            result.manifests[manifest_folder / manifest_name] = _kind(browser)
    return result


def manifest_json(kind: str, launcher: Path) -> str:
    template = _template(f"manifest.{kind}.json")
    text = (template.replace("@NAME@", HOST_NAME).replace("@ORIGIN@", chromium_origin())
            .replace("@EXTENSION_ID@", FIREFOX_EXTENSION_ID).replace("@PATH@", json.dumps(str(launcher))[1:-1]))
    json.loads(text)  # a template bug must never produce a manifest the browser cannot read
    return text


def launcher_script(os_name: str, python: str, home_override: str | None) -> str:
    if os_name == "windows":
        template = _template("launcher.bat.in")
        environment = f'set "ISOTOPES_HOME={home_override}"\n' if home_override else ""
        script = template.replace("@ENVIRONMENT@", environment).replace("@PYTHON@", f'"{python}"')
        return script.replace("\n", "\r\n")  # cmd.exe wants CRLF
    template = _template("launcher.sh.in")
    environment = f"ISOTOPES_HOME={shlex.quote(home_override)}; export ISOTOPES_HOME\n" if home_override else ""
    return template.replace("@ENVIRONMENT@", environment).replace("@PYTHON@", shlex.quote(python))


def detected_browsers(platform: str, home: Path, xdg_config_home: Path | None = None) -> list[str]:
    """Browsers whose per-user profile folder exists."""
    found = []
    for browser in BROWSERS:
        target = plan([browser], platform=platform, home=home, data_dir=home, prefix=home,
                      xdg_config_home=xdg_config_home)
        if platform_name(platform) == "windows" or any(p.parent.parent.exists() for p in target.manifests):
            found.append(browser)
    return found


def sandbox_notes(home: Path) -> list[str]:
    """Extra steps for browsers from Snap or Flatpak, whose sandbox hides native hosts."""
    notes = []
    if Path("/snap/bin/firefox").exists() or (home / "snap" / "firefox").exists():
        notes.append("Firefox from Snap starts native hosts only through the WebExtensions desktop portal: install "
                     "xdg-desktop-portal 1.18 or newer, set widget.use-xdg-desktop-portal.native-messaging to 1 in "
                     "about:config, restart Firefox, and allow Isotopes when Firefox asks the first time. The "
                     "manifest in ~/.mozilla/native-messaging-hosts is where the portal looks.")
    if Path("/snap/bin/chromium").exists() or (home / "snap" / "chromium").exists():
        notes.append("Chromium from Snap cannot start native hosts at all (its confinement forbids it): use "
                     "Chromium or Chrome from a .deb, or Firefox.")
    flatpaks = {"org.mozilla.firefox": ".mozilla/native-messaging-hosts",
                "org.chromium.Chromium": ".config/chromium/NativeMessagingHosts",
                "com.google.Chrome": ".config/google-chrome/NativeMessagingHosts",
                "com.brave.Browser": ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
                "com.microsoft.Edge": ".config/microsoft-edge/NativeMessagingHosts"}
    for app, folder in flatpaks.items():
        if (home / ".var" / "app" / app).exists():
            notes.append(f"{app} is a Flatpak: its sandbox sees neither this manifest nor this Python. Run "
                         f"`flatpak override --user --talk-name=org.freedesktop.Flatpak {app}`, copy the manifest "
                         f"to ~/.var/app/{app}/{folder}/, and point its \"path\" at a script that runs "
                         f"`flatpak-spawn --host` followed by the launcher's path.")
    return notes


def install(browsers: list[str], *, system: bool = False, user_data_dir: Path | None = None,
            platform: str = sys.platform) -> Plan:
    """Write the launcher and the manifests (and registry keys on Windows)."""
    os_name = platform_name(platform)
    target = _local_plan(browsers, system, user_data_dir, platform)
    target.launcher.parent.mkdir(parents=True, exist_ok=True)
    target.launcher.write_text(launcher_script(os_name, sys.executable, os.environ.get(paths.HOME_ENV)),
                               newline="")
    target.launcher.chmod(target.launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for manifest, kind in target.manifests.items():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(manifest_json(kind, target.launcher))
    for key, manifest in target.registry.items():
        _set_registry_default(key, str(manifest))
    return target


def uninstall(*, system: bool = False, user_data_dir: Path | None = None, platform: str = sys.platform) -> list[str]:
    """Remove everything `install` could have written for any browser; returns what was removed."""
    target = _local_plan(list(CHROMIUM_FAMILY) if user_data_dir else list(BROWSERS), system, user_data_dir,
                         platform)
    removed = []
    for manifest in target.manifests:
        if manifest.exists() and _is_ours(manifest):
            manifest.unlink()
            removed.append(str(manifest))
    for key in target.registry:
        if _delete_registry_key(key):
            removed.append(key)
    if target.launcher.exists() and user_data_dir is None:
        target.launcher.unlink()
        removed.append(str(target.launcher))
    return removed


def xdg_config_home() -> Path | None:
    """$XDG_CONFIG_HOME, where Chromium-family browsers on Linux keep their profiles, if it is set."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg else None


def _local_plan(browsers: list[str], system: bool, user_data_dir: Path | None, platform: str) -> Plan:
    return plan(browsers, platform=platform, home=Path.home(), system=system, user_data_dir=user_data_dir,
                data_dir=paths.data_dir(), prefix=Path(sys.prefix), xdg_config_home=xdg_config_home())


def _is_ours(manifest: Path) -> bool:
    try:
        return json.loads(manifest.read_text()).get("name") == HOST_NAME
    except (OSError, ValueError, AttributeError):
        return False


def _split_key(key: str):
    import winreg  # Windows only
    hive, _, subkey = key.partition("\\")
    return {"HKCU": winreg.HKEY_CURRENT_USER, "HKLM": winreg.HKEY_LOCAL_MACHINE}[hive], subkey


def _set_registry_default(key: str, value: str) -> None:
    import winreg
    hive, subkey = _split_key(key)
    with winreg.CreateKeyEx(hive, subkey, 0, winreg.KEY_WRITE) as handle:
        winreg.SetValueEx(handle, "", 0, winreg.REG_SZ, value)


def _delete_registry_key(key: str) -> bool:
    if platform_name() != "windows":
        return False
    import winreg
    hive, subkey = _split_key(key)
    try:
        winreg.DeleteKey(hive, subkey)
        return True
    except FileNotFoundError:
        return False
