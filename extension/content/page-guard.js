// The page-world guard, for uploads that no held event covers. Runs in the page's MAIN world at document_start,
// in every frame, before the page's own scripts.
//
// - form.submit() called by a script fires no submit event: it waits here while photos in this frame are being
//   marked, and is dropped when one was blocked (the form would otherwise go out with the photo missing).
// - A dropped folder reaches the page as directory entries, which cannot be swapped in a re-sent drop. The
//   photos in it are read by intercept.js from the user's trusted drop; when the page sends one of them with
//   fetch() or XMLHttpRequest, it is swapped for its marked copy here. Every photo in an upload body is shown
//   to intercept.js, which marks only bytes that came from the user's own drop: a page asking about an image
//   it made itself gets it back untouched (marking it would let the page read the user's mark back out).
"use strict";

(() => {
  // --- form.submit() ----------------------------------------------------------------------------------------

  let pending = 0;
  let blockedMeanwhile = false;
  const waitingSubmits = [];

  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== "isotopes-pending") return;
    pending = Number(message.count) || 0;
    if (message.blocked) blockedMeanwhile = true;
    if (pending > 0) return;
    const release = waitingSubmits.splice(0);
    const blocked = blockedMeanwhile;
    blockedMeanwhile = false;
    if (!blocked) release.forEach((submitNow) => submitNow());
  });

  const originalSubmit = HTMLFormElement.prototype.submit;
  HTMLFormElement.prototype.submit = function submit() {
    if (pending === 0) return originalSubmit.call(this);
    waitingSubmits.push(() => originalSubmit.call(this));
    return undefined;
  };

  // --- photos in fetch() and XMLHttpRequest bodies ------------------------------------------------------------

  const CHANNEL = "isotopes-upload";
  const answers = new Map();
  let nextId = 1;
  const isPhoto = (value) => value instanceof Blob && /^image\//i.test(value.type) && !/svg/i.test(value.type);

  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== CHANNEL || message.direction !== "to-page") {
      return;
    }
    const resolve = answers.get(message.id);
    if (!resolve) return;
    answers.delete(message.id);
    resolve(message);
  });

  // -> the file to send: its marked copy, or itself; throws when the fail-safe blocks it.
  async function checked(file) {
    const answer = await new Promise((resolve) => {
      const id = nextId++;
      answers.set(id, resolve);
      window.postMessage({channel: CHANNEL, direction: "to-extension", id, file}, "*");
    });
    if (answer.blocked) throw new TypeError(answer.blocked);
    return answer.file || file;
  }

  function hasPhoto(body) {
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
        copy.append(name, file, file.name || value.name || "blob");
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
    if (init && hasPhoto(init.body)) init = {...init, body: await checkedBody(init.body)};
    return originalFetch.call(this, resource, init);
  };

  const originalSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function send(body) {
    if (!hasPhoto(body)) return originalSend.call(this, body);
    checkedBody(body).then(
      (replacement) => originalSend.call(this, replacement),
      () => { // blocked: the request never leaves; the page hears of it as a network error
        for (const type of ["error", "loadend"]) this.dispatchEvent(new ProgressEvent(type));
      });
    return undefined;
  };
})();
