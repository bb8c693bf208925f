// The extension's background: the one connection to the local agent, the cache of site settings, and the
// badge and notifications that tell the user what happened to their uploads.
"use strict";

if (typeof importScripts === "function") {
  importScripts("lib/webext.js", "lib/chunks.js", "lib/sites.js", "lib/agent.js", "lib/watch-relay.js");
}

const {AgentClient, AgentError, WatchRelay, WATCH_PORT, enabledSiteForHost, errorJson, ext} = globalThis.Isotopes;
const HOST_NAME = "org.isotopes.agent";
const EXTENSION_ORIGIN = ext.runtime.getURL("");

const agent = new AgentClient(() => ext.runtime.connectNative(HOST_NAME),
                              () => ext.runtime.lastError && ext.runtime.lastError.message);

// Site settings live in the agent. A copy is kept in storage so the fail-safe still knows each site's
// choice when the agent is missing; every question asks the agent first (a local call of about a millisecond),
// so a change made on the command line shows up at the next page load.
let lastSites = null;

async function knownSites() {
  try {
    const {sites} = await agent.request("sites.get");
    const text = JSON.stringify(sites);
    if (text !== lastSites) { // only a real change wakes the content scripts (storage.onChanged)
      lastSites = text;
      await ext.storage.local.set({sites});
    }
    return sites;
  } catch (error) {
    return (await ext.storage.local.get("sites")).sites || [];
  }
}

// Settings changed on the command line reach open pages within this period.
const SETTINGS_POLL_MS = 5000;
setInterval(() => knownSites(), SETTINGS_POLL_MS);

// The page a content script runs for: its own frame's address (an upload from an iframe goes to the iframe's
// site), or for about:blank frames the origin they inherit.
function pageUrlOf(sender) {
  return /^https?:/.test(sender.url || "") ? sender.url : sender.origin || "";
}

function hostOf(url) {
  try {
    return new URL(url).hostname;
  } catch (error) {
    return "";
  }
}

// --- badge and notifications ---------------------------------------------------------------------------------

const markedPerTab = new Map();

async function showMarked(tabId) {
  const count = (markedPerTab.get(tabId) || 0) + 1;
  markedPerTab.set(tabId, count);
  await ext.action.setBadgeBackgroundColor({tabId, color: "#1d6b3a"});
  await ext.action.setBadgeText({tabId, text: String(count)});
}

// A file name comes from the page: shown only shortened and stripped of control characters.
function safeName(name) {
  const clean = String(name || "a photo").replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "");
  return clean.length > 60 ? `${clean.slice(0, 57)}...` : clean;
}

async function showFailSafe(tabId, choice, name, reason) {
  await ext.action.setBadgeBackgroundColor({tabId, color: "#b3261e"});
  await ext.action.setBadgeText({tabId, text: "!"});
  const title = choice === "original" ? "Uploaded without your mark" : "Upload blocked";
  const file = `"${safeName(name)}"`;
  const message = choice === "original"
    ? `${file} was uploaded unmarked: ${reason}`
    : `${file} was not uploaded because it could not be marked: ${reason}`;
  await ext.notifications.create({type: "basic", iconUrl: "icons/icon-128.png", title, message});
}

ext.tabs.onRemoved.addListener((tabId) => markedPerTab.delete(tabId));

// --- messages ------------------------------------------------------------------------------------------------

function fromExtensionPage(sender) {
  return Boolean(sender) && typeof sender.url === "string" && sender.url.startsWith(EXTENSION_ORIGIN);
}

// Actions that may take longer than the client's usual minute: models.save checks the model in a process of
// its own for up to 60 s, verify.start loads the model's runtime before it answers.
const SLOW_ACTIONS = {"models.save": 150000, "verify.start": 150000};

const handlers = {
  // Content scripts: is marking on for the page's site (the top-level page of the tab)?
  async "site-status"(message, sender) {
    const host = hostOf(pageUrlOf(sender));
    return {host, site: enabledSiteForHost(host, await knownSites())};
  },

  // Content scripts: mark one photo for the frame's site.
  async mark(message, sender) {
    const url = pageUrlOf(sender);
    const data = await agent.request("mark", {image: message.image, url, name: message.name, type: message.mime,
                                              origin: sender.origin});
    if (data.status === "marked" && sender.tab) await showMarked(sender.tab.id);
    return data;
  },

  // Content scripts: the fail-safe was applied to a file.
  async "fail-safe"(message, sender) {
    if (sender.tab) await showFailSafe(sender.tab.id, message.choice, message.name, message.reason);
    return {};
  },

  // Extension pages only (popup, options): any agent action.
  async agent(message, sender) {
    if (!fromExtensionPage(sender)) throw new AgentError("forbidden", "only the extension's own pages may do that");
    const timeoutMs = SLOW_ACTIONS[message.action];
    const data = await agent.request(message.action, message.params, timeoutMs ? {timeoutMs} : undefined);
    if (message.action === "sites.set" || message.action === "unlock") await knownSites();
    return data;
  },
};

ext.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const handler = message && Object.prototype.hasOwnProperty.call(handlers, message.type) && handlers[message.type];
  if (!handler) return false;
  handler(message, sender).then(
    (data) => sendResponse({ok: true, data}),
    (error) => sendResponse({ok: false, error: errorJson(error)}));
  return true; // the answer comes asynchronously
});

// Extension pages watch a verification run over a Port (lib/watch-relay.js): progress arrives as it happens,
// with no time limit (a slow model API can take minutes between events), until the run ends.
const watches = new WatchRelay(
  (run, onEvent) => agent.request("verify.watch", {run}, {onEvent, timeoutMs: 0}), errorJson);

ext.runtime.onConnect.addListener((port) => {
  if (port.name !== WATCH_PORT) return;
  if (!fromExtensionPage(port.sender)) {
    port.disconnect();
    return;
  }
  const start = (message) => {
    port.onMessage.removeListener(start);
    const run = message && message.run;
    if (typeof run !== "string" || !run) {
      port.postMessage({ok: false, error: {code: "bad_request", message: "parameter 'run' must be a run id"}});
      return;
    }
    watches.attach(port, run);
  };
  port.onMessage.addListener(start);
});

knownSites();
