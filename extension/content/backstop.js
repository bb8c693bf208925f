// The page-world backstop: uploads that never went through a file input, a drop or a paste (a script that
// builds its own FormData or Blob) still pass through fetch() or XMLHttpRequest.send(). Photos in their
// bodies are handed to the isolated content script (intercept.js) to be marked, or blocked, first.
// Runs in the page's MAIN world at document_start, in every frame, before the page's own scripts.
"use strict";

(() => {
  const CHANNEL = "isotopes-backstop";
  const waiting = new Map();
  let nextId = 1;

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

  // -> the file to send instead, or the original; throws when the fail-safe blocks it.
  function checked(file) {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, (answer) => {
        if (answer.blocked) reject(new TypeError(answer.blocked));
        else resolve(answer.file || file);
      });
      window.postMessage({channel: CHANNEL, direction: "to-agent", id, file}, "*");
    });
  }

  const isPhoto = (value) => value instanceof Blob && /^image\//i.test(value.type) && !/svg/i.test(value.type);

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
