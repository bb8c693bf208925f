// The WebExtension API: Firefox's promise-based `browser`, or Chromium's `chrome` (promise-based in MV3).
(function (exports) {
  "use strict";

  exports.ext = globalThis.browser || globalThis.chrome;
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
