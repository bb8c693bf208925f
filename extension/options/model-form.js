// The options page's "Add a model" form: which fields a kind of model needs, models.save, and the agent's
// verdict on the entry next to the field it is about.
"use strict";

(() => {
  const {callAgent, el, KINDS, CUSTOM_FORMAT, presetChoice, presetOfChoice, visibleFields, locationPrompt,
         buildSaveParams} = globalThis.Isotopes;
  const form = document.getElementById("add-model");
  const kind = document.getElementById("model-kind");
  const format = document.getElementById("model-format");
  const button = document.getElementById("save-model");
  const status = document.getElementById("add-model-status");
  const generalError = document.getElementById("add-model-error");
  // The form's controls by the name the agent gives the field (a bad_model error's `field`).
  const controls = {
    name: "model-name", kind: "model-kind", location: "model-location", preset: "model-format",
    labels: "model-labels", size: "model-size", api_config: "model-api-config", aux: "model-aux",
    own: "model-own", label: "model-label",
  };
  const control = (field) => document.getElementById(controls[field]);
  let presets = [];
  let formatChosen = false; // the user picked an answer format: a new list of presets keeps it
  let onSaved = () => {};

  kind.replaceChildren(...KINDS.map((entry) => el("option", {value: entry.value}, entry.label)));

  function showFormats() {
    const chosen = formatChosen ? format.value : null;
    format.replaceChildren(
      ...presets.map((preset) => el("option", {value: presetChoice(preset.name)}, preset.name)),
      el("option", {value: CUSTOM_FORMAT}, "Custom API config file"));
    if ([...format.options].some((option) => option.value === chosen)) format.value = chosen;
  }

  // Show the fields the chosen kind and answer format need, and what the location and format mean.
  function showFields() {
    const visible = visibleFields(kind.value, format.value);
    for (const wrapper of form.querySelectorAll(".field[data-field]")) {
      wrapper.hidden = !visible[wrapper.dataset.field];
    }
    const prompt = locationPrompt(kind.value);
    document.getElementById("model-location-label").textContent = prompt.label;
    document.getElementById("model-location-hint").textContent = prompt.hint;
    control("location").setAttribute("inputmode", kind.value === "http" ? "url" : "text");
    const preset = presets.find((entry) => entry.name === presetOfChoice(format.value));
    document.getElementById("model-format-hint").textContent = preset ? preset.description
      : "Describe the API in a config file of your own.";
  }

  function clearError(field) {
    const input = control(field);
    input.removeAttribute("aria-invalid");
    document.getElementById(`${input.id}-error`).textContent = "";
  }

  function clearErrors() {
    Object.keys(controls).forEach(clearError);
    generalError.textContent = "";
  }

  // Say what is wrong next to the field at fault and put the cursor there; a field the form does not show
  // (or none) gets the message below the form.
  function showProblem(field, message) {
    const input = field && controls[field] ? control(field) : null;
    const wrapper = input && input.closest(".field");
    if (!input || (wrapper && wrapper.hidden)) {
      generalError.textContent = message;
      return;
    }
    document.getElementById(`${input.id}-error`).textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    clearErrors();
    const values = Object.fromEntries(Object.keys(controls).map((field) => [field, control(field).value]));
    values.format = format.value;
    const {params, problem} = buildSaveParams(values);
    if (problem) {
      showProblem(problem.field, problem.message);
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.textContent = "Checking the model… This can take up to a minute.";
    try {
      const saved = await callAgent("models.save", params);
      form.reset();
      formatChosen = false;
      showFormats();
      showFields();
      status.textContent = `Saved “${saved.name}”.`;
      onSaved(saved);
    } catch (error) {
      status.textContent = "";
      if (error.code === "bad_model") showProblem(error.details.field, error.message);
      else generalError.textContent = `The model was not saved: ${error.message}`;
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  for (const field of Object.keys(controls)) control(field).addEventListener("input", () => clearError(field));
  kind.addEventListener("change", showFields);
  format.addEventListener("change", () => {
    formatChosen = true;
    showFields();
  });
  showFormats();
  showFields();

  globalThis.Isotopes.modelForm = {
    // The answer formats the agent knows (models.list's `presets`).
    setPresets(list) {
      presets = Array.isArray(list) ? list : [];
      showFormats();
      showFields();
    },
    // Called with each model saved.
    onSaved(callback) {
      onSaved = callback;
    },
  };
})();
