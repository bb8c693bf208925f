// Bytes <-> base64 for photos on their way to and from the agent (JSON carries only text).
(function (exports) {
  "use strict";

  const CHUNK = 0x8000;

  function bytesToBase64(bytes) {
    let binary = "";
    for (let offset = 0; offset < bytes.length; offset += CHUNK) {
      binary += String.fromCharCode.apply(null, bytes.subarray(offset, offset + CHUNK));
    }
    return btoa(binary);
  }

  function base64ToBytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
    return bytes;
  }

  // A Blob or File as base64, read by the browser itself. A string also crosses safely out of a page's File
  // in a Firefox content script, where the page's buffers cannot be wrapped ("Permission denied").
  function blobBase64(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).slice(String(reader.result).indexOf(",") + 1));
      reader.onerror = () => reject(reader.error || new Error("the file could not be read"));
      reader.readAsDataURL(blob);
    });
  }

  Object.assign(exports, {bytesToBase64, base64ToBytes, blobBase64});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
