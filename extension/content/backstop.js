// The page-world backstop. Some photos reach a page without a file input, a drop or a paste: a file picked
// with showOpenFilePicker, an image read with navigator.clipboard.read(). Those are registered with the
// isolated content script (intercept.js) as the user's own, and every photo in a fetch() or
// XMLHttpRequest.send() body is shown to it first: a registered one is swapped for its marked copy (or
// blocked by the fail-safe); anything else, such as an image the page drew itself, passes untouched.
// Runs in the page's MAIN world at document_start, in every frame, before the page's own scripts.
"use strict";

(() => {
  const CHANNEL = "isotopes-backstop";
  const waiting = new Map();
  let nextId = 1;
  const isPhoto = (value) => value instanceof Blob && /^image\//i.test(value.type) && !/svg/i.test(value.type);

  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== CHANNEL || message.direction !== "to-page") {
      return;
    }
    const resolve = waiting.get(message.id);
    if (!resolve) return;
    waiting.delete(message.id);
    resolve(message);
  });

  function ask(kind, file) {
    return new Promise((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      window.postMessage({channel: CHANNEL, direction: "to-agent", id, kind, file}, "*");
    });
  }

  // -> the file to send instead, or the original; throws when the fail-safe blocks it.
  async function checked(file) {
    const answer = await ask("upload", file);
    if (answer.blocked) throw new TypeError(answer.blocked);
    return answer.file || file;
  }

  // Wrap an API method that hands the page a photo of the user's, so the photo is registered first.
  function registering(owner, name) {
    const original = owner && owner.prototype && owner.prototype[name];
    if (typeof original !== "function") return;
    owner.prototype[name] = async function (...args) {
      const blob = await original.apply(this, args);
      if (isPhoto(blob)) await ask("register", blob);
      return blob;
    };
  }

  registering(window.FileSystemFileHandle, "getFile");
  registering(window.ClipboardItem, "getType");

  function needsCheck(body) {
    if (isPhoto(body)) return true;
    if (body instanceof FormData) {
      for (const value of body.values()) if (isPhoto(value)) return true;
    }
    return false;
  }

  async function checkedBody(body) {
    if (isPhoto(body)) return checked(body);
    const copy = new FormData();
    for (const [name, value] of body.entries()) {
      if (isPhoto(value)) {
        const file = await checked(value);
        copy.append(name, file, file.name || (value instanceof File ? value.name : "blob"));
      } else if (value instanceof File) {
        copy.append(name, value, value.name);
      } else {
        copy.append(name, value);
      }
    }
    return copy;
  }

  const originalFetch = window.fetch;
  window.fetch = async function fetch(resource, init) {
    if (init && needsCheck(init.body)) init = {...init, body: await checkedBody(init.body)};
    return originalFetch.call(this, resource, init);
  };

  const originalSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function send(body) {
    if (!needsCheck(body)) return originalSend.call(this, body);
    checkedBody(body).then(
      (replacement) => originalSend.call(this, replacement),
      () => {
        // Blocked: the request never leaves; the page hears about it as a network error.
        for (const type of ["error", "loadend"]) this.dispatchEvent(new ProgressEvent(type));
      });
    return undefined;
  };
})();
