"""Who may talk to the host: the Isotopes extension, identified by what the browser passes on the command line.

Chromium-family browsers start the host as ``[host, "chrome-extension://ID/"]`` (Windows adds a
``--parent-window`` argument); Firefox as ``[host, MANIFEST_PATH, EXTENSION_ID]``.
"""

from __future__ import annotations

CHROMIUM_EXTENSION_ID = "ddkjkfngibhilagmalffkhhcmjaajpfp"
"""Derived from the public key committed in extension/manifest.json (tests check that they agree)."""
FIREFOX_EXTENSION_ID = "isotopes@isotopes.invalid"
HOST_NAME = "org.isotopes.agent"
"""The native messaging host name the extension connects to."""


def chromium_origin(extension_id: str = CHROMIUM_EXTENSION_ID) -> str:
    return f"chrome-extension://{extension_id}/"


def identify(argv: list[str]) -> tuple[str | None, bool]:
    """(the caller as the browser named it, whether it is allowed) from the host's arguments."""
    for argument in argv:
        if argument.startswith("chrome-extension://"):
            return argument, argument.rstrip("/") == chromium_origin().rstrip("/")
    positional = [argument for argument in argv if not argument.startswith("--")]
    if len(positional) >= 2:  # Firefox: manifest path, extension id
        return positional[1], positional[1] == FIREFOX_EXTENSION_ID
    return None, False
