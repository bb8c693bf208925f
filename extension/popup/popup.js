// The popup: is the agent there and unlocked, is marking on for this site, which mark, how many uploads.
"use strict";

(() => {
  const {callAgent, el, rotationLabel, PRESET_SITES, ext} = globalThis.Isotopes;
  const agentStatus = document.getElementById("agent-status");
  const unlockForm = document.getElementById("unlock-form");
  const siteBox = document.getElementById("site");
  const presets = document.getElementById("presets");

  // The tab the popup is about: the active one, or ?tab=ID when the popup is opened as a page (tests do).
  async function activeTabUrl() {
    const requested = Number(new URLSearchParams(location.search).get("tab"));
    const [tab] = requested ? [await ext.tabs.get(requested)]
      : await ext.tabs.query({active: true, currentWindow: true});
    return tab && tab.url;
  }

  async function showAgent() {
    try {
      const hello = await callAgent("hello");
      const vault = hello.vault;
      const vaultText = !vault.exists ? "no vault yet: run `isotopes init`"
        : vault.problem ? `vault problem: ${vault.problem.message}`
          : vault.protected && !vault.unlocked ? "vault locked" : "vault unlocked";
      agentStatus.textContent = `Connected to agent ${hello.agent_version}; ${vaultText}.`;
      unlockForm.hidden = !(vault.exists && vault.protected && !vault.unlocked);
      return true;
    } catch (error) {
      agentStatus.textContent = `Not connected: ${error.message}. Photos on enabled sites are handled by each ` +
        "site's fail-safe choice until the agent is back.";
      unlockForm.hidden = true;
      return false;
    }
  }

  async function showSite() {
    const url = await activeTabUrl();
    siteBox.replaceChildren();
    if (!/^https?:/.test(url || "")) {
      siteBox.append(el("p", {}, "This page is not a website."));
      return;
    }
    let settings;
    try {
      settings = await callAgent("sites.get", {url});
    } catch (error) {
      siteBox.append(el("p", {}, error.code === "bad_request" ? "This page is not a website." : error.message));
      return;
    }
    const [{marks}, {sites}] = await Promise.all([callAgent("marks.list", {site: settings.site}),
                                                  callAgent("stats")]);
    const current = marks.find((mark) => mark.current);
    const counts = sites[settings.site] || {marked: 0};
    const toggle = el("button", {type: "button", id: "toggle-site", "aria-pressed": String(settings.enabled),
                                 onclick: async () => {
                                   toggle.disabled = true;
                                   await callAgent("sites.set", {site: settings.site, enabled: !settings.enabled});
                                   await refresh();
                                 }},
                      settings.enabled ? "Stop marking here" : "Mark my photos here");
    siteBox.append(
      el("p", {id: "site-name"}, el("strong", {}, settings.site), settings.enabled ? ": marking is on" :
        ": marking is off"),
      el("dl", {},
         el("dt", {}, "Mark"), el("dd", {id: "mark-id"}, current ? current.mark_id : "none issued yet"),
         el("dt", {}, "Photos marked here"), el("dd", {id: "marked-count"}, String(counts.marked || 0)),
         el("dt", {}, "Strength"), el("dd", {}, settings.alpha.toFixed(2)),
         el("dt", {}, "New mark"), el("dd", {}, rotationLabel(settings.rotation_seconds)),
         el("dt", {}, "If a photo cannot be marked"),
         el("dd", {}, settings.on_failure === "block" ? "block the upload" : "upload the original and tell me")),
      toggle);
  }

  async function showPresets() {
    let known = [];
    try {
      known = (await callAgent("sites.get")).sites;
    } catch (error) {
      return;
    }
    presets.replaceChildren(...PRESET_SITES.map((site) => {
      const entry = known.find((item) => item.site === site);
      const enabled = Boolean(entry && entry.enabled);
      return el("li", {},
                el("span", {}, site),
                el("button", {type: "button", "aria-pressed": String(enabled), "aria-label":
                  `${enabled ? "Stop marking on" : "Mark my photos on"} ${site}`,
                onclick: async () => {
                  await callAgent("sites.set", {site, enabled: !enabled});
                  await refresh();
                }}, enabled ? "On" : "Off"));
    }));
  }

  unlockForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("passphrase");
    const problem = document.getElementById("unlock-error");
    try {
      await callAgent("unlock", {passphrase: field.value});
      field.value = "";
      problem.textContent = "";
      await refresh();
    } catch (error) {
      problem.textContent = error.code === "wrong_passphrase" ? "That passphrase is not right." : error.message;
      field.select();
    }
  });

  async function refresh() {
    if (await showAgent()) await Promise.all([showSite(), showPresets()]);
  }

  refresh();
})();
