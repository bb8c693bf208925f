// A client of the local agent over native messaging: one port, requests matched to replies by id,
// chunked replies reassembled (native_host/PROTOCOL.md).
(function (exports) {
  "use strict";

  const ChunkAssembler = (exports.ChunkAssembler || require("./chunks.js").ChunkAssembler);

  class AgentError extends Error {
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
      this.waiting = new Map(); // id -> {resolve, reject}
      this.assembler = new ChunkAssembler();
    }

    request(action, params) {
      return new Promise((resolve, reject) => {
        let port;
        try {
          port = this.ensurePort();
        } catch (error) {
          reject(new AgentError("agent_unavailable", `cannot reach the Isotopes agent: ${error.message}`));
          return;
        }
        const id = `x${this.nextId++}`;
        const timer = setTimeout(() => this.fail(id, new AgentError(
          "agent_unavailable", `the Isotopes agent did not answer within ${this.timeoutMs / 1000} s`)), this.timeoutMs);
        const settle = (finish) => (value) => {
          clearTimeout(timer);
          finish(value);
        };
        this.waiting.set(id, {resolve: settle(resolve), reject: settle(reject)});
        try {
          port.postMessage({id, version: 1, action, params: params || {}});
        } catch (error) {
          this.waiting.delete(id);
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
      if (!reply || !("ok" in reply)) return; // an incomplete chunked reply, or a progress event
      const waiting = this.waiting.get(reply.id);
      if (!waiting) return;
      this.waiting.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.data);
      else waiting.reject(new AgentError(reply.error.code, reply.error.message, reply.error));
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

  Object.assign(exports, {AgentClient, AgentError});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
