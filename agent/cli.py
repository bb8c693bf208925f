"""The `isotopes` command line.

Every command that takes ``--json`` prints exactly one JSON document on stdout. Errors go to stderr with exit
code 1 (2 for usage errors). Nothing here ever prints the secret.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import io
import json
import os
import secrets
import sys
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from . import __version__, db, ledger, paths, vault
from .blending import perceptual_hash
from .marking import Marker
from .marks import presence, registry
from .marks.families import BASE_SIZE, DEFAULT_FAMILY, FAMILIES
from .settings import all_sites, check_alpha, get as site_settings, update as update_site
from .sitename import SiteError, site_of


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code 1."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except (CliError, vault.VaultError, SiteError, ValueError) as exc:
        print(f"isotopes: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("isotopes: interrupted", file=sys.stderr)
        return 130


# --- arguments ---------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isotopes", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"isotopes {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    def command(group, name, run, help_text):
        sub = group.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    def unlocking(sub):
        sub.add_argument("--passphrase-env", metavar="VAR",
                         help="read the vault passphrase from environment variable VAR instead of prompting")

    init = command(commands, "init", cmd_init, "create your vault (the secret all your marks come from)")
    unlocking(init)
    init.add_argument("--no-passphrase", action="store_true",
                      help="make a vault that opens without a passphrase (weaker: anyone who can read your files "
                           "can derive your marks)")

    mark = command(commands, "mark", cmd_mark, "blend your site's mark into photos")
    unlocking(mark)
    mark.add_argument("files", nargs="+", metavar="FILE", type=Path)
    mark.add_argument("--site", required=True, help="the site the photos are for (a domain or URL)")
    mark.add_argument("--out", type=Path, metavar="DIR",
                      help="write outputs here under their own names (default: NAME.marked.EXT beside each input)")
    mark.add_argument("--alpha", type=float, metavar="A", help="blend strength for this run (default: the site's)")
    mark.add_argument("--force", action="store_true", help="replace existing output files")
    mark.add_argument("--json", action="store_true")

    marks = commands.add_parser("marks", help="your marks: list, preview, rotate, import").add_subparsers(
        metavar="ACTION", required=True)
    mark_list = command(marks, "list", cmd_marks_list, "every mark issued, per site and epoch")
    mark_list.add_argument("--json", action="store_true")
    preview = command(marks, "preview", cmd_marks_preview, "write a site's current mark as a PNG for you to see")
    unlocking(preview)
    preview.add_argument("--site", required=True)
    preview.add_argument("--out", required=True, type=Path, metavar="FILE.png")
    rotate = command(marks, "rotate", cmd_marks_rotate, "start a new mark (epoch) for a site now")
    unlocking(rotate)
    rotate.add_argument("--site", required=True)
    rotate.add_argument("--json", action="store_true")
    imported = command(marks, "import", cmd_marks_import, "use your own image as a site's mark from now on")
    unlocking(imported)
    imported.add_argument("file", type=Path, metavar="IMAGE")
    imported.add_argument("--site", required=True)
    imported.add_argument("--json", action="store_true")

    sites = commands.add_parser("sites", help="where marking is on, and how strong").add_subparsers(
        metavar="ACTION", required=True)
    sites_list = command(sites, "list", cmd_sites_list, "the configured sites and their settings")
    sites_list.add_argument("--json", action="store_true")
    for name, run, text in (("enable", cmd_sites_enable, "mark uploads to this site from now on"),
                            ("disable", cmd_sites_disable, "stop marking uploads to this site")):
        command(sites, name, run, text).add_argument("site")
    site_set = command(sites, "set", cmd_sites_set, "change a site's marking settings")
    site_set.add_argument("site")
    site_set.add_argument("--alpha", type=float, metavar="A", help="blend strength, from 0.01 to 0.99")
    site_set.add_argument("--fraction", type=float, metavar="P", help="share of photos to mark, 0 to 1")
    site_set.add_argument("--rotation", type=_period, metavar="PERIOD", default=argparse.SUPPRESS,
                          help="start a new mark this often: e.g. 30d, 12h, 90m, or never")
    site_set.add_argument("--on-failure", choices=["block", "original"],
                          help="when a photo cannot be marked: block the upload, or let the original through")
    site_set.add_argument("--family", choices=sorted(FAMILIES),
                          help=f"the kind of mark; a change starts a new mark at the next upload "
                               f"(default {DEFAULT_FAMILY})")
    site_set.add_argument("--json", action="store_true")

    install = command(commands, "install-host", cmd_install_host,
                      "register the native messaging host with your browsers")
    install.add_argument("--browser", choices=["chrome", "chromium", "edge", "brave", "firefox", "all"],
                         action="append", help="which browser (repeatable; default: those found in your home)")
    install.add_argument("--user-data-dir", type=Path, metavar="DIR",
                         help="a Chromium-family browser started with --user-data-dir=DIR")
    install.add_argument("--system", action="store_true", help="for every user of this machine (needs root)")
    uninstall = command(commands, "uninstall-host", cmd_uninstall_host, "remove what install-host wrote")
    uninstall.add_argument("--user-data-dir", type=Path, metavar="DIR")
    uninstall.add_argument("--system", action="store_true")

    host = command(commands, "host", cmd_host, "the native messaging host (browsers start it; not for people)")
    host.add_argument("caller", nargs=argparse.REMAINDER, help="what the browser passes: the extension origin, "
                                                                 "or Firefox's manifest path and extension id")

    ledger_group = commands.add_parser("ledger", help="the record of every photo processed").add_subparsers(
        metavar="ACTION", required=True)
    ledger_list = command(ledger_group, "list", cmd_ledger_list, "list processed photos, newest first")
    ledger_list.add_argument("--site")
    ledger_list.add_argument("--limit", type=int)
    ledger_list.add_argument("--json", action="store_true")
    find = command(ledger_group, "find", cmd_ledger_find,
                   "is this file (or a resized / re-encoded copy of it) one we marked, and with which mark?")
    unlocking(find)
    find.add_argument("file", type=Path, metavar="FILE")
    find.add_argument("--json", action="store_true")

    check = command(commands, "verify", cmd_verify, "check whether a model was trained on your marked uploads")
    unlocking(check)
    check.add_argument("--model", required=True, metavar="SPEC",
                       help="onnx:PATH, torchscript:PATH (preprocessing from PATH's sidecar .json), or an "
                            "http(s):// URL with --api")
    check.add_argument("--api", metavar="CONFIG", help="the API config (JSON or TOML) of an http(s) model")
    check.add_argument("--aux", required=True, metavar="DIR",
                       help="real photos the model never saw with your marks (a hundred or more)")
    check.add_argument("--site", action="append", metavar="SITE", help="test this site's marks (repeatable)")
    check.add_argument("--all-sites", action="store_true", help="test the marks of every site (the default)")
    check.add_argument("--label", default="auto", metavar="J|auto",
                       help="the label your photos would get (name or index); auto: from --own, or found "
                            "on half of the aux images")
    check.add_argument("--own", metavar="DIR", help="your own unmarked photos, to find your label")
    check.add_argument("--level", type=float, default=0.05, help="false-positive rate allowed (default 0.05)")
    check.add_argument("--images", type=int, default=200, metavar="N", help="aux images to use at most")
    check.add_argument("--panel", type=int, default=99, metavar="K",
                       help="external marks to compare each mark with (default 99: smallest p = 1/100)")
    check.add_argument("--focus", type=_focus, default=5, metavar="N|all",
                       help="test each label on the N aux images the model leans to it most (default 5); all: "
                            "on every aux image (about 30 times the queries, for the same power where measured)")
    check.add_argument("--no-early-stop", action="store_true",
                       help="query every image even when the answer is already certain")
    check.add_argument("--paper-v", action="store_true",
                       help="also run the paper's test (two more queries per aux image and mark)")
    check.add_argument("--with", dest="physical_with", metavar="DIR",
                       help="photos showing a physical mark (with --without: the physical-mark test)")
    check.add_argument("--without", dest="physical_without", metavar="DIR", help="photos without it")
    check.add_argument("--report", type=Path, metavar="FILE.html", help="write the self-contained HTML report")
    check.add_argument("--json", action="store_true")
    return parser


# --- vault -------------------------------------------------------------------------------------------------

def _passphrase_from_env(args) -> str | None:
    if not getattr(args, "passphrase_env", None):
        return None
    value = os.environ.get(args.passphrase_env)
    if value is None:
        raise CliError(f"environment variable {args.passphrase_env} is not set")
    return value


def _unlock(args) -> vault.Vault:
    if not vault.is_protected():
        return vault.unlock(None)
    passphrase = _passphrase_from_env(args)
    if passphrase is None:
        if not sys.stdin.isatty():
            raise CliError("the vault needs its passphrase: run in a terminal or pass --passphrase-env VAR")
        passphrase = getpass.getpass("Vault passphrase: ")
    return vault.unlock(passphrase)


def cmd_init(args) -> None:
    if vault.exists():
        raise vault.VaultExists(f"a vault already exists at {paths.vault_file()}; refusing to replace it")
    if args.no_passphrase:
        if args.passphrase_env:
            raise CliError("--no-passphrase and --passphrase-env contradict each other")
        passphrase = None
    else:
        passphrase = _passphrase_from_env(args)
        if passphrase is None:
            if not sys.stdin.isatty():
                raise CliError("choose a passphrase: run in a terminal, or pass --passphrase-env VAR "
                               "(or --no-passphrase for a weaker vault)")
            passphrase = getpass.getpass("New vault passphrase: ")
            if getpass.getpass("Repeat it: ") != passphrase:
                raise CliError("the passphrases differ; nothing was created")
    created = vault.create(passphrase)
    print(f"Created your vault at {paths.vault_file()}")
    if not created.protected:
        print("warning: this vault has no passphrase: anyone who can read that file can derive your marks.",
              file=sys.stderr)
    print(f"Keep a backup of {paths.vault_dir()}: without it you cannot check models for your marks.")


# --- marking -----------------------------------------------------------------------------------------------

def _output_path(source: Path, out_dir: Path | None) -> Path:
    if out_dir is not None:
        return out_dir / source.name
    return source.with_name(f"{source.stem}.marked{source.suffix}")


def _stage(target: Path, data: bytes) -> Path:
    """Stage `data` beside `target` (fsynced); the caller renames it into place after recording."""
    staged = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    with open(staged, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return staged


def cmd_mark(args) -> int:
    site = site_of(args.site)
    if args.alpha is not None:
        try:
            check_alpha(args.alpha)
        except ValueError as exc:
            raise CliError(f"--alpha: {exc}") from None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    marker = Marker(_unlock(args), db.connect())
    results, failures = [], 0
    for source in args.files:
        target = _output_path(source, args.out)
        report = {"input": str(source), "output": None, "site": site}
        try:
            data = source.read_bytes()
        except OSError as exc:
            failures += 1
            results.append(report | {"status": "failed", "reason": f"cannot read: {exc.strerror}"})
            continue
        if target.resolve() == source.resolve():
            failures += 1
            results.append(report | {"status": "failed", "reason": f"the output would replace the input {source}"})
            continue
        outcome = marker.prepare(data, site, name=source.name, alpha=args.alpha)
        if outcome.data is not None:
            if target.exists() and not args.force and target.read_bytes() != outcome.data:
                failures += 1
                results.append(report | {"status": "failed", "reason": f"{target} exists (use --force to replace)"})
                continue
            staged = _stage(target, outcome.data)
            upload = marker.record(outcome)
            os.replace(staged, target)
            report["output"] = str(target)
        else:
            upload = marker.record(outcome)
            failures += 1
        results.append(report | {k: v for k, v in upload.to_json().items() if k not in ("site", "name")})
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for item in results:
            what = f"{item['status']:8} {item['input']}"
            if item["status"] == "marked":
                what += f" -> {item['output']}  (mark {item['mark_id']}, a = {item['alpha']:.2f})"
            elif item["output"]:
                what += f" -> {item['output']} unchanged: {item['reason']}"
            else:
                what += f": {item['reason']}"
            print(what)
    return 1 if failures else 0


# --- marks -------------------------------------------------------------------------------------------------

def cmd_marks_list(args) -> None:
    items = registry.summary(db.connect())
    if args.json:
        print(json.dumps(items, indent=1))
        return
    if not items:
        print("No marks yet: they are issued the first time you mark a photo for a site.")
        return
    print(f"{'site':28} {'epoch':>5}  {'family':10} {'since':25} {'uploads':>7}  mark id")
    for item in items:
        flag = "  (current)" if item["current"] else ""
        print(f"{item['site']:28} {item['epoch']:>5}  {item['family']:10} {item['started']:25} "
              f"{item['uploads']:>7}  {item['mark_id']}{flag}")


def cmd_marks_preview(args) -> None:
    site = site_of(args.site)
    conn = db.connect()
    key = _unlock(args)
    chosen = site_settings(conn, site)
    mark = registry.current(conn, key, site, chosen.family, chosen.rotation_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(registry.pixels(key, mark), "RGB").save(args.out, "PNG")
    print(f"Wrote the mark of {site} (epoch {mark.epoch}, id {mark.mark_id}, {BASE_SIZE}x{BASE_SIZE}) to {args.out}")
    print("It is blended into your photos at a strength of "
          f"{chosen.alpha:.2f}. Keep this file private: a mark should only leave your machine inside a photo.")


def cmd_marks_rotate(args) -> None:
    site = site_of(args.site)
    conn = db.connect()
    mark = registry.rotate(conn, _unlock(args), site, site_settings(conn, site).family)
    if args.json:
        print(json.dumps(mark.to_json()))
    else:
        print(f"{site} now uses a new mark: epoch {mark.epoch}, id {mark.mark_id}. Earlier marks stay verifiable.")


def cmd_marks_import(args) -> None:
    site = site_of(args.site)
    try:
        data = args.file.read_bytes()
        mark = registry.import_image(db.connect(), _unlock(args), site, data)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except UnidentifiedImageError:
        raise CliError(f"{args.file} is not an image") from None
    if args.json:
        print(json.dumps(mark.to_json()))
    else:
        print(f"{site} now uses your image as its mark: epoch {mark.epoch}, id {mark.mark_id} (stored encrypted).")


# --- sites -------------------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _period(text: str) -> int | None:
    """'30d', '12h', '90m', '3600s' or '2w' in seconds; 'never' / 'off' for no rotation."""
    text = text.strip().lower()
    if text in ("never", "off", "none"):
        return None
    try:
        value = float(text[:-1]) * _UNITS[text[-1]] if text[-1] in _UNITS else float(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a period like 30d, 12h, 90m or never") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the rotation period must be positive")
    return int(value)


def _print_site(entry, as_json: bool) -> None:
    if as_json:
        print(json.dumps(entry.to_json()))
        return
    rotation = "never" if entry.rotation_seconds is None else f"every {entry.rotation_seconds / 86400:g} days"
    print(f"{entry.site:28} {'on ' if entry.enabled else 'off'}  a = {entry.alpha:.2f}  {entry.family} marks on "
          f"{entry.fraction:.0%} of photos  new mark {rotation}  on failure: {entry.on_failure}")


def cmd_sites_list(args) -> None:
    entries = all_sites(db.connect())
    if args.json:
        print(json.dumps([entry.to_json() for entry in entries], indent=1))
    elif not entries:
        print("No sites configured: marking is off everywhere. Enable one with `isotopes sites enable SITE`.")
    for entry in [] if args.json else entries:
        _print_site(entry, False)


def cmd_sites_enable(args) -> None:
    _print_site(update_site(db.connect(), site_of(args.site), enabled=True), False)


def cmd_sites_disable(args) -> None:
    _print_site(update_site(db.connect(), site_of(args.site), enabled=False), False)


def cmd_sites_set(args) -> None:
    changes = {name: value for name, value in (("alpha", args.alpha), ("fraction", args.fraction),
                                               ("on_failure", args.on_failure), ("family", args.family))
               if value is not None}
    if hasattr(args, "rotation"):  # given: a period, or None for "never"
        changes["rotation_seconds"] = args.rotation
    if not changes:
        raise CliError("nothing to change: give --alpha, --fraction, --rotation, --on-failure or --family")
    _print_site(update_site(db.connect(), site_of(args.site), **changes), args.json)


# --- native messaging host ----------------------------------------------------------------------------------

def cmd_host(args) -> int:
    from .host.server import run
    return run(args.caller)


def cmd_install_host(args) -> None:
    from .host import install
    chosen = args.browser or []
    if "all" in chosen:
        browsers = list(install.BROWSERS)
    elif chosen:
        browsers = list(dict.fromkeys(chosen))
    elif args.user_data_dir:
        browsers = ["chromium"]
    else:
        browsers = install.detected_browsers(sys.platform, Path.home(), install.xdg_config_home())
        if not browsers:
            raise CliError("found no browser profile in your home: name one with --browser")
    try:
        written = install.install(browsers, system=args.system, user_data_dir=args.user_data_dir)
    except PermissionError as exc:
        raise CliError(f"cannot write {exc.filename}: --system needs root") from None
    print(f"Launcher: {written.launcher}")
    for manifest in written.manifests:
        print(f"Manifest: {manifest}")
    for key, manifest in written.registry.items():
        print(f"Registry: {key} = {manifest}")
    for note in install.sandbox_notes(Path.home()):
        print(f"note: {note}")


def cmd_uninstall_host(args) -> None:
    from .host import install
    removed = install.uninstall(system=args.system, user_data_dir=args.user_data_dir)
    print("\n".join(f"Removed {item}" for item in removed) if removed else "Nothing to remove.")


# --- ledger ------------------------------------------------------------------------------------------------

def cmd_ledger_list(args) -> None:
    site = site_of(args.site) if args.site else None
    rows = ledger.uploads(db.connect(), site=site, limit=args.limit)
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=1))
        return
    if not rows:
        print("The ledger is empty.")
        return
    for row in rows:
        detail = f"mark {row.mark_id} a={row.alpha:.2f} {row.width}x{row.height} {row.format}" \
            if row.status == "marked" else row.reason
        print(f"{row.id:>6} {row.time} {row.site:24} {row.status:8} {row.name or '-':30} {detail}")


def cmd_ledger_find(args) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    image = None
    try:
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        pass
    conn = db.connect()
    matches = ledger.find(conn, hashlib.sha256(data).hexdigest(), perceptual_hash(image) if image else None)
    key = None
    if image is not None and any(match.kind == "similar" for match in matches):
        try:
            key = _unlock(args)
        except CliError as exc:  # no passphrase available: report the matches without the mark check
            print(f"isotopes: note: {exc}; not checking for the mark itself", file=sys.stderr)
    items = []
    for match in matches:
        item = {"kind": match.kind, "distance": match.distance, "upload": match.upload.to_json(),
                "mark_present": None, "correlation": None}
        if match.kind == "similar" and key is not None:
            mark = registry.by_id(conn, match.upload.mark_id)
            found = presence.check(image, registry.pixels(key, mark), mark.family)
            item.update(mark_present=found.present, correlation=round(found.correlation, 4))
        items.append(item)
    verdict = _find_verdict(items)
    if args.json:
        print(json.dumps({"file": str(args.file), "verdict": verdict, "matches": items}, indent=1))
    else:
        print(f"{args.file}: {verdict}")
        for item in items:
            upload = item["upload"]
            extra = "" if item["mark_present"] is None else \
                f", mark {'found' if item['mark_present'] else 'not found'} (correlation {item['correlation']})"
            print(f"  {item['kind']:8} upload #{upload['id']} {upload['time']} {upload['site']} "
                  f"mark {upload['mark_id']} (pHash distance {item['distance']}{extra})")
    return 0 if verdict.startswith("marked") else 1


def _find_verdict(items: list[dict]) -> str:
    kinds = {item["kind"] for item in items}
    if "exact" in kinds:
        return "marked: byte-identical to a photo we marked"
    if any(item["mark_present"] for item in items):
        return "marked: a resized or re-encoded copy of a photo we marked, and it carries the mark"
    if "original" in kinds:
        return "not marked: this is the original of a photo we marked"
    if any(item["mark_present"] is None for item in items):
        return "probably marked: it looks like a photo we marked (unlock the vault to check for the mark)"
    if items:
        return "not marked: it looks like a photo we marked, but it does not carry the mark (the original?)"
    return "not found: no photo we marked looks like this"



# --- verification ------------------------------------------------------------------------------------------

def _focus(text: str) -> int | None:
    """--focus: a number of images, or "all"."""
    if text == "all":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive number of images or 'all', got {text!r}")


def cmd_verify(args) -> None:
    from .verify import report, session  # torch and onnxruntime load only for this command

    if args.site and args.all_sites:
        raise CliError("--site and --all-sites contradict each other")
    request = session.Request(
        model=args.model, api_config=args.api, aux=args.aux,
        sites=tuple(site_of(site) for site in args.site) if args.site else None, label=args.label, own=args.own,
        level=args.level, images=args.images, panel_size=args.panel, focus=args.focus,
        sequential=not args.no_early_stop, paper_v=args.paper_v,
        physical_with=args.physical_with, physical_without=args.physical_without)
    secret = _unlock(args)
    progress = _ProgressBar() if sys.stderr.isatty() else None
    document = session.run(request, secret, progress=progress)
    if progress:
        progress.close()
    if args.report:
        os.replace(_stage(args.report, report.render_html(document).encode()), args.report)
    if args.json:
        print(json.dumps(document, indent=1))
        return
    print(report.summary_sentence(document))
    for result in document["results"]:
        if result["p_value"] is None:
            print(f"  {result['site']} (epoch {result['epoch']}): {result['note']}")
            continue
        verdict = "DETECTED" if result["detected"] else "not detected"
        print(f"  {result['site']} (epoch {result['epoch']}, label {result['label']}): {verdict}, "
              f"p = {result['p_value']:.3g}, adjusted {result['p_adjusted']:.3g}")
    print(f"{document['queries']} queries ({document['images']} aux images read, {document['images_tested']} of "
          "them with the marks"
          + (", stopped early: the rest could not change the answer" if document["stopped_early"] else "") + ")")
    if args.report:
        print(f"Report: {args.report}")


class _ProgressBar:
    """One self-rewriting line on a terminal's stderr."""

    WIDTH = 30

    def __call__(self, event: dict) -> None:
        done, total = event["images_done"], max(event["images_total"], 1)
        filled = self.WIDTH * event["queries"] // max(event["queries_planned"], 1)  # moves at every model call
        print(f"\r{event['phase']:>16} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} images, "
              f"{event['queries']} queries", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
