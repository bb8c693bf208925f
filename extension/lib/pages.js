// Shared by the popup and the options page: talking to the agent through the background, and small DOM helpers.
(function (exports) {
  "use strict";

  class PageError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  // Run an agent action (native_host/PROTOCOL.md) and return its data, or throw PageError.
  async function callAgent(action, params) {
    const reply = await globalThis.Isotopes.ext.runtime.sendMessage({type: "agent", action, params});
    if (!reply) throw new PageError("agent_unavailable", "the extension's background did not answer");
    if (!reply.ok) throw new PageError(reply.error.code, reply.error.message);
    return reply.data;
  }

  // Create an element: el("button", {type: "button", onclick: f}, "Enable").
  function el(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (value === true) element.setAttribute(name, "");
      else if (value !== false && value !== null && value !== undefined) element.setAttribute(name, value);
    }
    element.append(...children.filter((child) => child !== null && child !== undefined));
    return element;
  }

  function rotationLabel(seconds) {
    if (!seconds) return "never";
    const days = seconds / 86400;
    return days >= 1 ? `every ${Math.round(days)} days` : `every ${Math.round(seconds / 3600)} hours`;
  }

  Object.assign(exports, {callAgent, PageError, el, rotationLabel});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
