// Bringing the agent's self-contained HTML report into an extension page: its CSS (for a constructable
// stylesheet: the extension's CSP blocks inline <style>), and its body with anything active taken out.
(function (exports) {
  "use strict";

  const REMOVED = "script, iframe, frame, frameset, object, embed, applet, link, meta, base, style, noscript, " +
                  "template, form, animate, set";
  const URL_ATTRIBUTES = new Set(["href", "src", "xlink:href", "action", "formaction", "srcset", "poster", "data"]);

  // The text of every <style> element of a parsed document, in order.
  function reportCss(doc) {
    return Array.from(doc.querySelectorAll("style"), (style) => style.textContent).join("\n");
  }

  // Whether an imported element `tag` keeps its attribute `name` = `value`: no event handlers, no inline styles
  // (the CSP blocks them), and of URLs only links (<a href>) within the report or to a web page: nothing that
  // loads by itself, runs (javascript:) or opens data.
  function keepsAttribute(tag, name, value) {
    const attribute = String(name).toLowerCase();
    if (attribute.startsWith("on") || attribute === "style") return false;
    if (!URL_ATTRIBUTES.has(attribute)) return true;
    return attribute === "href" && String(tag).toLowerCase() === "a" &&
      /^(#|https?:\/\/)/i.test(String(value).trim());
  }

  // Take out of `root` (in place) every element that can run, load or submit anything and every attribute
  // keepsAttribute refuses; returns `root`.
  function sanitize(root) {
    for (const element of Array.from(root.querySelectorAll(REMOVED))) element.remove();
    for (const element of [root, ...root.querySelectorAll("*")]) {
      for (const attribute of Array.from(element.attributes || [])) {
        if (!keepsAttribute(element.localName, attribute.name, attribute.value)) {
          element.removeAttribute(attribute.name);
        }
      }
    }
    for (const link of root.querySelectorAll("a[href]")) {
      if (!link.getAttribute("href").trim().startsWith("#")) {
        link.setAttribute("target", "_blank");
        link.setAttribute("rel", "noopener noreferrer");
      }
    }
    return root;
  }

  // The report `html` (a complete document) parsed with `parser` (a DOMParser): {title, css, body}, with the
  // body sanitized and still in the parsed document (adopt its children into the page).
  function importReport(html, parser) {
    // The parsed document inherits the page's CSP: Chromium logs that the report's <style> is not applied
    // there (it is not, and does not need to be: its text becomes a constructable stylesheet).
    const doc = parser.parseFromString(String(html), "text/html");
    const css = reportCss(doc);
    const body = sanitize(doc.body || doc.createElement("body"));
    return {title: doc.title || "", css, body};
  }

  Object.assign(exports, {keepsAttribute, sanitize, reportCss, importReport});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
