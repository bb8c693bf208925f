"""A local website with every way a real site takes photo uploads, recording every byte it receives.

Served by aiohttp on 127.0.0.1. Each page uploads to /upload (multipart) and the server keeps, per received file:
the page, the field's file name, its content type and the sha256 of its bytes. Dropzone and Uppy come from npm
(tests/e2e/package.json) and are served from node_modules.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

NODE_MODULES = Path(__file__).parent / "node_modules"

UPLOAD_SCRIPT = """
async function upload(file, how) {
  const body = new FormData();
  body.append("photo", file, file.name);
  const response = await fetch("/upload?page=" + encodeURIComponent(location.pathname), {method: "POST", body});
  document.body.dataset.uploaded = (Number(document.body.dataset.uploaded || 0) + 1).toString();
  window.seen = (window.seen || []).concat([{name: file.name, size: file.size, type: file.type, how,
                                             at: performance.now()}]);
  return response;
}
"""

PAGES = {
    "plain": """<h1>Plain input</h1><input id="file" type="file" accept="image/*,application/pdf" multiple>
<script>document.getElementById("file").addEventListener("change", (e) => {
  for (const file of e.target.files) upload(file, "input");
});</script>""",
    "form": """<h1>Classic form</h1>
<form id="form" action="/upload?page=/form" method="post" enctype="multipart/form-data">
  <input id="file" type="file" name="photo"><button id="send" type="submit">Send</button>
</form>""",
    "drop": """<h1>Drop zone</h1><div id="zone" style="width:400px;height:300px;border:3px dashed #555">Drop here</div>
<script>const zone = document.getElementById("zone");
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("drop", (e) => { e.preventDefault(); for (const f of e.dataTransfer.files) upload(f, "drop"); });
</script>""",
    "folder": """<h1>Folder drop</h1><div id="zone" style="width:400px;height:300px;border:3px dashed #555">Drop a folder</div>
<script>const zone = document.getElementById("zone");
const readAll = (reader) => new Promise((resolve) => reader.readEntries(resolve));
async function walk(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve) => entry.file(resolve));
    const body = new FormData();
    body.append("photo", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload?page=/folder");
    xhr.send(body);
    return;
  }
  const reader = entry.createReader();
  for (let batch = await readAll(reader); batch.length; batch = await readAll(reader)) {
    for (const child of batch) await walk(child);
  }
}
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  for (const item of e.dataTransfer.items) walk(item.webkitGetAsEntry());
});</script>""",
    "paste": """<h1>Paste</h1><textarea id="box">Paste a photo here</textarea>
<script>document.addEventListener("paste", (e) => {
  for (const f of e.clipboardData.files) { e.preventDefault(); upload(f, "paste"); }
});</script>""",
    "shadow": """<h1>Closed shadow root</h1><div id="host"></div>
<script>const root = document.getElementById("host").attachShadow({mode: "closed"});
root.innerHTML = '<label>Photo <input type="file"></label>';
const input = root.querySelector("input");
input.addEventListener("change", () => { for (const f of input.files) upload(f, "shadow"); });
window.closedInput = input;  // for the test to select a file: Playwright cannot reach into closed roots
</script>""",
    "shadow-two": """<h1>Two inputs in a closed shadow root</h1><div id="host"></div>
<script>const root = document.getElementById("host").attachShadow({mode: "closed"});
root.innerHTML = '<input id="a" type="file"><input id="b" type="file">';
for (const input of root.querySelectorAll("input")) {
  input.addEventListener("change", () => { for (const f of input.files) upload(f, "shadow-two"); });
}
window.secondInput = root.getElementById("b");
</script>""",
    "shadow-form": """<h1>A form in a closed shadow root</h1><div id="host"></div>
<script>const root = document.getElementById("host").attachShadow({mode: "closed"});
root.innerHTML = '<form action="/upload?page=/shadow-form" method="post" enctype="multipart/form-data">' +
  '<input type="file" name="photo"><button type="submit">Send</button></form>';
window.formInput = root.querySelector("input");
window.formButton = root.querySelector("button");
</script>""",
    "iframe": """<h1>Upload inside an iframe</h1><iframe id="frame" src="/plain" width="600" height="300"></iframe>""",
    "script": """<h1>Script upload</h1><button id="go">Upload the page's own photo</button>
<script>document.getElementById("go").addEventListener("click", async () => {
  const blob = await (await fetch("/photo.jpg")).blob();
  const xhr = new XMLHttpRequest();
  const body = new FormData();
  body.append("photo", new File([blob], "scripted.jpg", {type: "image/jpeg"}));
  xhr.open("POST", "/upload?page=/script");
  xhr.onload = () => { document.body.dataset.uploaded = "1"; };
  xhr.onerror = () => { document.body.dataset.failed = "1"; };
  xhr.send(body);
});</script>""",
    "form-script": """<h1>Form sent by a script</h1>
<form id="form" action="/upload?page=/form-script" method="post" enctype="multipart/form-data">
  <input id="file" type="file" name="photo"></form>
<button id="send" type="button" onclick="document.getElementById('form').submit()">Send</button>""",
    "cross-frame": """<h1>An iframe from another site</h1><iframe id="frame" width="600" height="300"></iframe>
<script>document.getElementById("frame").src = "http://127.0.0.1:" + location.port + "/plain";</script>""",
    "synthetic": """<h1>A script fakes a file selection</h1><input id="file" type="file">
<script>document.getElementById("file").addEventListener("change", (e) => upload(e.target.files[0], "synthetic"));
async function fake() {
  const blob = await (await fetch("/photo.jpg")).blob();
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], "faked.jpg", {type: "image/jpeg"}));
  const input = document.getElementById("file");
  input.files = transfer.files;
  input.dispatchEvent(new Event("input", {bubbles: true, composed: true}));
  input.dispatchEvent(new Event("change", {bubbles: true}));
}</script>""",
    "dropzone": """<h1>Dropzone</h1><link rel="stylesheet" href="/npm/dropzone/dist/dropzone.css">
<form id="dz" class="dropzone" action="/upload?page=/dropzone"></form>
<script src="/npm/dropzone/dist/dropzone-min.js"></script>
<script>Dropzone.autoDiscover = false;
const dz = new Dropzone("#dz", {paramName: "photo", url: "/upload?page=/dropzone"});
dz.on("success", () => { document.body.dataset.uploaded = "1"; });</script>""",
    "uppy": """<h1>Uppy</h1><link rel="stylesheet" href="/npm/uppy/dist/uppy.min.css"><div id="uppy"></div>
<script src="/npm/uppy/dist/uppy.min.js"></script>
<script>const uppy = new Uppy.Uppy({autoProceed: true})
  .use(Uppy.Dashboard, {inline: true, target: "#uppy"})
  .use(Uppy.XHRUpload, {endpoint: "/upload?page=/uppy", fieldName: "photo", formData: true});
uppy.on("complete", () => { document.body.dataset.uploaded = "1"; });</script>""",
}


@dataclass(frozen=True)
class Received:
    page: str
    name: str
    content_type: str
    sha256: str
    size: int


class UploadSite:
    """The site, run on its own thread and event loop; `received` lists every file that arrived."""

    def __init__(self, photo: Path):
        self.photo = photo
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self.port = 0

    async def _page(self, request: web.Request) -> web.Response:
        body = PAGES.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        html = f"<!doctype html><html><head><meta charset=utf-8><title>{request.match_info['name']}</title>" \
               f"<script>{UPLOAD_SCRIPT}</script></head><body>{body}</body></html>"
        return web.Response(text=html, content_type="text/html")

    async def _upload(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        count = 0
        async for part in reader:
            if part.filename is None:
                continue
            data = await part.read()
            with self._lock:
                self.received.append(Received(page=request.query.get("page", ""), name=part.filename,
                                              content_type=part.headers.get("Content-Type", ""),
                                              sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
            count += 1
        return web.json_response({"files": count})

    async def _photo(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.photo)

    def received_for(self, page: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.page == page]

    def start(self) -> "UploadSite":
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/photo.jpg", self._photo)
        app.router.add_static("/npm/", NODE_MODULES)
        app.router.add_get("/{name}", self._page)
        app.router.add_post("/upload", self._upload)
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown():
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
