// Fakes shared by the tests: a port like chrome.runtime's (native or between extension parts).
"use strict";

function fakePort(name) {
  const listeners = {message: [], disconnect: []};
  return {
    name,
    sent: [],
    disconnected: false,
    onMessage: {
      addListener: (f) => listeners.message.push(f),
      removeListener: (f) => listeners.message.splice(listeners.message.indexOf(f) >>> 0, 1),
    },
    onDisconnect: {addListener: (f) => listeners.disconnect.push(f)},
    postMessage(message) {
      if (this.disconnected) throw new Error("Attempting to use a disconnected port object");
      this.sent.push(message);
    },
    // the other side: a message arrives, or the other side goes away
    deliver(message) { listeners.message.slice().forEach((f) => f(message)); },
    drop() {
      this.disconnected = true;
      listeners.disconnect.forEach((f) => f());
    },
    // this side closes the port (its own onDisconnect does not fire, as in browsers)
    disconnect() { this.disconnected = true; },
  };
}

module.exports = {fakePort};
