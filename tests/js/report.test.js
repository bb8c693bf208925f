// What the report page keeps of the agent's HTML report (the DOM part runs in the browser; this is its rule).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {keepsAttribute} = require("../../extension/lib/report-import.js");

test("event handlers and inline styles never survive", () => {
  assert.equal(keepsAttribute("div", "onclick", "alert(1)"), false);
  assert.equal(keepsAttribute("svg", "ONLOAD", "x"), false);
  assert.equal(keepsAttribute("p", "style", "color:red"), false);
});

test("of URLs only links within the report or to web pages survive", () => {
  assert.equal(keepsAttribute("a", "href", "#marks"), true);
  assert.equal(keepsAttribute("a", "href", " https://example.org/about"), true);
  assert.equal(keepsAttribute("A", "href", "javascript:alert(1)"), false);
  assert.equal(keepsAttribute("a", "href", "data:text/html,<script>"), false);
  assert.equal(keepsAttribute("a", "href", "file:///etc/passwd"), false);
  assert.equal(keepsAttribute("img", "src", "https://tracker.example/p.gif"), false);
  assert.equal(keepsAttribute("use", "xlink:href", "https://x/y.svg#a"), false);
  assert.equal(keepsAttribute("image", "href", "#local"), false); // only <a> links
});

test("ordinary attributes survive", () => {
  assert.equal(keepsAttribute("p", "class", "verdict detected"), true);
  assert.equal(keepsAttribute("svg", "viewBox", "0 0 100 50"), true);
  assert.equal(keepsAttribute("svg", "role", "img"), true);
  assert.equal(keepsAttribute("td", "data-label", "Site"), true);
});
