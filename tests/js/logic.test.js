// Pure logic of the extension, with node's own test runner: site matching, chunk reassembly, the agent client.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {siteForHost, enabledSiteForHost, isImageFile, normaliseHost} = require("../../extension/lib/sites.js");
const {ChunkAssembler} = require("../../extension/lib/chunks.js");
const {AgentClient} = require("../../extension/lib/agent.js");
const {bytesToBase64, base64ToBytes} = require("../../extension/lib/encoding.js");

const SITES = [
  {site: "instagram.com", enabled: true},
  {site: "example.co.uk", enabled: false},
  {site: "alice.github.io", enabled: true},
  {site: "127.0.0.1", enabled: true},
];

test("a host belongs to its site and the site's subdomains only", () => {
  assert.equal(siteForHost("www.instagram.com", SITES).site, "instagram.com");
  assert.equal(siteForHost("INSTAGRAM.COM.", SITES).site, "instagram.com");
  assert.equal(siteForHost("m.instagram.com", SITES).site, "instagram.com");
  assert.equal(siteForHost("notinstagram.com", SITES), null);
  assert.equal(siteForHost("instagram.com.evil.net", SITES), null);
  assert.equal(siteForHost("bob.github.io", SITES), null);
  assert.equal(siteForHost("127.0.0.1", SITES).site, "127.0.0.1");
  assert.equal(siteForHost("", SITES), null);
  assert.equal(siteForHost("instagram.com", null), null);
});

test("the longest matching site wins, and disabled sites do not mark", () => {
  const sites = [{site: "co.uk", enabled: true}, {site: "example.co.uk", enabled: false}];
  assert.equal(siteForHost("photos.example.co.uk", sites).site, "example.co.uk");
  assert.equal(enabledSiteForHost("photos.example.co.uk", sites), null);
  assert.equal(enabledSiteForHost("www.instagram.com", SITES).site, "instagram.com");
  assert.equal(normaliseHost("[::1]"), "::1");
});

test("photos are recognised by type, or by name when the type is missing", () => {
  assert.ok(isImageFile({type: "image/jpeg", name: "a.jpg"}));
  assert.ok(isImageFile({type: "image/heic", name: "IMG_1.HEIC"}));
  assert.ok(isImageFile({type: "", name: "holiday.JPEG"}));
  assert.ok(!isImageFile({type: "image/svg+xml", name: "logo.svg"}));
  assert.ok(!isImageFile({type: "application/pdf", name: "a.pdf"}));
  assert.ok(!isImageFile({type: "", name: "notes.txt"}));
  assert.ok(!isImageFile(null));
});

test("chunks reassemble in any order, interleaved between replies", () => {
  const reply = {id: "a", ok: true, data: {image: "x".repeat(50), note: 'quotes " and \\ backslashes'}};
  const text = JSON.stringify(reply);
  const other = JSON.stringify({id: "b", ok: true, data: {n: 1}});
  const assembler = new ChunkAssembler();
  const parts = [text.slice(0, 20), text.slice(20, 41), text.slice(41)];
  assert.equal(assembler.accept({id: "a", chunk: 2, chunks: 3, part: parts[2]}), null);
  assert.equal(assembler.accept({id: "b", chunk: 0, chunks: 2, part: other.slice(0, 5)}), null);
  assert.equal(assembler.accept({id: "a", chunk: 0, chunks: 3, part: parts[0]}), null);
  assert.deepEqual(assembler.accept({id: "a", chunk: 1, chunks: 3, part: parts[1]}), reply);
  assert.deepEqual(assembler.accept({id: "b", chunk: 1, chunks: 2, part: other.slice(5)}), JSON.parse(other));
  assert.deepEqual(assembler.accept({id: "c", ok: true, data: {}}), {id: "c", ok: true, data: {}});
});

test("malformed chunks are refused", () => {
  const assembler = new ChunkAssembler();
  assert.throws(() => assembler.accept({id: "a", chunk: 3, chunks: 2, part: ""}));
  assert.throws(() => assembler.accept({id: "a", chunk: 0, chunks: 2, part: 7}));
  assembler.accept({id: "a", chunk: 0, chunks: 2, part: "{"});
  assert.throws(() => assembler.accept({id: "a", chunk: 1, chunks: 3, part: "}"}));
});

// A port that behaves like chrome.runtime.connectNative's: listeners, postMessage, disconnect.
function fakePort() {
  const listeners = {message: [], disconnect: []};
  return {
    sent: [],
    onMessage: {addListener: (f) => listeners.message.push(f)},
    onDisconnect: {addListener: (f) => listeners.disconnect.push(f)},
    postMessage(message) { this.sent.push(message); },
    deliver(message) { listeners.message.forEach((f) => f(message)); },
    drop() { listeners.disconnect.forEach((f) => f()); },
  };
}

test("the agent client matches replies by id and reassembles chunked ones", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port);
  const first = client.request("hello");
  const second = client.request("mark", {image: "AAAA"});
  const [a, b] = port.sent;
  assert.deepEqual([a.action, a.version, b.action, b.params.image], ["hello", 1, "mark", "AAAA"]);
  const text = JSON.stringify({id: b.id, ok: true, data: {status: "marked"}});
  port.deliver({id: b.id, chunk: 0, chunks: 2, part: text.slice(0, 10)});
  port.deliver({id: a.id, ok: false, error: {code: "locked", message: "unlock first"}});
  port.deliver({id: b.id, chunk: 1, chunks: 2, part: text.slice(10)});
  await assert.rejects(first, (error) => error.code === "locked");
  assert.deepEqual(await second, {status: "marked"});
});

test("a lost connection fails every waiting request and the next one reconnects", async () => {
  const ports = [fakePort(), fakePort()];
  let connections = 0;
  const client = new AgentClient(() => ports[connections++], () => "Specified native messaging host not found.");
  const waiting = client.request("stats");
  ports[0].drop();
  await assert.rejects(waiting, (error) => error.code === "agent_unavailable" && /not found/.test(error.message));
  const again = client.request("stats");
  ports[1].deliver({id: ports[1].sent[0].id, ok: true, data: {sites: {}}});
  assert.deepEqual(await again, {sites: {}});
  assert.equal(connections, 2);
});

test("base64 round trip of binary data", () => {
  const bytes = Uint8Array.from({length: 100000}, (_, i) => (i * 7919) % 256);
  assert.deepEqual(base64ToBytes(bytesToBase64(bytes)), bytes);
  assert.equal(bytesToBase64(new Uint8Array([0, 255, 10])), "AP8K");
});

test("a request the agent never answers fails after the timeout", async () => {
  const port = fakePort();
  const client = new AgentClient(() => port, null, 50);
  await assert.rejects(client.request("mark", {image: "AAAA"}),
                       (error) => error.code === "agent_unavailable" && /did not answer/.test(error.message));
  port.deliver({id: port.sent[0].id, ok: true, data: {}}); // a late answer is ignored
});
