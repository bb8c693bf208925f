// A form sent by a script (form.submit()) fires no submit event, so intercept.js cannot hold it. This page-world
// guard makes form.submit() wait while photos in this frame are being marked, and drops the submission when a
// photo was blocked: the form would otherwise go out with the photo missing.
// Runs in the page's MAIN world at document_start, in every frame, before the page's own scripts.
"use strict";

(() => {
  let pending = 0;
  let blockedMeanwhile = false;
  const waiting = [];

  // From intercept.js. A page could forge these messages, but only to delay or drop its own submissions.
  window.addEventListener("message", (event) => {
    const message = event.data;
    if (event.source !== window || !message || message.channel !== "isotopes-pending") return;
    pending = Number(message.count) || 0;
    if (message.blocked) blockedMeanwhile = true;
    if (pending > 0) return;
    const release = waiting.splice(0);
    const blocked = blockedMeanwhile;
    blockedMeanwhile = false;
    if (!blocked) release.forEach((submitNow) => submitNow());
  });

  const originalSubmit = HTMLFormElement.prototype.submit;
  HTMLFormElement.prototype.submit = function submit() {
    if (pending === 0) return originalSubmit.call(this);
    waiting.push(() => originalSubmit.call(this));
    return undefined;
  };
})();
