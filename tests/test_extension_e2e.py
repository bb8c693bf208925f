"""The real extension in real headless Chromium, with the real agent as its native host, uploading real photos
to a local test site. The decisive check is on the bytes the site received: their sha256 is the ledger's
sha256_out for that upload, and differs from the original's."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from PIL import Image

from conftest import encode, real_photo, run_cli
from e2e.upload_site import UploadSite

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "extension"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--disable-extensions-except={EXTENSION}",
         f"--load-extension={EXTENSION}"]
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(condition, timeout: float = 30.0, what: str = "the upload"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Browser:
    """Chromium with the extension, an agent home with a vault, and the upload site."""

    def __init__(self, playwright, home: Path, profile: Path, site: UploadSite, photos: Path):
        self.home, self.site, self.photos = home, site, photos
        self.context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM,
                                                                     headless=True, args=FLAGS)

    def url(self, page: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.site.port}/{page}"

    def open(self, page: str, host: str = "127.0.0.1"):
        tab = self.context.new_page()
        tab.goto(self.url(page, host))
        return tab

    def photo(self, name: str, source: str = "GreenMeadow") -> Path:
        """A real photo under a file name unique to the test."""
        path = self.photos / name
        path.write_bytes(real_photo(source).read_bytes())
        return path

    def ledger_row(self, name: str):
        conn = sqlite3.connect(self.home / "isotopes.db")
        return conn.execute("SELECT status, sha256_in, sha256_out, site FROM uploads WHERE name = ? "
                            "ORDER BY id DESC", (name,)).fetchone()

    def received(self, page: str, name: str):
        return wait_for(lambda: next((item for item in self.site.received_for(page) if item.name == name), None),
                        what=f"{name} to arrive at {page}")

    def assert_marked(self, page: str, path: Path):
        arrived = self.received(page, path.name)
        time.sleep(0.3)  # a second copy would arrive about now
        assert len([item for item in self.site.received_for(page) if item.name == path.name]) == 1
        row = self.ledger_row(path.name)
        assert row is not None, f"no ledger row for {path.name}"
        status, sha_in, sha_out, site = row
        assert (status, site, sha_in) == ("marked", "127.0.0.1", sha256(path.read_bytes()))
        assert arrived.sha256 == sha_out != sha_in
        assert arrived.content_type == "image/jpeg"

    def service_worker(self):
        workers = self.context.service_workers
        return workers[0] if workers else self.context.wait_for_event("serviceworker", timeout=30_000)


@pytest.fixture(scope="module")
def site():
    upload_site = UploadSite(real_photo("GreenMeadow")).start()
    yield upload_site
    upload_site.stop()


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api", reason="scripts/test installs playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: scripts/test installs Debian's chromium")
    instance = sync_api.sync_playwright().start()
    yield instance
    instance.stop()


def start_browser(playwright, tmp_path_factory, site, on_failure: str = "block", passphrase: str | None = None):
    home = tmp_path_factory.mktemp("home")
    previous = os.environ.get("ISOTOPES_HOME")
    os.environ["ISOTOPES_HOME"] = str(home)
    if passphrase:
        run_cli("init", "--passphrase-env", "PW", env={"PW": passphrase})
    else:
        run_cli("init", "--no-passphrase")
    run_cli("sites", "enable", "127.0.0.1")
    run_cli("sites", "set", "127.0.0.1", "--on-failure", on_failure)
    profile = tmp_path_factory.mktemp("profile")
    run_cli("install-host", "--user-data-dir", str(profile))
    browser = Browser(playwright, home, profile, site, tmp_path_factory.mktemp("photos"))
    browser.profile = profile

    def stop():
        browser.context.close()
        if previous is None:
            os.environ.pop("ISOTOPES_HOME", None)
        else:
            os.environ["ISOTOPES_HOME"] = previous
    return browser, stop


@pytest.fixture(scope="module")
def browser(playwright, tmp_path_factory, site):
    running, stop = start_browser(playwright, tmp_path_factory, site)
    yield running
    stop()


# --- every route a real site uses ----------------------------------------------------------------------------

def test_plain_input_and_fetch(browser):
    photo = browser.photo("plain.jpg")
    browser.open("plain").set_input_files("#file", str(photo))
    browser.assert_marked("/plain", photo)


def test_classic_form_submitted_while_the_photo_is_still_being_marked(browser):
    photo = browser.photo("form.jpg", "Wood")
    tab = browser.open("form")
    tab.set_input_files("#file", str(photo))
    tab.click("#send")  # at once: the extension holds the submit until the marked photo is in place
    browser.assert_marked("/form", photo)


def test_a_form_held_for_a_photo_that_then_fails_is_not_sent_at_all(browser):
    # A real damaged photo: a 24 MP JPEG cut short. The agent takes seconds to decode it before it finds the
    # damage, so the send below lands while the photo is still being marked, and the extension holds it.
    with Image.open(real_photo("Wood")) as source:
        large = source.convert("RGB").resize((6000, 4000), Image.Resampling.BILINEAR)
    whole = encode(large, "JPEG", quality=90)
    damaged = browser.photos / "cut-short.jpg"
    damaged.write_bytes(whole[:int(len(whole) * 0.9)])
    tab = browser.open("form")
    sent_before = len(browser.site.received_for("/form"))
    tab.set_input_files("#file", str(damaged))
    tab.click("#send")
    tab.wait_for_selector("isotopes-notice", state="attached", timeout=60_000)
    status = wait_for(lambda: browser.ledger_row(damaged.name), what="the failed upload's ledger row")[0]
    assert status == "failed"
    time.sleep(1.0)  # a form let through would have arrived by now
    # the site's fail-safe is "block": the held form is dropped, not sent without the photo
    assert len(browser.site.received_for("/form")) == sent_before


def drop_files(browser, tab, selector: str, paths: list[Path]) -> None:
    """A real, trusted drop of files from disk, through DevTools' Input.dispatchDragEvent."""
    box = tab.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = browser.context.new_cdp_session(tab)
    data = {"items": [], "files": [str(path) for path in paths], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})


def test_drag_and_drop_of_a_real_file(browser):
    photo = browser.photo("dropped.jpg")
    tab = browser.open("drop")
    drop_files(browser, tab, "#zone", [photo])
    browser.assert_marked("/drop", photo)


def test_dropzone_widget_by_drop(browser):
    photo = browser.photo("dropzone-dropped.jpg")
    tab = browser.open("dropzone")
    drop_files(browser, tab, "#dz", [photo])
    browser.assert_marked("/dropzone", photo)


def test_paste_from_the_clipboard(browser):
    """A real, trusted paste: the photo goes onto the browser's clipboard, then Ctrl+V. Chromium hands images
    from the clipboard to pages as PNG, so the photo arrives as a marked PNG."""
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"])
    photo = browser.photo("pasted.png")
    photo.write_bytes(encode(Image.open(real_photo("GreenMeadow")).reduce(4), "PNG"))
    tab = browser.open("paste")
    tab.evaluate("""async (data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        await navigator.clipboard.write([new ClipboardItem({"image/png": new Blob([bytes], {type: "image/png"})})]);
    }""", base64.b64encode(photo.read_bytes()).decode())
    tab.focus("#box")
    tab.keyboard.press("Control+V")
    arrived = wait_for(lambda: next(iter(browser.site.received_for("/paste")), None), what="the pasted photo")
    conn = sqlite3.connect(browser.home / "isotopes.db")
    status, sha_out, fmt = conn.execute("SELECT status, sha256_out, format FROM uploads ORDER BY id DESC").fetchone()
    assert (status, fmt, arrived.content_type) == ("marked", "PNG", "image/png") and arrived.sha256 == sha_out


def test_input_in_a_closed_shadow_root(browser):
    photo = browser.photo("shadow.jpg")
    tab = browser.open("shadow")
    tab.evaluate_handle("window.closedInput").as_element().set_input_files(str(photo))
    browser.assert_marked("/shadow", photo)


def test_the_second_of_two_inputs_in_a_closed_shadow_root(browser):
    photo = browser.photo("second-input.jpg")
    tab = browser.open("shadow-two")
    tab.evaluate_handle("window.secondInput").as_element().set_input_files(str(photo))
    browser.assert_marked("/shadow-two", photo)


def test_a_form_in_a_shadow_root_waits_for_the_marked_photo(browser):
    photo = browser.photo("shadow-form.jpg", "Wood")
    tab = browser.open("shadow-form")
    tab.evaluate_handle("window.formInput").as_element().set_input_files(str(photo))
    tab.evaluate("window.formButton.click()")  # at once, while marking
    browser.assert_marked("/shadow-form", photo)


def test_input_in_an_iframe(browser):
    photo = browser.photo("framed.jpg")
    tab = browser.open("iframe")
    tab.frame_locator("#frame").locator("#file").set_input_files(str(photo))
    browser.assert_marked("/plain", photo)


def test_dropzone_widget(browser):
    photo = browser.photo("dropzone.jpg")
    tab = browser.open("dropzone")
    tab.set_input_files(".dz-hidden-input", str(photo))
    browser.assert_marked("/dropzone", photo)


def test_uppy_dashboard_with_xhr_upload(browser):
    photo = browser.photo("uppy.jpg")
    tab = browser.open("uppy")
    tab.locator("input.uppy-Dashboard-input").first.set_input_files(str(photo))
    browser.assert_marked("/uppy", photo)


def test_an_iframe_from_an_enabled_site_inside_another_site(browser):
    """An upload goes to the frame's site, so the frame's site decides: marked here although the page around
    it (localhost) is not enabled."""
    photo = browser.photo("cross-frame.jpg")
    tab = browser.open("cross-frame", host="localhost")
    tab.frame_locator("#frame").locator("#file").set_input_files(str(photo))
    browser.assert_marked("/plain", photo)


def test_a_form_sent_by_a_script_waits_for_the_marked_photo(browser):
    photo = browser.photo("form-script.jpg", "Wood")
    tab = browser.open("form-script")
    tab.set_input_files("#file", str(photo))
    tab.click("#send")  # form.submit() at once: no submit event to hold, the page-world guard makes it wait
    browser.assert_marked("/form-script", photo)


def test_a_form_held_for_one_selection_sends_the_newer_one(browser):
    first, second = browser.photo("held-first.jpg", "Wood"), browser.photo("held-second.jpg", "Aqua")
    tab = browser.open("form")
    tab.set_input_files("#file", str(first))
    tab.click("#send")  # held while the first photo is marked
    tab.set_input_files("#file", str(second))  # then the user changes their mind
    browser.assert_marked("/form", second)
    assert not [item for item in browser.site.received_for("/form") if item.name == first.name or item.size == 0]


def test_a_newer_selection_supersedes_one_still_being_marked(browser):
    first, second = browser.photo("first-choice.jpg", "Wood"), browser.photo("second-choice.jpg", "Aqua")
    tab = browser.open("plain")
    tab.set_input_files("#file", str(first))
    tab.set_input_files("#file", str(second))
    browser.assert_marked("/plain", second)
    time.sleep(1.0)
    assert not [item for item in browser.site.received_for("/plain") if item.name == first.name]
    assert tab.evaluate("document.getElementById('file').files[0].name") == second.name


# --- what must pass untouched --------------------------------------------------------------------------------

def test_a_site_not_enabled_gets_the_original_bytes(browser):
    photo = browser.photo("elsewhere.jpg")
    browser.open("plain", host="localhost").set_input_files("#file", str(photo))
    arrived = browser.received("/plain", "elsewhere.jpg")
    assert arrived.sha256 == sha256(photo.read_bytes()) and browser.ledger_row("elsewhere.jpg") is None


def test_a_pdf_passes_untouched(browser):
    document = browser.photos / "notes.pdf"
    document.write_bytes(PDF)
    browser.open("plain").set_input_files("#file", str(document))
    arrived = browser.received("/plain", "notes.pdf")
    assert arrived.sha256 == sha256(PDF) and browser.ledger_row("notes.pdf") is None


def test_a_selection_faked_by_a_script_is_not_marked(browser):
    """Only the user's own actions count: a page that puts its own image in an input and fires change would
    otherwise get the user's mark blended into an image it knows, and could read the mark back out."""
    tab = browser.open("synthetic")
    tab.evaluate("fake()")
    arrived = browser.received("/synthetic", "faked.jpg")
    assert arrived.sha256 == sha256(real_photo("GreenMeadow").read_bytes())
    assert browser.ledger_row("faked.jpg") is None


def dropped_folder(browser, tmp_path, name: str) -> tuple[Path, list[Path]]:
    folder = tmp_path / name
    (folder / "inner").mkdir(parents=True)
    photos = [folder / f"{name}-beach.jpg", folder / "inner" / f"{name}-dune.jpg"]
    photos[0].write_bytes(real_photo("Aqua").read_bytes())
    photos[1].write_bytes(real_photo("Dune").read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    return folder, photos


@pytest.mark.parametrize("page, zone", [("folder", "#zone"), ("dropzone", "#dz")])
def test_a_dropped_folder_is_blocked_not_uploaded_unmarked(browser, tmp_path, page, zone):
    """A re-sent drop cannot carry a folder's entries, so its photos cannot be swapped: the fail-safe (block,
    on this site) stops the drop, where the page would otherwise walk the folder and upload the originals."""
    folder, photos = dropped_folder(browser, tmp_path, f"{page}-trip")
    tab = browser.open(page)
    drop_files(browser, tab, zone, [folder])
    tab.wait_for_selector("isotopes-notice", state="attached")
    time.sleep(1.0)
    arrived = {item.name for item in browser.site.received_for(f"/{page}")}
    assert not arrived & {photo.name for photo in photos}


def test_an_image_the_page_made_itself_is_not_marked(browser):
    """Marking page-made images would let a page blend the mark into a known image and read it back."""
    tab = browser.open("script")
    tab.click("#go")
    arrived = browser.received("/script", "scripted.jpg")
    assert arrived.sha256 == sha256(real_photo("GreenMeadow").read_bytes())
    assert browser.ledger_row("scripted.jpg") is None


def test_two_tabs_uploading_at_once(browser):
    photos = [browser.photo("tab-one.jpg", "Aqua"), browser.photo("tab-two.jpg", "Storm")]
    tabs = [browser.open("plain"), browser.open("plain")]
    for tab, photo in zip(tabs, photos):
        tab.set_input_files("#file", str(photo))
    for photo in photos:
        browser.assert_marked("/plain", photo)


def test_the_badge_counts_marked_uploads(browser):
    photo = browser.photo("badge.jpg")
    tab = browser.open("plain?badge")  # a URL of its own, so the badge read below is this tab's
    tab.set_input_files("#file", str(photo))
    browser.assert_marked("/plain", photo)
    badge = browser.service_worker().evaluate("""async (url) => {
        const [tab] = await chrome.tabs.query({url});
        return chrome.action.getBadgeText({tabId: tab.id});
    }""", tab.url)
    assert badge == "1"


# --- the agent missing: each fail-safe choice ----------------------------------------------------------------

def make_agent_missing(browser):
    """Remove the host manifest and end the running host: the browser can no longer reach the agent."""
    run_cli("uninstall-host", "--user-data-dir", str(browser.profile))
    found = subprocess.run(["pgrep", "-f", "agent.cli host"], capture_output=True, text=True).stdout.split()
    for pid in found:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("choice", ["block", "original"])
def test_agent_missing(playwright, tmp_path_factory, site, choice):
    running, stop = start_browser(playwright, tmp_path_factory, site, on_failure=choice)
    try:
        tab = running.open("plain")
        wait_for(lambda: running.service_worker().evaluate(
            "async () => ((await chrome.storage.local.get('sites')).sites || []).length") > 0,
            what="the extension to learn the site settings")
        make_agent_missing(running)
        photo = running.photo(f"missing-{choice}.jpg")
        tab.set_input_files("#file", str(photo))
        if choice == "original":
            arrived = running.received("/plain", photo.name)
            assert arrived.sha256 == sha256(photo.read_bytes())  # the original, as the user chose
        else:
            notice = wait_for(lambda: tab.evaluate("document.querySelector('isotopes-notice') !== null"),
                              what="the blocked-upload notice")
            assert notice
            time.sleep(1.0)
            assert not [item for item in site.received_for("/plain") if item.name == photo.name]
        badge = running.service_worker().evaluate("""async (url) => {
            const [tab] = await chrome.tabs.query({url});
            return chrome.action.getBadgeText({tabId: tab.id});
        }""", tab.url)
        assert badge == "!"  # never silent
    finally:
        stop()


# --- the popup and the options page --------------------------------------------------------------------------

EXTENSION_URL = "chrome-extension://ddkjkfngibhilagmalffkhhcmjaajpfp"


def tab_id(browser, url: str) -> int:
    return browser.service_worker().evaluate("async (url) => (await chrome.tabs.query({url}))[0].id", url)


def test_popup_shows_the_agent_and_turns_a_site_on_and_off(browser, tmp_path):
    page = browser.open("plain", host="localhost")
    popup = browser.context.new_page()
    popup.goto(f"{EXTENSION_URL}/popup/popup.html?tab={tab_id(browser, page.url)}")
    popup.wait_for_selector("#toggle-site")
    assert "Connected to agent" in popup.text_content("#agent-status")
    assert "vault unlocked" in popup.text_content("#agent-status")
    assert "localhost" in popup.text_content("#site-name") and "off" in popup.text_content("#site-name")
    for _ in range(10):  # the toggle is reachable with the keyboard alone
        popup.keyboard.press("Tab")
        if popup.evaluate("document.activeElement.id") == "toggle-site":
            break
    assert popup.evaluate("document.activeElement.id") == "toggle-site"
    popup.keyboard.press("Enter")
    popup.wait_for_selector("#site-name:has-text('marking is on')")
    assert run_cli("sites", "list", "--json").stdout.count('"localhost"') == 1
    assert "true" in popup.get_attribute("#toggle-site", "aria-pressed")
    popup.screenshot(path=str(tmp_path / "popup.png"))
    popup.click("#toggle-site")
    popup.wait_for_selector("#site-name:has-text('marking is off')")


def test_options_page_sets_strength_rotation_fail_safe_and_previews(browser):
    options = browser.context.new_page()
    options.goto(f"{EXTENSION_URL}/options/options.html")
    options.wait_for_selector("tr[data-site='127.0.0.1']")
    options.fill("#new-site", "https://www.flickr.com/photos/upload")
    options.click("#add-site button")
    row = options.wait_for_selector("tr[data-site='flickr.com']")
    row.query_selector("select[aria-label^='New mark']").select_option(label="every 90 days")
    options.wait_for_selector("tr[data-site='flickr.com']")
    options.locator("tr[data-site='flickr.com'] select[aria-label^='If a photo']").select_option("original")
    options.locator("tr[data-site='flickr.com'] input[type=range]").evaluate(
        "(slider) => { slider.value = '0.45'; slider.dispatchEvent(new Event('change')); }")
    settings = wait_for(lambda: next((entry for entry in json.loads(
        run_cli("sites", "list", "--json").stdout) if entry["site"] == "flickr.com" and entry["alpha"] == 0.45),
        None), what="the settings to reach the agent")
    assert settings["enabled"] and settings["rotation_seconds"] == 90 * 86400 and settings["on_failure"] == "original"
    options.select_option("#preview-site", "flickr.com")
    options.wait_for_selector("#preview-after[src^='data:image/jpeg']")
    assert "flickr.com" in options.text_content("#preview-caption")
    options.set_viewport_size({"width": 640, "height": 900})  # what a 1280 px window shows at 200% zoom
    assert options.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_a_locked_vault_blocks_until_the_popup_unlocks_it(playwright, tmp_path_factory, site):
    running, stop = start_browser(playwright, tmp_path_factory, site, passphrase="our long passphrase")
    try:
        form = running.open("form")
        locked = running.photo("while-locked.jpg")
        form.set_input_files("#file", str(locked))
        # the agent answers "locked" at once: the photo is taken out of the input and the page says so (a send
        # clicked before that answer is held; the test waits for it, or the page would navigate away with the
        # notice)
        form.wait_for_selector("isotopes-notice", state="attached")
        form.click("#send")  # the form goes out without the photo
        time.sleep(0.5)
        assert all(item.name != locked.name for item in running.site.received_for("/form"))
        tab = running.open("plain")
        popup = running.context.new_page()
        popup.goto(f"{EXTENSION_URL}/popup/popup.html?tab={tab_id(running, tab.url)}")
        popup.wait_for_selector("#unlock-form:not([hidden])")
        assert "vault locked" in popup.text_content("#agent-status")
        popup.fill("#passphrase", "not it")
        popup.keyboard.press("Enter")
        popup.wait_for_selector("#unlock-error:has-text('not right')")
        popup.fill("#passphrase", "our long passphrase")
        popup.keyboard.press("Enter")
        popup.wait_for_selector("#agent-status:has-text('vault unlocked')")
        assert popup.is_hidden("#unlock-form")
        unlocked = running.photo("after-unlock.jpg")
        tab.set_input_files("#file", str(unlocked))
        running.assert_marked("/plain", unlocked)
    finally:
        stop()
