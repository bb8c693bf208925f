// Watching a verification run from a page: the background's relay (one agent watch per run, shared by pages)
// and the page's watchRun (events, final status, retries when the agent goes away, stopping).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {WatchRelay, WATCH_PORT} = require("../../extension/lib/watch-relay.js");
const {watchRun, WATCH_PORT: PAGE_WATCH_PORT} = require("../../extension/lib/pages.js");
const {AgentError, errorJson} = require("../../extension/lib/agent.js");
const {fakePort} = require("./fakes.js");

const tick = () => new Promise((resolve) => setImmediate(resolve));

// An agent whose watches the test drives: watch(run, onEvent) -> promise; emit/finish/fail per run.
function fakeAgent() {
  const watches = [];
  return {
    watches,
    watch(run, onEvent) {
      return new Promise((resolve, reject) => watches.push({run, onEvent, resolve, reject}));
    },
  };
}

test("the page and the background agree on the port's name", () => {
  assert.equal(PAGE_WATCH_PORT, WATCH_PORT);
  assert.equal(WATCH_PORT, "verify-watch");
});

test("the relay posts each event, then the final status", async () => {
  const agent = fakeAgent();
  const relay = new WatchRelay((run, onEvent) => agent.watch(run, onEvent), errorJson);
  const port = fakePort(WATCH_PORT);
  relay.attach(port, "run-1");
  assert.equal(agent.watches.length, 1);
  agent.watches[0].onEvent({state: "running", progress: {images_done: 10}}, "progress");
  agent.watches[0].resolve({state: "done"});
  await tick();
  assert.deepEqual(port.sent, [{event: "progress", data: {state: "running", progress: {images_done: 10}}},
                               {ok: true, data: {state: "done"}}]);
});

test("pages watching one run share one agent watch; a late page first sees the latest status", async () => {
  const agent = fakeAgent();
  const relay = new WatchRelay((run, onEvent) => agent.watch(run, onEvent), errorJson);
  const first = fakePort(WATCH_PORT);
  const second = fakePort(WATCH_PORT);
  relay.attach(first, "run-1");
  agent.watches[0].onEvent({n: 1}, "progress");
  relay.attach(second, "run-1");
  assert.equal(agent.watches.length, 1);
  assert.deepEqual(second.sent, [{event: "progress", data: {n: 1}}]);
  agent.watches[0].onEvent({n: 2}, "progress");
  agent.watches[0].resolve({state: "cancelled"});
  await tick();
  assert.deepEqual(first.sent.map((m) => m.data), [{n: 1}, {n: 2}, {state: "cancelled"}]);
  assert.deepEqual(second.sent.map((m) => m.data), [{n: 1}, {n: 2}, {state: "cancelled"}]);
  relay.attach(fakePort(WATCH_PORT), "run-1"); // the run's watch ended: a new page starts a new one
  assert.equal(agent.watches.length, 2);
});

test("the relay stops posting to a page that has gone, and relays the agent's error with its fields", async () => {
  const agent = fakeAgent();
  const relay = new WatchRelay((run, onEvent) => agent.watch(run, onEvent), errorJson);
  const gone = fakePort(WATCH_PORT);
  const closedQuietly = fakePort(WATCH_PORT);
  const staying = fakePort(WATCH_PORT);
  relay.attach(gone, "run-2");
  relay.attach(closedQuietly, "run-2");
  relay.attach(staying, "run-2");
  gone.drop(); // the page closed: its onDisconnect fired
  closedQuietly.disconnected = true; // no event yet, but posting throws
  agent.watches[0].onEvent({n: 1}, "progress");
  agent.watches[0].reject(new AgentError("unknown_run", "there is no run run-2", {code: "unknown_run", x: 1}));
  await tick();
  assert.deepEqual(gone.sent, []);
  assert.deepEqual(closedQuietly.sent, []);
  assert.deepEqual(staying.sent, [{event: "progress", data: {n: 1}},
                                  {ok: false, error: {code: "unknown_run", message: "there is no run run-2", x: 1}}]);
});

test("a watch that throws at once still answers the page", async () => {
  const relay = new WatchRelay(() => { throw new AgentError("agent_unavailable", "no host"); }, errorJson);
  const port = fakePort(WATCH_PORT);
  relay.attach(port, "run-3");
  await tick();
  assert.deepEqual(port.sent, [{ok: false, error: {code: "agent_unavailable", message: "no host"}}]);
});

// The background's side for watchRun: each connect() gives a new fake port; the test answers on it.
function fakeBackground() {
  const ports = [];
  return {ports, connect: () => { const port = fakePort(WATCH_PORT); ports.push(port); return port; }};
}

async function until(condition) {
  for (let i = 0; i < 200 && !condition(); i += 1) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(condition(), "timed out");
}

test("watchRun asks for the run, reports progress and resolves with the final status", async () => {
  const background = fakeBackground();
  const seen = [];
  const done = watchRun("run-1", (status) => seen.push(status.n), {connect: background.connect});
  const port = background.ports[0];
  assert.deepEqual(port.sent, [{run: "run-1"}]);
  port.deliver({event: "progress", data: {state: "running", n: 1}});
  port.deliver({event: "progress", data: {state: "running", n: 2}});
  port.deliver({ok: true, data: {state: "done", n: 3}});
  assert.deepEqual(await done, {state: "done", n: 3});
  assert.deepEqual(seen, [1, 2]);
  assert.ok(port.disconnected, "the page closes its port once the run ended");
});

test("watchRun watches again when the agent went away or stopped before the run ended", async () => {
  const background = fakeBackground();
  const seen = [];
  const done = watchRun("run-1", (status) => seen.push(status.n),
                        {connect: background.connect, retryDelayMs: 1});
  background.ports[0].deliver({ok: false, error: {code: "agent_unavailable", message: "host exited"}});
  await until(() => background.ports.length === 2);
  background.ports[1].deliver({ok: true, data: {state: "running", n: 5}}); // the host stopped first
  await until(() => background.ports.length === 3);
  background.ports[2].drop(); // the background itself went away
  await until(() => background.ports.length === 4);
  assert.deepEqual(background.ports[3].sent, [{run: "run-1"}]);
  background.ports[3].deliver({ok: true, data: {state: "failed", error: {code: "verify_failed", message: "m"}}});
  assert.equal((await done).state, "failed");
  assert.deepEqual(seen, [5]);
});

test("watchRun gives up after `retries` failures in a row, and never retries other errors", async () => {
  const background = fakeBackground();
  const done = watchRun("run-1", null, {connect: background.connect, retryDelayMs: 1, retries: 2});
  for (let attempt = 0; attempt < 3; attempt += 1) {
    await until(() => background.ports.length === attempt + 1);
    background.ports[attempt].deliver({ok: false, error: {code: "agent_unavailable", message: `try ${attempt}`}});
  }
  await assert.rejects(done, (error) => error.code === "agent_unavailable" && error.message === "try 2");
  assert.equal(background.ports.length, 3);

  const other = fakeBackground();
  const unknown = watchRun("nope", null, {connect: other.connect, retryDelayMs: 1});
  other.ports[0].deliver({ok: false, error: {code: "unknown_run", message: "there is no run nope", extra: 7}});
  await assert.rejects(unknown, (error) => error.code === "unknown_run" && error.details.extra === 7);
  assert.equal(other.ports.length, 1);
});

test("watchRun stops when its signal aborts, while watching or while waiting to retry", async () => {
  const background = fakeBackground();
  const controller = new AbortController();
  const watching = watchRun("run-1", null, {connect: background.connect, signal: controller.signal});
  controller.abort();
  await assert.rejects(watching, (error) => error.code === "aborted");
  assert.ok(background.ports[0].disconnected);

  const later = new AbortController();
  const waiting = watchRun("run-1", null, {connect: background.connect, signal: later.signal, retryDelayMs: 10000});
  background.ports[1].deliver({ok: false, error: {code: "agent_unavailable", message: "gone"}});
  await tick();
  later.abort();
  await assert.rejects(waiting, (error) => error.code === "aborted");
  assert.equal(background.ports.length, 2);
});
