// Catches photo uploads on sites the user enabled and swaps each photo for its marked copy before the page
// sees it: file inputs (also in shadow roots, open or closed), drag and drop, paste, and forms submitted while
// a photo is still being marked. Runs in the isolated world at document_start, in every frame.
//
// Only the user's own actions are handled (trusted events). A page script that builds an image and fires an
// event with it gets nothing marked: otherwise a page could blend the user's mark into a known image and read
// the mark back out.
"use strict";

(() => {
  const {isImageFile, enabledSiteForHost, base64ToBytes, blobBase64, ext} = globalThis.Isotopes;

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

  // Tell submit-guard.js (the page world) whether photos are being marked, so form.submit() called by a
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

  // Everything pending for the form, including jobs that start while waiting (a newer selection); false when
  // a photo was blocked, in which case the form is not sent at all.
  async function settled(form) {
    for (let jobs = pendingByForm.get(form); jobs && jobs.size; jobs = pendingByForm.get(form)) {
      const outcomes = await Promise.all([...jobs]);
      if (outcomes.some((outcome) => outcome.blocked.length)) return false;
    }
    return true;
  }

  function onSubmit(event) {
    const form = event.target;
    if (resubmitting.has(form)) return;
    const jobs = pendingByForm.get(form);
    if (!jobs || !jobs.size) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const submitter = event.submitter;
    settled(form).then((send) => {
      if (!send) return;
      resubmitting.add(form);
      try {
        form.requestSubmit(submitter && submitter.isConnected && submitter.form === form ? submitter : undefined);
      } finally {
        resubmitting.delete(form);
      }
    });
  }

  window.addEventListener("submit", onSubmit, true);

  // --- file inputs -----------------------------------------------------------------------------------------------

  const ourEvents = new WeakSet();
  const inputState = new WeakMap(); // input -> {generation, emptied: the empty list it holds while marking}
  const hookedRoots = new WeakSet();

  function isFileInput(node) {
    return node instanceof HTMLInputElement && node.type === "file";
  }

  function shadowRootOf(node) {
    // Chromium exposes closed roots to extensions through chrome.dom, Firefox through the element itself.
    if (!(node instanceof Element)) return null;
    const dom = globalThis.chrome && globalThis.chrome.dom;
    if (dom && dom.openOrClosedShadowRoot) return dom.openOrClosedShadowRoot(node);
    return node.openOrClosedShadowRoot ? node.openOrClosedShadowRoot() : null;
  }

  // Listen inside a shadow root, where events are not retargeted: `change` and `submit` never leave a root,
  // and an `input` from a closed root reaches the window only as an event of its host.
  function hookRoot(root) {
    if (hookedRoots.has(root)) return;
    hookedRoots.add(root);
    root.addEventListener("input", onFileInputEvent, true);
    root.addEventListener("change", onFileInputEvent, true);
    root.addEventListener("submit", onSubmit, true);
  }

  // Hook every shadow root under `host`, closed ones included. Called while an event from inside is still on
  // its way down: listeners added to roots it has not reached yet still receive it.
  function hookRootsUnder(host) {
    const root = shadowRootOf(host);
    if (!root) return;
    hookRoot(root);
    for (const element of root.querySelectorAll("*")) hookRootsUnder(element);
  }

  function hookRootsAbove(input) {
    for (let root = input.getRootNode(); root instanceof ShadowRoot; root = root.host.getRootNode()) hookRoot(root);
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
    const input = event.composedPath()[0];
    if (!isFileInput(input)) {
      // Retargeted from a closed shadow root (typing fires InputEvents; a file input a plain Event): hook the
      // roots below, and handle the event there, where its real target shows.
      if (!(event instanceof InputEvent) && input === event.target) hookRootsUnder(event.target);
      return;
    }
    const state = inputState.get(input);
    if (state && state.emptied && input.files === state.emptied) {
      event.stopImmediatePropagation(); // the `change` that follows the `input` being handled
      return;
    }
    const files = Array.from(input.files || []);
    if (!files.length || site === null || !files.some(isImageFile)) return;
    event.stopImmediatePropagation();
    hookRootsAbove(input);
    // Until marking ends the input holds nothing, so even a script calling form.submit() cannot send an
    // unmarked photo. A newer selection supersedes this one.
    const generation = (state ? state.generation : 0) + 1;
    const emptied = new DataTransfer().files;
    inputState.set(input, {generation, emptied});
    input.files = emptied;
    const job = markFiles(files).then(({files: kept, blocked}) => {
      if (inputState.get(input).generation !== generation) return {blocked: []}; // the newer job decides
      input.files = transferWith(kept).files;
      inputState.set(input, {generation, emptied: null});
      if (blocked.length) showBlocked(blocked);
      if (kept.length) dispatchAgain(input);
      return {blocked};
    });
    track(input.form, job);
  }

  window.addEventListener("input", onFileInputEvent, true);
  window.addEventListener("change", onFileInputEvent, true);

  function holdsFolder(transfer) {
    return Array.from(transfer.items || []).some((item) => {
      const entry = item.kind === "file" && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      return Boolean(entry && entry.isDirectory);
    });
  }

  // A drag that started in this document carries the page's own content, not the user's files: not marked
  // (a page could otherwise drag an image of its own and read the mark back out of the marked copy).
  let dragFromPage = false;
  window.addEventListener("dragstart", (event) => { if (event.isTrusted) dragFromPage = true; }, true);
  window.addEventListener("dragend", () => { dragFromPage = false; }, true);

  // --- drag and drop, paste ----------------------------------------------------------------------------------------

  function onTransfer(event) {
    if (ourEvents.has(event) || !event.isTrusted || site === null) return;
    const transfer = event.type === "drop" ? event.dataTransfer : event.clipboardData;
    if (!transfer) return;
    const target = event.composedPath()[0] || event.target;
    if (isFileInput(target)) return; // a drop onto a file input arrives as its input/change events
    if (event.type === "drop" && dragFromPage) {
      dragFromPage = false;
      return;
    }
    if (event.type === "drop" && holdsFolder(transfer)) {
      // A re-sent drop cannot carry a folder's entries, so its photos cannot be swapped: the fail-safe decides.
      const choice = site && site.on_failure === "original" ? "original" : "block";
      send({type: "fail-safe", choice, name: "a folder", reason: "photos inside a dropped folder cannot be marked"});
      if (choice === "block") {
        event.preventDefault();
        event.stopImmediatePropagation();
        showNotice("Isotopes blocked a dropped folder: photos inside folders cannot be marked. Drop the photos " +
          "themselves instead.");
      }
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
