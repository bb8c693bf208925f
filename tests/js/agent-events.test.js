// The agent client's streaming: events handed to their request, timeouts that an event restarts or that a
// watch turns off, and the agent's extra error fields kept.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {AgentClient, AgentError, errorJson} = require("../../extension/lib/agent.js");
const {fakePort} = require("./fakes.js");

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("events reach their own request's onEvent, in order, before its reply", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port);
  const seen = [];
  const other = [];
  const watch = client.request("verify.watch", {run: "r"}, {onEvent: (data, kind) => seen.push([kind, data.n])});
  const status = client.request("verify.status", {run: "r"}, {onEvent: (data) => other.push(data)});
  const [w, s] = port.sent;
  assert.deepEqual(w.params, {run: "r"});
  port.deliver({id: w.id, event: "progress", data: {n: 1}});
  port.deliver({id: s.id, ok: true, data: {state: "running"}});
  port.deliver({id: w.id, event: "progress", data: {n: 2}});
  port.deliver({id: "x999", event: "progress", data: {n: 99}}); // nobody waits for it: ignored
  assert.deepEqual(await status, {state: "running"});
  port.deliver({id: w.id, ok: true, data: {state: "done"}});
  assert.deepEqual(await watch, {state: "done"});
  assert.deepEqual(seen, [["progress", 1], ["progress", 2]]);
  assert.deepEqual(other, []);
  port.deliver({id: w.id, event: "progress", data: {n: 3}}); // after the reply: nobody is told
  assert.equal(seen.length, 2);
});

test("an event never settles its request, and a listener that throws breaks nothing", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port);
  let settled = false;
  const watch = client.request("verify.watch", {run: "r"}, {onEvent: () => { throw new Error("bug"); }});
  watch.then(() => { settled = true; }, () => { settled = true; });
  port.deliver({id: port.sent[0].id, event: "progress", data: {}});
  await delay(5);
  assert.equal(settled, false);
  port.deliver({id: port.sent[0].id, ok: true, data: {state: "cancelled"}});
  assert.deepEqual(await watch, {state: "cancelled"});
});

test("timeoutMs 0 waits past the client's timeout, until the reply", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port, null, 20);
  const watch = client.request("verify.watch", {run: "r"}, {timeoutMs: 0});
  const quick = client.request("verify.status", {run: "r"});
  await assert.rejects(quick, (error) => error.code === "agent_unavailable" && /0.02 s/.test(error.message));
  await delay(40);
  port.deliver({id: port.sent[0].id, ok: true, data: {state: "done"}});
  assert.deepEqual(await watch, {state: "done"});
});

test("a watch without a timeout still fails when the port disconnects", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port, () => "Native host has exited.");
  const watch = client.request("verify.watch", {run: "r"}, {timeoutMs: 0, onEvent: () => {}});
  port.drop();
  await assert.rejects(watch, (error) => error.code === "agent_unavailable" && /exited/.test(error.message));
});

test("a longer timeoutMs is honoured, and an event starts the wait over", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port, null, 10);
  const slow = client.request("models.save", {name: "m"}, {timeoutMs: 60}).then(() => null, (error) => error);
  const ticking = client.request("verify.watch", {run: "r"}, {timeoutMs: 40, onEvent: () => {}});
  const [save, watch] = port.sent;
  for (let i = 0; i < 4; i += 1) { // 4 x 25 ms: past 40 ms in all, never 40 ms without an event
    await delay(25);
    port.deliver({id: watch.id, event: "progress", data: {i}});
  }
  port.deliver({id: watch.id, ok: true, data: {state: "done"}});
  assert.deepEqual(await ticking, {state: "done"});
  port.deliver({id: save.id, ok: true, data: {id: 1}}); // 100 ms: too late for a 60 ms limit
  const error = await slow;
  assert.ok(error && error.code === "agent_unavailable" && /0.06 s/.test(error.message), String(error));
});

test("the agent's extra error fields survive the client and the relay to a page", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port);
  const save = client.request("models.save", {});
  port.deliver({id: port.sent[0].id, ok: false,
                error: {code: "bad_model", message: "no such folder", field: "aux"}});
  const error = await save.then(() => null, (e) => e);
  assert.equal(error.details.field, "aux");
  assert.deepEqual(errorJson(error), {code: "bad_model", message: "no such folder", field: "aux"});
  assert.deepEqual(errorJson(new AgentError("locked", "unlock first")), {code: "locked", message: "unlock first"});
  assert.deepEqual(errorJson(new Error("boom")), {code: "internal_error", message: "boom"});
  // a details object cannot pass off another code or message as the error's
  assert.deepEqual(errorJson(new AgentError("no_result", "not done", {code: "x", message: "y", state: "running"})),
                   {code: "no_result", message: "not done", state: "running"});
});
