// A client of the local agent over native messaging: one port, requests matched to replies by id,
// chunked replies reassembled, progress events handed to their request (native_host/PROTOCOL.md).
(function (exports) {
  "use strict";

  const ChunkAssembler = (exports.ChunkAssembler || require("./chunks.js").ChunkAssembler);

  class AgentError extends Error {
    // `details` is the agent's whole error object: extra fields such as `field` (bad_model) or `state`
    // (no_result) travel with it.
    constructor(code, message, details) {
      super(message);
      this.code = code;
      this.details = details || {};
    }
  }

  class AgentClient {
    // `connect` returns a new port (runtime.connectNative(...)); `lastError` reads why a port closed (Chromium;
    // Firefox puts the reason on the port).
    constructor(connect, lastError, timeoutMs = 60000) {
      this.connect = connect;
      this.lastError = lastError || (() => null);
      this.timeoutMs = timeoutMs; // an agent that stalls must not hold an upload forever
      this.port = null;
      this.nextId = 1;
      this.waiting = new Map(); // id -> {resolve, reject, event}
      this.assembler = new ChunkAssembler();
    }

    // Send one request; resolves with the reply's data or rejects with AgentError. Options:
    // - onEvent(data, event): called for each event the agent sends before its reply (verify.watch's progress);
    // - timeoutMs: how long to wait for the reply (default: the client's); 0 or Infinity waits until the reply
    //   comes or the port disconnects. An event shows the agent is alive, so it starts the wait over.
    request(action, params, options) {
      const {onEvent = null, timeoutMs = this.timeoutMs} = options || {};
      return new Promise((resolve, reject) => {
        let port;
        try {
          port = this.ensurePort();
        } catch (error) {
          reject(new AgentError("agent_unavailable", `cannot reach the Isotopes agent: ${error.message}`));
          return;
        }
        const id = `x${this.nextId++}`;
        const limited = Number.isFinite(timeoutMs) && timeoutMs > 0;
        let timer = null;
        const arm = () => {
          if (!limited) return;
          clearTimeout(timer);
          timer = setTimeout(() => this.fail(id, new AgentError(
            "agent_unavailable", `the Isotopes agent did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
        };
        const settle = (finish) => (value) => {
          clearTimeout(timer);
          finish(value);
        };
        const event = (message) => {
          arm();
          if (!onEvent) return;
          try {
            onEvent(message.data, message.event);
          } catch (error) {
            // a listener's bug must not break the connection every other request shares
          }
        };
        arm();
        this.waiting.set(id, {resolve: settle(resolve), reject: settle(reject), event});
        try {
          port.postMessage({id, version: 1, action, params: params || {}});
        } catch (error) {
          this.waiting.delete(id);
          clearTimeout(timer);
          reject(new AgentError("agent_unavailable", `cannot reach the Isotopes agent: ${error.message}`));
        }
      });
    }

    ensurePort() {
      if (this.port) return this.port;
      const port = this.connect();
      port.onMessage.addListener((message) => this.receive(message));
      port.onDisconnect.addListener(() => this.disconnected(port));
      this.port = port;
      return port;
    }

    receive(message) {
      let reply;
      try {
        reply = this.assembler.accept(message);
      } catch (error) {
        this.fail(message && message.id, new AgentError("bad_reply", error.message));
        return;
      }
      if (!reply) return; // an incomplete chunked reply
      const waiting = this.waiting.get(reply.id);
      if (!waiting) return;
      if (!("ok" in reply)) { // an event: never the last message for its id
        if (typeof reply.event === "string") waiting.event(reply);
        return;
      }
      this.waiting.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.data);
      else {
        const error = reply.error || {};
        waiting.reject(new AgentError(error.code || "internal_error", error.message || "the agent failed", error));
      }
    }

    fail(id, error) {
      const waiting = this.waiting.get(id);
      if (!waiting) return;
      this.waiting.delete(id);
      waiting.reject(error);
    }

    disconnected(port) {
      if (this.port !== port) return;
      this.port = null;
      this.assembler.reset();
      const reason = (port.error && port.error.message) || this.lastError() || "the agent closed the connection";
      const error = new AgentError("agent_unavailable", `the Isotopes agent is not available: ${reason}`);
      for (const waiting of this.waiting.values()) waiting.reject(error);
      this.waiting.clear();
    }
  }

  // An error as the plain object the background relays to a page: the agent's whole error object (with extra
  // fields such as `field` or `state`), its code and message.
  function errorJson(error) {
    const details = (error && typeof error.details === "object" && error.details) || {};
    return {...details, code: (error && error.code) || "internal_error",
            message: (error && error.message) || String(error)};
  }

  Object.assign(exports, {AgentClient, AgentError, errorJson});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
