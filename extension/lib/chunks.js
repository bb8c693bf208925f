// Reassembles replies that the native host split into chunks (native_host/PROTOCOL.md, "Chunked replies").
(function (exports) {
  "use strict";

  class ChunkAssembler {
    constructor() {
      this.pending = new Map(); // id -> {count, parts: Map(index -> text)}
    }

    // Feed one message from the host. Returns the complete reply when `message` is a whole reply or the last
    // missing chunk of one, and null while chunks are still missing.
    accept(message) {
      if (!message || typeof message !== "object" || !("chunk" in message)) return message;
      const {id, chunk, chunks, part} = message;
      if (!Number.isInteger(chunk) || !Number.isInteger(chunks) || chunk < 0 || chunk >= chunks ||
          typeof part !== "string") {
        throw new Error(`malformed chunk for request ${JSON.stringify(id)}`);
      }
      let entry = this.pending.get(id);
      if (!entry) {
        entry = {count: chunks, parts: new Map()};
        this.pending.set(id, entry);
      }
      if (entry.count !== chunks) throw new Error(`chunk count changed for request ${JSON.stringify(id)}`);
      entry.parts.set(chunk, part);
      if (entry.parts.size < entry.count) return null;
      this.pending.delete(id);
      let text = "";
      for (let index = 0; index < entry.count; index += 1) text += entry.parts.get(index);
      return JSON.parse(text);
    }

    // Forget every partial reply (the connection was lost).
    reset() {
      this.pending.clear();
    }
  }

  exports.ChunkAssembler = ChunkAssembler;
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
