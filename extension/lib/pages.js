// Shared by the extension's pages: talking to the agent through the background, watching a verification run,
// and small DOM helpers.
(function (exports) {
  "use strict";

  const WATCH_PORT = "verify-watch"; // lib/watch-relay.js, the background's side

  class PageError extends Error {
    // `details`: the agent's whole error object, e.g. `field` for bad_model or `state` for no_result.
    constructor(code, message, details) {
      super(message);
      this.code = code;
      this.details = details || {};
    }
  }

  function pageError(error) {
    const details = error && typeof error === "object" ? error : {};
    return new PageError(details.code || "internal_error", details.message || "the agent failed", details);
  }

  // Run an agent action (native_host/PROTOCOL.md) and return its data, or throw PageError.
  async function callAgent(action, params) {
    const reply = await globalThis.Isotopes.ext.runtime.sendMessage({type: "agent", action, params});
    if (!reply) throw new PageError("agent_unavailable", "the extension's background did not answer");
    if (!reply.ok) throw pageError(reply.error);
    return reply.data;
  }

  function defaultConnect() {
    return globalThis.Isotopes.ext.runtime.connect({name: WATCH_PORT});
  }

  // One verify.watch through the background: resolves with the status it ends with.
  function watchOnce(run, onProgress, connect, signal) {
    return new Promise((resolve, reject) => {
      let port;
      try {
        port = connect();
      } catch (error) {
        reject(new PageError("agent_unavailable", `cannot reach the extension's background: ${error.message}`));
        return;
      }
      let settled = false;
      const finish = (settle, value) => {
        if (settled) return;
        settled = true;
        if (signal) signal.removeEventListener("abort", abort);
        try {
          port.disconnect();
        } catch (error) {
          // already gone
        }
        settle(value);
      };
      const abort = () => finish(reject, new PageError("aborted", "stopped watching the run"));
      port.onMessage.addListener((message) => {
        if (settled || !message || typeof message !== "object") return;
        if (message.event === "progress") {
          onProgress(message.data);
        } else if ("ok" in message) {
          if (message.ok) finish(resolve, message.data);
          else finish(reject, pageError(message.error));
        }
      });
      port.onDisconnect.addListener(() => finish(reject, new PageError(
        "agent_unavailable", "the extension's background stopped watching the run")));
      if (signal) {
        if (signal.aborted) {
          abort();
          return;
        }
        signal.addEventListener("abort", abort);
      }
      port.postMessage({run});
    });
  }

  function pause(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) {
        reject(new PageError("aborted", "stopped watching the run"));
        return;
      }
      const timer = setTimeout(() => {
        if (signal) signal.removeEventListener("abort", stop);
        resolve();
      }, ms);
      const stop = () => {
        clearTimeout(timer);
        reject(new PageError("aborted", "stopped watching the run"));
      };
      if (signal) signal.addEventListener("abort", stop, {once: true});
    });
  }

  // Watch verification run `run` until it ends: `onProgress(status)` for each status while it runs; resolves
  // with the final status (state done, failed or cancelled). When the agent goes away (agent_unavailable), or
  // stops serving while the run goes on, it watches again after `retryDelayMs`, up to `retries` times in a row
  // without news. Options: `signal` (an AbortSignal: stop watching, rejects with code "aborted"), `connect`
  // (returns the Port to the background; tests pass a fake), `retryDelayMs`, `retries`.
  async function watchRun(run, onProgress, options) {
    const {signal = null, connect = defaultConnect, retryDelayMs = 1500, retries = 20} = options || {};
    const progress = typeof onProgress === "function" ? onProgress : () => {};
    let failures = 0;
    for (;;) {
      let news = false;
      const seen = (status) => {
        news = true;
        progress(status);
      };
      let problem;
      try {
        const status = await watchOnce(run, seen, connect, signal);
        if (!status || status.state !== "running") return status;
        progress(status); // the agent stopped serving before the run ended: watch it again
        problem = new PageError("agent_unavailable", "the agent stopped before the run ended");
      } catch (error) {
        if (error.code !== "agent_unavailable") throw error;
        problem = error;
      }
      failures = news ? 1 : failures + 1;
      if (failures > retries) throw problem;
      await pause(retryDelayMs, signal);
    }
  }

  // Create an element: el("button", {type: "button", onclick: f}, "Enable").
  function el(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, "");
      else if (value !== false && value !== null && value !== undefined) element.setAttribute(name, value);
    }
    element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
    return element;
  }

  function rotationLabel(seconds) {
    if (!seconds) return "never";
    const days = seconds / 86400;
    return days >= 1 ? `every ${Math.round(days)} days` : `every ${Math.round(seconds / 3600)} hours`;
  }

  Object.assign(exports, {callAgent, PageError, watchRun, WATCH_PORT, el, rotationLabel});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
