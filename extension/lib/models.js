// Saved models (native_host/PROTOCOL.md, "Saved models"): the add-model form's values turned into models.save's
// params, which of its fields apply, and a saved model described in words.
(function (exports) {
  "use strict";

  const KINDS = [
    {value: "http", label: "Model API (HTTP)", what: "Model API"},
    {value: "onnx", label: "ONNX file", what: "ONNX file"},
    {value: "torchscript", label: "TorchScript file", what: "TorchScript file"},
  ];
  const CUSTOM_FORMAT = "custom"; // the answer-format choice "Custom API config file"
  const PRESET_PREFIX = "preset:"; // a preset's choice is PRESET_PREFIX + its name, so no name can mean "custom"
  const MIN_SIZE = 8;
  const MAX_SIZE = 1024;

  function presetChoice(name) {
    return PRESET_PREFIX + name;
  }

  // The preset named by an answer-format choice, or null ("custom", or nothing chosen).
  function presetOfChoice(choice) {
    const text = String(choice || "");
    return text.startsWith(PRESET_PREFIX) && text.length > PRESET_PREFIX.length
      ? text.slice(PRESET_PREFIX.length) : null;
  }

  // Label names from the labels box: one per line; a single line with commas is a comma-separated list.
  function parseLabels(text) {
    const lines = String(text || "").split(/\r\n|\r|\n/).map((line) => line.trim()).filter(Boolean);
    if (lines.length === 1 && lines[0].includes(",")) {
      return lines[0].split(",").map((label) => label.trim()).filter(Boolean);
    }
    return lines;
  }

  // Which of the form's optional fields apply to a kind and answer-format choice.
  function visibleFields(kind, choice) {
    const http = kind === "http";
    const preset = http && presetOfChoice(choice) !== null;
    return {format: http, labels: preset, size: preset, api_config: http && choice === CUSTOM_FORMAT};
  }

  // What the location field asks for.
  function locationPrompt(kind) {
    return kind === "http"
      ? {label: "API address (URL)", hint: "Where the model answers, e.g. https://api.example/v1/classify"}
      : {label: "Model file", hint: "The full path of the model file on this computer; a sidecar MODEL.json " +
                                    "next to it gives its input size and labels."};
  }

  function problem(field, message) {
    return {params: null, problem: {field, message}};
  }

  // models.save's params from the form's values (strings, as the controls hold them): {params, problem: null},
  // or {params: null, problem: {field, message}} for the first value that cannot be right, `field` named as
  // the agent names it in a bad_model error.
  function buildSaveParams(values) {
    const text = (name) => String((values && values[name]) || "").trim();
    const params = {};
    if (!text("name")) return problem("name", "Give the model a name.");
    params.name = text("name");
    const kind = text("kind");
    if (!KINDS.some((entry) => entry.value === kind)) return problem("kind", "Choose what kind of model it is.");
    params.kind = kind;
    const location = text("location");
    if (kind === "http") {
      if (!/^https?:\/\/[^\s/]+/i.test(location)) {
        return problem("location", "Enter the API's address, starting with http:// or https://.");
      }
    } else if (!location) {
      return problem("location", "Enter the path of the model file.");
    }
    params.location = location;
    if (kind === "http") {
      const choice = text("format");
      const preset = presetOfChoice(choice);
      if (choice === CUSTOM_FORMAT) {
        if (!text("api_config")) return problem("api_config", "Enter the path of the API config file.");
        params.api_config = text("api_config");
      } else if (preset !== null) {
        const labels = parseLabels(values.labels);
        if (labels.length < 2) {
          return problem("labels", "List the model's labels (at least two), one per line, in the API's order.");
        }
        const size = Number(text("size"));
        if (!text("size") || !Number.isInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
          return problem("size", `Enter the input size in pixels, a whole number from ${MIN_SIZE} to ${MAX_SIZE}.`);
        }
        Object.assign(params, {preset, labels, size});
      } else {
        return problem("preset", "Choose how the API answers.");
      }
    }
    if (!text("aux")) return problem("aux", "Enter the folder of aux photos.");
    params.aux = text("aux");
    if (text("own")) params.own = text("own");
    if (text("label")) params.label = text("label");
    if (text("id")) params.id = Number(text("id"));
    return {params, problem: null};
  }

  // A saved model in words, as [term, description] pairs.
  function describeModel(model) {
    const kind = KINDS.find((entry) => entry.value === model.kind);
    const labels = Array.isArray(model.labels) ? model.labels.length : 0;
    const output = model.output === "ranks" ? "rankings only" : model.output === "probabilities"
      ? "probabilities" : null;
    const answers = [`${labels} label${labels === 1 ? "" : "s"}`];
    if (output) answers.push(`answers with ${output}`);
    if (model.preset) answers.push(`format ${model.preset}`);
    else if (model.api_config) answers.push(`config ${model.api_config}`);
    if (Array.isArray(model.size) && model.size.length === 2) answers.push(`${model.size[0]}×${model.size[1]} pixels`);
    const rows = [
      [kind ? kind.what : String(model.kind), String(model.location)],
      ["Answers", answers.join(", ")],
      ["Aux photos", typeof model.aux_images === "number" ? `${model.aux_images} in ${model.aux}` : String(model.aux)],
    ];
    if (model.own) {
      rows.push(["Your photos", typeof model.own_images === "number" ? `${model.own_images} in ${model.own}`
        : String(model.own)]);
    }
    rows.push(["Label", !model.label || model.label === "auto" ? "found automatically" : String(model.label)]);
    return rows;
  }

  Object.assign(exports, {KINDS, CUSTOM_FORMAT, presetChoice, presetOfChoice, parseLabels, visibleFields,
                          locationPrompt, buildSaveParams, describeModel});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
