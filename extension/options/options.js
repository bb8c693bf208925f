// The options page: the site list with each site's strength, rotation and fail-safe, and a live preview.
"use strict";

(() => {
  const {callAgent, el, bytesToBase64} = globalThis.Isotopes;
  const ROTATIONS = [["never", null], ["every 30 days", 30 * 86400], ["every 90 days", 90 * 86400],
                     ["every year", 365 * 86400]];
  const tbody = document.querySelector("#sites tbody");
  const previewSite = document.getElementById("preview-site");
  const previewAlpha = document.getElementById("preview-alpha");
  let sites = [];

  // Save one change. The controls already show it, so nothing is redrawn (focus stays where the user is);
  // only a refused change reloads the table, to show what the agent kept.
  async function save(site, changes) {
    try {
      const saved = await callAgent("sites.set", {site, ...changes});
      sites = sites.map((entry) => (entry.site === site ? saved : entry));
      const label = tbody.querySelector(`tr[data-site="${CSS.escape(site)}"] td[data-label="Marking"] label`);
      if (label) label.textContent = saved.enabled ? " on" : " off";
    } catch (error) {
      document.getElementById("add-error").textContent = `${site}: ${error.message}`;
      await load();
    }
  }

  function row(entry) {
    const id = entry.site.replace(/[^a-z0-9]/gi, "-");
    const strength = el("input", {type: "range", min: "0.05", max: "0.6", step: "0.05", value: String(entry.alpha),
                                  id: `alpha-${id}`, "aria-label": `Strength for ${entry.site}`});
    const strengthValue = el("output", {for: `alpha-${id}`}, entry.alpha.toFixed(2));
    strength.addEventListener("input", () => { strengthValue.textContent = Number(strength.value).toFixed(2); });
    strength.addEventListener("change", () => save(entry.site, {alpha: Number(strength.value)}));
    const rotation = el("select", {"aria-label": `New mark for ${entry.site}`,
                                   onchange: (event) => save(entry.site, {rotation_seconds:
                                     ROTATIONS[event.target.selectedIndex][1]})},
                        ...ROTATIONS.map(([label, seconds]) => el("option", {selected: seconds ===
                          entry.rotation_seconds}, label)));
    const failure = el("select", {"aria-label": `If a photo for ${entry.site} cannot be marked`,
                                  onchange: (event) => save(entry.site, {on_failure: event.target.value})},
                       el("option", {value: "block", selected: entry.on_failure === "block"}, "block the upload"),
                       el("option", {value: "original", selected: entry.on_failure === "original"},
                          "upload the original and tell me"));
    const enabled = el("input", {type: "checkbox", checked: entry.enabled, id: `enabled-${id}`,
                                 onchange: (event) => save(entry.site, {enabled: event.target.checked})});
    return el("tr", {"data-site": entry.site},
              el("th", {scope: "row"}, entry.site),
              el("td", {"data-label": "Marking"}, enabled,
                 el("label", {for: `enabled-${id}`}, entry.enabled ? " on" : " off")),
              el("td", {"data-label": "Strength"}, strength, " ", strengthValue),
              el("td", {"data-label": "New mark"}, rotation),
              el("td", {"data-label": "If a photo cannot be marked"}, failure));
  }

  async function load() {
    try {
      const hello = await callAgent("hello");
      document.getElementById("agent-status").textContent = `Connected to agent ${hello.agent_version}.`;
      sites = (await callAgent("sites.get")).sites;
    } catch (error) {
      document.getElementById("agent-status").textContent = `Not connected to the agent: ${error.message}`;
      sites = [];
    }
    tbody.replaceChildren(...sites.map(row));
    const chosen = previewSite.value;
    previewSite.replaceChildren(...sites.map((entry) => el("option", {value: entry.site}, entry.site)));
    if (sites.some((entry) => entry.site === chosen)) previewSite.value = chosen;
    schedulePreview();
  }

  document.getElementById("add-site").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("new-site");
    const problem = document.getElementById("add-error");
    try {
      const added = await callAgent("sites.set", {url: field.value.includes("://") ? field.value :
        `https://${field.value.trim()}/`, enabled: true});
      problem.textContent = "";
      field.value = "";
      await load();
      previewSite.value = added.site;
      schedulePreview();
    } catch (error) {
      problem.textContent = error.message;
    }
  });

  // --- live preview --------------------------------------------------------------------------------------------

  let sample = null;
  let timer = null;
  let generation = 0;

  async function sampleBase64() {
    if (!sample) {
      const bytes = new Uint8Array(await (await fetch("../assets/sample.jpg")).arrayBuffer());
      sample = bytesToBase64(bytes);
    }
    return sample;
  }

  function schedulePreview() {
    document.getElementById("preview-alpha-value").textContent = Number(previewAlpha.value).toFixed(2);
    clearTimeout(timer);
    timer = setTimeout(renderPreview, 120);
  }

  async function renderPreview() {
    const site = previewSite.value;
    const after = document.getElementById("preview-after");
    const problem = document.getElementById("preview-error");
    if (!site) {
      after.removeAttribute("src");
      problem.textContent = "Add a site to see its mark.";
      return;
    }
    const ticket = ++generation;
    try {
      const alpha = Number(previewAlpha.value);
      const data = await callAgent("marks.preview", {site, alpha, image: await sampleBase64()});
      if (ticket !== generation) return; // a newer request is on its way
      after.src = `data:image/jpeg;base64,${data.image}`;
      document.getElementById("preview-caption").textContent = `After: ${site} at strength ${alpha.toFixed(2)}`;
      problem.textContent = "";
    } catch (error) {
      problem.textContent = error.message;
    }
  }

  previewSite.addEventListener("change", schedulePreview);
  previewAlpha.addEventListener("input", schedulePreview);
  load();
})();
