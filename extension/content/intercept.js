// Catches photo uploads on sites the user enabled and swaps each photo for its marked copy before the page
// sees it: file inputs (also in shadow roots, open or closed), drag and drop, paste, forms submitted while a
// photo is still being marked, and uploads the page-world backstop (backstop.js) hands over.
// Runs in the isolated world at document_start, in every frame.
"use strict";

(() => {
  const {isImageFile, bytesToBase64, base64ToBytes, sha256Hex} = globalThis.Isotopes;

  // --- is marking on here? -----------------------------------------------------------------------------------

  let site; // the enabled site's settings, or null; undefined until the background answers
  const siteKnown = chrome.runtime.sendMessage({type: "site-status", url: location.href})
    .then((reply) => { site = reply && reply.ok ? reply.data.site : null; })
    .catch(() => { site = null; });

  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && changes.sites) {
      chrome.runtime.sendMessage({type: "site-status", url: location.href})
        .then((reply) => { site = reply && reply.ok ? reply.data.site : null; });
    }
  });

  // Whether to hold an upload: marking is on here, or we do not know yet (then we wait and decide).
  function mayMark(files) {
    return site !== null && files.some(isImageFile);
  }

  // --- marking one file --------------------------------------------------------------------------------------

  const producedHashes = new Set(); // sha256 of the marked files this page received from the agent

  async function askAgent(file) {
    const image = bytesToBase64(new Uint8Array(await file.arrayBuffer()));
    try {
      return await chrome.runtime.sendMessage({type: "mark", image, name: file.name, mime: file.type});
    } catch (error) {
      return {ok: false, error: {code: "agent_unavailable", message: String(error.message || error)}};
    }
  }

  // -> {file, marked} with the file to upload, or {file: null, reason} when the fail-safe blocks it.
  async function markFile(file) {
    if (!isImageFile(file)) return {file, marked: false};
    const reply = await askAgent(file);
    if (reply && reply.ok) {
      if (reply.data.status !== "marked") return {file, marked: false}; // the site marks only a fraction
      producedHashes.add(reply.data.sha256_out);
      const marked = new File([base64ToBytes(reply.data.image)], file.name,
                              {type: file.type, lastModified: file.lastModified});
      return {file: marked, marked: true};
    }
    const reason = reply && reply.error ? reply.error.message : "the extension lost its background page";
    const choice = site && site.on_failure === "original" ? "original" : "block";
    chrome.runtime.sendMessage({type: "fail-safe", choice, name: file.name, reason}).catch(() => {});
    if (choice === "original") return {file, marked: false, reason};
    return {file: null, reason};
  }

  // Marks what needs marking in `files`; -> {files (to upload, order kept), blocked: [{name, reason}]}.
  async function markFiles(files) {
    await siteKnown;
    if (!site) return {files, blocked: []};
    const results = await Promise.all(files.map(markFile));
    return {files: results.filter((result) => result.file).map((result) => result.file),
            blocked: results.map((result, index) => ({name: files[index].name, result}))
              .filter((entry) => !entry.result.file)
              .map((entry) => ({name: entry.name, reason: entry.result.reason}))};
  }

  function fileList(files) {
    const transfer = new DataTransfer();
    for (const file of files) transfer.items.add(file);
    return transfer;
  }

  // --- telling the user ----------------------------------------------------------------------------------------

  function showBlocked(blocked) {
    const host = document.createElement("isotopes-notice");
    const root = host.attachShadow({mode: "closed"});
    const box = document.createElement("div");
    box.setAttribute("role", "alert");
    box.style.cssText = "position:fixed;z-index:2147483647;bottom:1rem;right:1rem;max-width:28rem;padding:1rem;" +
      "background:#fff;color:#1c1b1f;border:2px solid #b3261e;border-radius:.5rem;font:1rem/1.4 system-ui,sans-serif;" +
      "box-shadow:0 .25rem 1rem rgba(0,0,0,.3)";
    const names = blocked.map((entry) => entry.name).join(", ");
    box.textContent = `Isotopes blocked ${names}: it could not be marked (${blocked[0].reason}). ` +
      "Nothing was uploaded. Open the Isotopes popup to fix this, or let originals through for this site.";
    root.append(box);
    (document.body || document.documentElement).append(host);
    setTimeout(() => host.remove(), 12000);
  }

  // --- forms submitted while a photo is being marked -----------------------------------------------------------

  const pendingByForm = new Map(); // form -> Set of promises
  const resubmitting = new WeakSet();

  function trackForm(form, promise) {
    if (!form) return;
    const pending = pendingByForm.get(form) || new Set();
    pending.add(promise);
    pendingByForm.set(form, pending);
    promise.finally(() => {
      pending.delete(promise);
      if (!pending.size) pendingByForm.delete(form);
    });
  }

  window.addEventListener("submit", (event) => {
    const form = event.target;
    if (resubmitting.has(form)) return;
    const pending = pendingByForm.get(form);
    if (!pending || !pending.size) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const submitter = event.submitter;
    Promise.allSettled([...pending]).then(() => {
      resubmitting.add(form);
      try {
        form.requestSubmit(submitter && submitter.isConnected && submitter.form === form ? submitter : undefined);
      } finally {
        resubmitting.delete(form);
      }
    });
  }, true);

  // --- file inputs ---------------------------------------------------------------------------------------------

  const ourEvents = new WeakSet();
  const inputState = new WeakMap(); // input -> {files: the FileList being handled, done: bool}
  const hookedRoots = new WeakSet();

  function isFileInput(node) {
    return node instanceof HTMLInputElement && node.type === "file";
  }

  // The file input an input/change event is about; also behind closed shadow roots, where the event arrives
  // retargeted to the shadow host.
  function fileInputOf(event) {
    const first = event.composedPath()[0];
    if (isFileInput(first)) return first;
    // Typing fires InputEvents; a file input fires a plain Event. Only those are worth a search.
    if (event instanceof InputEvent || first !== event.target) return null;
    return findInClosedRoots(event.target);
  }

  function findInClosedRoots(node) {
    // Chromium exposes closed roots to extensions through chrome.dom, Firefox through the element itself.
    const root = node instanceof Element && (chrome.dom && chrome.dom.openOrClosedShadowRoot
      ? chrome.dom.openOrClosedShadowRoot(node) : node.openOrClosedShadowRoot && node.openOrClosedShadowRoot());
    if (!root) return null;
    for (const element of root.querySelectorAll("*")) {
      if (isFileInput(element) && element.files && element.files.length &&
          (!inputState.has(element) || inputState.get(element).files !== element.files)) return element;
      const inner = findInClosedRoots(element);
      if (inner) return inner;
    }
    return null;
  }

  // `change` does not leave a shadow root: watch it inside every root between the input and the document.
  function hookShadowRoots(input) {
    for (let root = input.getRootNode(); root instanceof ShadowRoot; root = root.host.getRootNode()) {
      if (hookedRoots.has(root)) continue;
      hookedRoots.add(root);
      root.addEventListener("change", onFileInputEvent, true);
    }
  }

  function dispatchAgain(input) {
    for (const [type, composed] of [["input", true], ["change", false]]) {
      const event = new Event(type, {bubbles: true, composed});
      ourEvents.add(event);
      input.dispatchEvent(event);
    }
  }

  function onFileInputEvent(event) {
    if (ourEvents.has(event)) return;
    const input = fileInputOf(event);
    if (!input) return;
    const state = inputState.get(input);
    if (state && !state.done && (state.files === input.files || state.emptied === input.files)) {
      event.stopImmediatePropagation(); // the `change` that follows the `input` we are already handling
      return;
    }
    const files = Array.from(input.files || []);
    if (!files.length || !mayMark(files)) return;
    event.stopImmediatePropagation();
    hookShadowRoots(input);
    // Until marking ends the input holds nothing, so even a script calling form.submit() cannot send an
    // unmarked photo.
    const emptied = new DataTransfer().files;
    inputState.set(input, {files: input.files, emptied, done: false});
    input.files = emptied;
    const job = markFiles(files).then(({files: kept, blocked}) => {
      input.files = fileList(kept).files;
      inputState.set(input, {files: input.files, done: true});
      if (blocked.length) showBlocked(blocked);
      if (kept.length) dispatchAgain(input);
    });
    trackForm(input.form, job);
  }

  window.addEventListener("input", onFileInputEvent, true);
  window.addEventListener("change", onFileInputEvent, true);

  // --- drag and drop, paste --------------------------------------------------------------------------------------

  function onTransfer(event) {
    if (ourEvents.has(event)) return;
    const transfer = event.type === "drop" ? event.dataTransfer : event.clipboardData;
    const files = Array.from((transfer && transfer.files) || []);
    if (!files.length || !mayMark(files)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const target = event.composedPath()[0] || event.target;
    const init = {bubbles: true, cancelable: true, composed: true, clientX: event.clientX, clientY: event.clientY,
                  screenX: event.screenX, screenY: event.screenY};
    markFiles(files).then(({files: kept, blocked}) => {
      if (blocked.length) showBlocked(blocked);
      if (!kept.length) return;
      const again = event.type === "drop"
        ? new DragEvent("drop", {...init, dataTransfer: fileList(kept)})
        : new ClipboardEvent("paste", {bubbles: true, cancelable: true, composed: true,
                                       clipboardData: fileList(kept)});
      ourEvents.add(again);
      target.dispatchEvent(again);
    });
  }

  window.addEventListener("drop", onTransfer, true);
  window.addEventListener("paste", onTransfer, true);

  // --- the page-world backstop (fetch, XMLHttpRequest) ---------------------------------------------------------
  // backstop.js registers photos the user handed the page through APIs that fire none of the events above
  // (a file picked with showOpenFilePicker, an image read from the clipboard), and asks about every photo in
  // an upload body. Only a registered photo is marked there: marking whatever image a page script builds
  // would let a page blend the user's mark into a known image and read the mark back out.

  const CHANNEL = "isotopes-backstop";
  const userOriginals = new Set(); // sha256 of photos the user supplied through such APIs

  const digest = async (blob) => sha256Hex(new Uint8Array(await blob.arrayBuffer()));

  window.addEventListener("message", async (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== CHANNEL || message.direction !== "to-agent" ||
        !(message.file instanceof Blob)) {
      return;
    }
    const answer = {channel: CHANNEL, direction: "to-page", id: message.id};
    if (message.kind === "register") {
      userOriginals.add(await digest(message.file));
      window.postMessage({...answer, unchanged: true}, "*");
      return;
    }
    await siteKnown;
    if (!site || !userOriginals.has(await digest(message.file))) {
      window.postMessage({...answer, unchanged: true}, "*");
      return;
    }
    const file = message.file instanceof File ? message.file : new File([message.file], "blob",
                                                                        {type: message.file.type});
    const result = await markFile(file);
    if (!result.file) {
      showBlocked([{name: file.name, reason: result.reason}]);
      window.postMessage({...answer, blocked: `Isotopes blocked ${file.name}: ${result.reason}`}, "*");
    } else {
      window.postMessage({...answer, file: result.marked ? result.file : null, unchanged: !result.marked}, "*");
    }
  });
})();
