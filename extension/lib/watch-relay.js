// The background's side of watching a verification run for a page: one agent `verify.watch` per run, shared by
// every page port that asks for it, each event posted to the ports still connected, then the final reply.
// A page connects with runtime.connect({name: WATCH_PORT}) and posts {run}; it receives
// {event: "progress", data: status} messages, then {ok: true, data: status} or {ok: false, error}.
(function (exports) {
  "use strict";

  const WATCH_PORT = "verify-watch";

  class WatchRelay {
    // `watch(run, onEvent)` asks the agent (verify.watch with no time limit) and returns a promise of the final
    // status; `errorJson(error)` turns its failure into the plain error object pages receive.
    constructor(watch, errorJson) {
      this.watch = watch;
      this.errorJson = errorJson;
      this.watches = new Map(); // run -> {ports: Set, last: the latest status or null}
    }

    // Relay run `run` to `port` (a runtime Port whose page asked for it).
    attach(port, run) {
      let entry = this.watches.get(run);
      const fresh = !entry;
      if (fresh) {
        entry = {ports: new Set(), last: null};
        this.watches.set(run, entry);
      }
      entry.ports.add(port);
      port.onDisconnect.addListener(() => entry.ports.delete(port));
      if (entry.last) this.post(entry, port, {event: "progress", data: entry.last}); // a late joiner's first view
      if (!fresh) return;
      // The agent's watch goes on when every page has gone (there is no way to stop one); a page that comes back
      // joins it instead of starting another.
      const onEvent = (data, event) => {
        entry.last = data;
        for (const each of entry.ports) this.post(entry, each, {event: event || "progress", data});
      };
      const finish = (message) => {
        if (this.watches.get(run) === entry) this.watches.delete(run);
        for (const each of entry.ports) this.post(entry, each, message);
        entry.ports.clear();
      };
      let pending;
      try {
        pending = Promise.resolve(this.watch(run, onEvent));
      } catch (error) {
        pending = Promise.reject(error);
      }
      pending.then((data) => finish({ok: true, data}), (error) => finish({ok: false, error: this.errorJson(error)}));
    }

    // Post to one port; a port whose page has gone is forgotten.
    post(entry, port, message) {
      try {
        port.postMessage(message);
      } catch (error) {
        entry.ports.delete(port);
      }
    }
  }

  Object.assign(exports, {WATCH_PORT, WatchRelay});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
