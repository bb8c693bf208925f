// Catches photo uploads on sites the user enabled and swaps each photo for its marked copy before the page
// sees it: file inputs (also in shadow roots, open or closed), drag and drop, paste, and forms submitted while
// a photo is still being marked. Runs in the isolated world at document_start, in every frame.
//
// Only the user's own actions are handled (trusted events). A page script that builds an image and fires an
// event with it gets nothing marked: otherwise a page could blend the user's mark into a known image and read
// the mark back out.
"use strict";

(() => {
  const {isImageFile, enabledSiteForHost, base64ToBytes, blobBase64, sha256Hex, ext} = globalThis.Isotopes;

  // --- talking to the background -----------------------------------------------------------------------------

  // runtime.sendMessage, but never throwing: an extension that was reloaded under this page, or a
  // background that does not answer, becomes an error reply like any other.
  async function send(message) {
    try {
      const reply = await ext.runtime.sendMessage(message);
      return reply || {ok: false, error: {code: "internal_error", message: "the extension's background did not answer"}};
    } catch (error) {
      return {ok: false, error: {code: "extension_unavailable",
                                 message: `the Isotopes extension is not available (${error.message}): reload the page`}};
    }
  }

  // --- is marking on here? -----------------------------------------------------------------------------------

  let site; // the enabled site's settings; null when marking is off; undefined while being found out
  let siteKnown;

  function learnSite() {
    site = undefined;
    siteKnown = send({type: "site-status"}).then(async (reply) => {
      if (reply.ok) {
        site = reply.data.site;
        return;
      }
      try { // the background could not say: fall back to the last copy of the settings
        site = enabledSiteForHost(location.hostname, (await ext.storage.local.get("sites")).sites);
      } catch (error) {
        site = null;
      }
    });
  }

  learnSite();
  ext.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && changes.sites) learnSite();
  });

  // --- marking ---------------------------------------------------------------------------------------------------

  // Apply the site's fail-safe to a file that could not be marked: -> {file} to upload it anyway, or
  // {file: null} to block it. Either way the user is told.
  function failSafe(file, reason) {
    const choice = site && site.on_failure === "original" ? "original" : "block";
    send({type: "fail-safe", choice, name: file.name, reason});
    return {file: choice === "original" ? file : null, reason};
  }

  async function markFile(file) {
    if (!isImageFile(file)) return {file};
    let image;
    try {
      image = await blobBase64(file);
    } catch (error) {
      return failSafe(file, `the photo could not be read for marking (${error.message})`);
    }
    const reply = await send({type: "mark", image, name: file.name, mime: file.type});
    if (!reply.ok) return failSafe(file, reply.error.message);
    if (reply.data.status !== "marked") return {file}; // the site marks only a share of photos, not this one
    return {file: new File([base64ToBytes(reply.data.image)], file.name,
                           {type: file.type, lastModified: file.lastModified})};
  }

  // -> {files: what to hand the page (order kept), blocked: [{name, reason}]}
  async function markFiles(files) {
    await siteKnown;
    if (!site) return {files, blocked: []};
    const results = await Promise.all(files.map((file) => markFile(file).catch((error) => failSafe(file,
      `marking failed (${error.message})`))));
    return {files: results.filter((result) => result.file).map((result) => result.file),
            blocked: results.flatMap((result, index) => result.file ? [] :
              [{name: files[index].name, reason: result.reason}])};
  }

  function transferWith(files, texts) {
    const transfer = new DataTransfer();
    for (const file of files) transfer.items.add(file);
    for (const [type, value] of Object.entries(texts || {})) transfer.setData(type, value);
    return transfer;
  }

  // --- telling the user on the page -----------------------------------------------------------------------------

  function showNotice(text) {
    const host = document.createElement("isotopes-notice");
    const root = host.attachShadow({mode: "closed"});
    const box = document.createElement("div");
    box.setAttribute("role", "alert");
    box.style.cssText = "position:fixed;z-index:2147483647;bottom:1rem;right:1rem;max-width:28rem;padding:1rem;" +
      "background:#fff;color:#1c1b1f;border:2px solid #b3261e;border-radius:.5rem;font:1rem/1.4 system-ui," +
      "sans-serif;box-shadow:0 .25rem 1rem rgba(0,0,0,.3)";
    box.textContent = text;
    root.append(box);
    (document.body || document.documentElement).append(host);
    setTimeout(() => host.remove(), 12000);
  }

  function showBlocked(blocked) {
    showNotice(`Isotopes blocked ${blocked.map((entry) => entry.name).join(", ")}: it could not be marked ` +
      `(${blocked[0].reason}). Nothing was uploaded. Open the Isotopes popup to fix this, or let originals ` +
      "through for this site.");
  }

  // --- work in progress: forms wait for it ----------------------------------------------------------------------

  const pendingByForm = new Map(); // form -> Set of jobs
  const resubmitting = new WeakSet();
  let pendingJobs = 0;

  // Tell page-guard.js (the page world) whether photos are being marked, so form.submit() called by a
  // script waits too. A page could forge these messages, but only to delay or drop its own submissions.
  function announcePending(blocked) {
    window.postMessage({channel: "isotopes-pending", count: pendingJobs, blocked}, "*");
  }

  function track(form, job) {
    pendingJobs += 1;
    announcePending(false);
    if (form) {
      const jobs = pendingByForm.get(form) || new Set();
      jobs.add(job);
      pendingByForm.set(form, jobs);
    }
    job.then((outcome) => {
      pendingJobs -= 1;
      announcePending(outcome.blocked.length > 0);
      if (!form) return;
      const jobs = pendingByForm.get(form);
      jobs.delete(job);
      if (!jobs.size) pendingByForm.delete(form);
    });
  }

  window.addEventListener("submit", (event) => {
    const form = event.target;
    if (resubmitting.has(form)) return;
    const jobs = pendingByForm.get(form);
    if (!jobs || !jobs.size) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const submitter = event.submitter;
    Promise.all([...jobs]).then((outcomes) => {
      if (outcomes.some((outcome) => outcome.blocked.length)) return; // a blocked photo: the form is not sent
      resubmitting.add(form);
      try {
        form.requestSubmit(submitter && submitter.isConnected && submitter.form === form ? submitter : undefined);
      } finally {
        resubmitting.delete(form);
      }
    });
  }, true);

  // --- file inputs -----------------------------------------------------------------------------------------------

  const ourEvents = new WeakSet();
  const inputState = new WeakMap(); // input -> {generation, emptied: the empty list it holds while marking}
  const lastSeen = new WeakMap(); // input -> the FileList last looked at
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

  function shadowRootOf(node) {
    // Chromium exposes closed roots to extensions through chrome.dom, Firefox through the element itself.
    if (!(node instanceof Element)) return null;
    const dom = globalThis.chrome && globalThis.chrome.dom;
    if (dom && dom.openOrClosedShadowRoot) return dom.openOrClosedShadowRoot(node);
    return node.openOrClosedShadowRoot ? node.openOrClosedShadowRoot() : null;
  }

  // The input under `node`'s shadow root whose selection just changed.
  function findInClosedRoots(node) {
    const root = shadowRootOf(node);
    if (!root) return null;
    for (const element of root.querySelectorAll("*")) {
      if (isFileInput(element) && element.files && element.files !== lastSeen.get(element)) return element;
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
    if (ourEvents.has(event) || !event.isTrusted) return;
    const input = fileInputOf(event);
    if (!input) return;
    const state = inputState.get(input);
    if (state && state.emptied && input.files === state.emptied) {
      event.stopImmediatePropagation(); // the `change` that follows the `input` being handled
      return;
    }
    lastSeen.set(input, input.files);
    const files = Array.from(input.files || []);
    if (!files.length || site === null || !files.some(isImageFile)) return;
    event.stopImmediatePropagation();
    hookShadowRoots(input);
    // Until marking ends the input holds nothing, so even a script calling form.submit() cannot send an
    // unmarked photo. A newer selection supersedes this one.
    const generation = (state ? state.generation : 0) + 1;
    const emptied = new DataTransfer().files;
    inputState.set(input, {generation, emptied});
    input.files = emptied;
    lastSeen.set(input, emptied);
    const job = markFiles(files).then(({files: kept, blocked}) => {
      if (inputState.get(input).generation !== generation) return {blocked: []};
      input.files = transferWith(kept).files;
      lastSeen.set(input, input.files);
      inputState.set(input, {generation, emptied: null});
      if (blocked.length) showBlocked(blocked);
      if (kept.length) dispatchAgain(input);
      return {blocked};
    });
    track(input.form, job);
  }

  window.addEventListener("input", onFileInputEvent, true);
  window.addEventListener("change", onFileInputEvent, true);

  // --- dropped folders ----------------------------------------------------------------------------------------
  // A folder reaches the page as directory entries, which a re-sent drop cannot carry. So a drop with a folder
  // passes untouched, the photos in it are read here from the user's trusted drop, and page-guard.js swaps
  // them for marked copies when the page uploads them with fetch() or XMLHttpRequest.

  const droppedPhotos = new Set(); // sha256 of the photos in folders the user dropped on this page
  let droppedReady = Promise.resolve();

  const digest = async (blob) => sha256Hex(base64ToBytes(await blobBase64(blob)));
  const readEntries = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  const entryFile = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

  async function photosIn(entry) {
    if (entry.isFile) {
      const file = await entryFile(entry);
      return isImageFile(file) ? [file] : [];
    }
    const reader = entry.createReader();
    const found = [];
    for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
      for (const child of batch) found.push(...await photosIn(child));
    }
    return found;
  }

  function folderEntries(transfer) {
    const entries = Array.from(transfer.items || [])
      .map((item) => (item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    return entries.some((entry) => entry.isDirectory) ? entries : null;
  }

  function rememberDroppedPhotos(entries) {
    const reading = Promise.all(entries.map((entry) => photosIn(entry).catch(() => [])))
      .then(async (lists) => {
        for (const file of lists.flat()) droppedPhotos.add(await digest(file));
      });
    droppedReady = Promise.all([droppedReady, reading]);
  }

  window.addEventListener("message", async (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== "isotopes-upload" ||
        message.direction !== "to-extension") return;
    const answer = {channel: "isotopes-upload", direction: "to-page", id: message.id};
    const file = message.file;
    await droppedReady;
    if (!(file instanceof Blob) || !droppedPhotos.size || !droppedPhotos.has(await digest(file))) {
      window.postMessage({...answer, unchanged: true}, "*");
      return;
    }
    await siteKnown;
    const named = file instanceof File ? file : new File([file], "photo", {type: file.type});
    const result = site ? await markFile(named) : {file: named};
    if (!result.file) {
      showBlocked([{name: named.name, reason: result.reason}]);
      window.postMessage({...answer, blocked: `Isotopes blocked ${named.name}: ${result.reason}`}, "*");
      return;
    }
    window.postMessage({...answer, file: result.file === named ? null : result.file}, "*");
  });

  // --- drag and drop, paste ----------------------------------------------------------------------------------------

  function onTransfer(event) {
    if (ourEvents.has(event) || !event.isTrusted || site === null) return;
    const transfer = event.type === "drop" ? event.dataTransfer : event.clipboardData;
    if (!transfer) return;
    const target = event.composedPath()[0] || event.target;
    if (isFileInput(target)) return; // a drop onto a file input arrives as its input/change events
    const folders = event.type === "drop" ? folderEntries(transfer) : null;
    if (folders) {
      rememberDroppedPhotos(folders);
      return;
    }
    const files = Array.from(transfer.files || []);
    if (!files.some(isImageFile)) return;
    const texts = {};
    for (const type of transfer.types || []) {
      if (type !== "Files") texts[type] = transfer.getData(type); // pasted text travels along with the photo
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    const init = {bubbles: true, cancelable: true, composed: true, clientX: event.clientX, clientY: event.clientY,
                  screenX: event.screenX, screenY: event.screenY};
    const job = markFiles(files).then(({files: kept, blocked}) => {
      if (blocked.length) showBlocked(blocked);
      if (!kept.length && !Object.keys(texts).length) return {blocked};
      const again = event.type === "drop"
        ? new DragEvent("drop", {...init, dataTransfer: transferWith(kept, texts)})
        : new ClipboardEvent("paste", {...init, clipboardData: transferWith(kept, texts)});
      ourEvents.add(again);
      target.dispatchEvent(again);
      return {blocked};
    });
    track(null, job);
  }

  window.addEventListener("drop", onTransfer, true);
  window.addEventListener("paste", onTransfer, true);
})();
