// The add-model form's logic: labels, which fields apply, models.save's params and the problems found first.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {parseLabels, buildSaveParams, visibleFields, presetChoice, presetOfChoice, CUSTOM_FORMAT, describeModel,
       locationPrompt} = require("../../extension/lib/models.js");

test("labels: one per line, or comma-separated on one line, trimmed, blanks dropped", () => {
  assert.deepEqual(parseLabels("T-shirt/top\r\n  Trouser \n\nPullover\n"), ["T-shirt/top", "Trouser", "Pullover"]);
  assert.deepEqual(parseLabels(" cat, dog ,, bird "), ["cat", "dog", "bird"]);
  assert.deepEqual(parseLabels("a, b\nc"), ["a, b", "c"]); // several lines: a comma is part of a label
  assert.deepEqual(parseLabels("single"), ["single"]);
  assert.deepEqual(parseLabels("  \n "), []);
  assert.deepEqual(parseLabels(undefined), []);
});

test("answer-format choices name presets without clashing with the custom choice", () => {
  assert.equal(presetOfChoice(presetChoice("scores-vector")), "scores-vector");
  assert.equal(presetOfChoice(presetChoice("custom")), "custom"); // a preset may even be called that
  assert.equal(presetOfChoice(CUSTOM_FORMAT), null);
  assert.equal(presetOfChoice(""), null);
  assert.equal(presetOfChoice("preset:"), null);
});

test("fields shown follow the kind and the answer format", () => {
  const preset = presetChoice("scores-vector");
  assert.deepEqual(visibleFields("http", preset), {format: true, labels: true, size: true, api_config: false});
  assert.deepEqual(visibleFields("http", CUSTOM_FORMAT), {format: true, labels: false, size: false, api_config: true});
  assert.deepEqual(visibleFields("onnx", preset), {format: false, labels: false, size: false, api_config: false});
  assert.deepEqual(visibleFields("torchscript", CUSTOM_FORMAT),
                   {format: false, labels: false, size: false, api_config: false});
  assert.match(locationPrompt("http").label, /URL/);
  assert.match(locationPrompt("onnx").label, /file/i);
});

const HTTP = {name: " Fashion ", kind: "http", location: " http://127.0.0.1:8080/predict ",
              format: presetChoice("scores-vector"), labels: "T-shirt/top\nTrouser\nPullover", size: "28",
              api_config: "/ignored.toml", aux: "/home/u/aux", own: "", label: ""};

test("a preset model API's params: labels as a list, size as a number, empty optional fields left out", () => {
  assert.deepEqual(buildSaveParams(HTTP), {problem: null, params: {
    name: "Fashion", kind: "http", location: "http://127.0.0.1:8080/predict", preset: "scores-vector",
    labels: ["T-shirt/top", "Trouser", "Pullover"], size: 28, aux: "/home/u/aux"}});
});

test("a custom API config, and a model file, carry only their own fields", () => {
  const custom = buildSaveParams({...HTTP, format: CUSTOM_FORMAT, own: " /home/u/me ", label: "Shirt"});
  assert.deepEqual(custom.params, {name: "Fashion", kind: "http", location: "http://127.0.0.1:8080/predict",
                                   api_config: "/ignored.toml", aux: "/home/u/aux", own: "/home/u/me",
                                   label: "Shirt"});
  const onnx = buildSaveParams({...HTTP, kind: "onnx", location: "/models/m.onnx", label: "3"});
  assert.deepEqual(onnx.params, {name: "Fashion", kind: "onnx", location: "/models/m.onnx", aux: "/home/u/aux",
                                 label: "3"});
  assert.equal(buildSaveParams({...HTTP, id: "4"}).params.id, 4);
});

test("the first problem names the field the agent would name", () => {
  const field = (values) => buildSaveParams(values).problem && buildSaveParams(values).problem.field;
  assert.equal(field({...HTTP, name: "  "}), "name");
  assert.equal(field({...HTTP, kind: "pickle"}), "kind");
  assert.equal(field({...HTTP, location: "127.0.0.1:8080/predict"}), "location");
  assert.equal(field({...HTTP, location: "file:///etc/passwd"}), "location");
  assert.equal(field({...HTTP, kind: "onnx", location: ""}), "location");
  assert.equal(field({...HTTP, format: ""}), "preset");
  assert.equal(field({...HTTP, labels: "only-one"}), "labels");
  assert.equal(field({...HTTP, size: "7"}), "size");
  assert.equal(field({...HTTP, size: "1025"}), "size");
  assert.equal(field({...HTTP, size: "28.5"}), "size");
  assert.equal(field({...HTTP, size: ""}), "size");
  assert.equal(field({...HTTP, format: CUSTOM_FORMAT, api_config: " "}), "api_config");
  assert.equal(field({...HTTP, aux: ""}), "aux");
  assert.equal(field({...HTTP, kind: "onnx", location: "/m.onnx", labels: "", size: "", format: ""}), null);
  const {params, problem} = buildSaveParams({...HTTP, name: "", aux: ""});
  assert.equal(params, null);
  assert.equal(problem.field, "name"); // the first one, in the form's order
  assert.ok(problem.message.length > 0);
});

test("a saved model in words", () => {
  const rows = new Map(describeModel({
    id: 3, name: "Fashion classifier", kind: "http", location: "http://127.0.0.1:8080/predict",
    preset: "scores-vector", api_config: null, aux: "/home/u/aux", own: "/home/u/me", label: "auto",
    labels: ["a", "b", "c"], output: "probabilities", size: [28, 28], aux_images: 200, own_images: 12}));
  assert.equal(rows.get("Model API"), "http://127.0.0.1:8080/predict");
  assert.equal(rows.get("Answers"), "3 labels, answers with probabilities, format scores-vector, 28×28 pixels");
  assert.equal(rows.get("Aux photos"), "200 in /home/u/aux");
  assert.equal(rows.get("Your photos"), "12 in /home/u/me");
  assert.equal(rows.get("Label"), "found automatically");
  const file = new Map(describeModel({kind: "torchscript", location: "/m.pt", aux: "/a", label: "Shirt",
                                      labels: ["x"], output: "ranks", own: null}));
  assert.equal(file.get("TorchScript file"), "/m.pt");
  assert.equal(file.get("Answers"), "1 label, answers with rankings only");
  assert.equal(file.get("Aux photos"), "/a");
  assert.equal(file.has("Your photos"), false);
  assert.equal(file.get("Label"), "Shirt");
});
