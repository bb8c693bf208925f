// Runs for people: p-values, durations, progress text, each model's newest run, past answers, mark results.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const {formatP, formatDuration, monthYear, localDateTime, formatCount} = require("../../extension/lib/format.js");
const {progressText, progressValue, newestRunByModel, runAnswer, runModelName, verdictTone, markSummary} =
  require("../../extension/lib/runs.js");

test("p-values: three significant digits, scientific below 0.001, as the agent's report writes them", () => {
  assert.equal(formatP(0.5), "0.5");
  assert.equal(formatP(0.012345), "0.0123");
  assert.equal(formatP(0.001), "0.001");
  assert.equal(formatP(1), "1");
  assert.equal(formatP(0.25), "0.25");
  assert.equal(formatP(0.000999), "9.99e-04");
  assert.equal(formatP(4.2137e-7), "4.21e-07");
  assert.equal(formatP(1.5e-120), "1.50e-120");
  assert.equal(formatP(0), "0.00e+00");
  assert.equal(formatP(null), "—");
  assert.equal(formatP(undefined), "—");
});

test("durations are rough, in the largest unit that fits", () => {
  assert.equal(formatDuration(0.2), "1 s");
  assert.equal(formatDuration(7.4), "7 s");
  assert.equal(formatDuration(21.5), "20 s");
  assert.equal(formatDuration(58), "1 min");
  assert.equal(formatDuration(200), "3 min");
  assert.equal(formatDuration(3900), "1 h 5 min");
  assert.equal(formatDuration(7200), "2 h");
});

test("progress in words, and for a progress bar", () => {
  assert.equal(progressText(null), "Starting…");
  assert.equal(progressText({phase: "testing", images_done: 120, images_total: 200, queries: 4100,
                             queries_planned: 8200, eta_seconds: 21.5}),
               "120 of 200 photos checked · 4,100 queries · about 20 s left");
  assert.equal(progressText({phase: "testing", images_done: 0, images_total: 1, queries: 1, eta_seconds: null}),
               "0 of 1 photo checked · 1 query");
  assert.match(progressText({phase: "testing every label", images_done: 50, images_total: 200, queries: 10,
                             eta_seconds: 300}), /^Testing every label: 50 of 200 photos checked · 10 queries · about 5 min left$/);
  assert.equal(progressText({phase: "reading the clean images", images_done: 50, images_total: 200, queries: 50}),
               "Reading the photos: 50 of 200 photos checked · 50 queries");
  assert.equal(progressText({phase: "testing", images_done: 5, images_total: 5, queries: 700}),
               "5 of 5 photos checked · 700 queries");
  assert.equal(progressValue(null), null);
  assert.equal(progressValue({images_done: 5, images_total: 0}), null);
  assert.deepEqual(progressValue({images_done: 120, images_total: 200}), {value: 120, max: 200});
  assert.deepEqual(progressValue({images_done: 250, images_total: 200}), {value: 200, max: 200});
  assert.deepEqual(progressValue({images_done: 0, images_total: 200, queries: 60, queries_planned: 8200}),
                   {value: 60, max: 8200});
  assert.equal(formatCount(1234567), "1,234,567");
});

test("each saved model's newest run, whatever order the history comes in", () => {
  const runs = [
    {run: "20261204-233000-aaaaaa", model_id: 3, state: "done"},
    {run: "20261205-010000-bbbbbb", model_id: null, model: "onnx:/m.onnx", state: "done"},
    {run: "20261205-000000-cccccc", model_id: 3, state: "running"},
    {run: "20261203-120000-dddddd", model_id: 5, state: "failed"},
    {run: "20261201-120000-eeeeee", model_id: 5, state: "done"},
  ];
  const newest = newestRunByModel(runs);
  assert.deepEqual([...newest.keys()].sort(), [3, 5]);
  assert.equal(newest.get(3).run, "20261205-000000-cccccc");
  assert.equal(newest.get(5).state, "failed");
  assert.equal(newestRunByModel(runs.slice().reverse()).get(3).run, "20261205-000000-cccccc");
  assert.equal(newestRunByModel(null).size, 0);
});

test("what a past run answered, and which model it checked", () => {
  assert.equal(runAnswer({state: "running"}), "Running…");
  assert.equal(runAnswer({state: "cancelled"}), "Cancelled");
  assert.equal(runAnswer({state: "failed", error: {code: "verify_failed", message: "no marked upload yet"}}),
               "Failed: no marked upload yet");
  assert.match(runAnswer({state: "failed", error: null}), /^Failed: /);
  assert.equal(runAnswer({state: "done", decision: "detected", sentence: "This model shows the mark."}),
               "This model shows the mark.");
  assert.equal(runModelName({model_name: "Fashion", model: "onnx:/m.onnx"}), "Fashion");
  assert.equal(runModelName({model_name: null, model: "onnx:/m.onnx"}), "onnx:/m.onnx");
  assert.equal(verdictTone("detected"), "detected");
  assert.equal(verdictTone("not detected"), "clear");
  assert.equal(verdictTone(undefined), "unknown");
});

test("a mark's result in words", () => {
  const detected = markSummary({site: "instagram.com", epoch: 0, started: "2026-03-31T23:30:00+00:00",
                                label: "Shirt", detected: true, p_value: 0.00012, p_adjusted: 0.00024, note: null});
  assert.deepEqual(detected, {site: "instagram.com", since: "since March 2026", tested: true, detected: true,
                              verdict: "Detected", p: "p = 1.20e-04, adjusted for all your marks: 2.40e-04",
                              label: "label Shirt", note: null});
  const clear = markSummary({site: "flickr.com", started: null, label: null, detected: false, p_value: 0.41,
                             p_adjusted: 0.41});
  assert.equal(clear.verdict, "Not detected");
  assert.equal(clear.p, "p = 0.41");
  assert.equal(clear.since, null);
  const untested = markSummary({site: "x.com", started: "2025-11-02T08:00:00+00:00", detected: false,
                                p_value: null, p_adjusted: null, note: "not testable: an imported photo mark"});
  assert.equal(untested.tested, false);
  assert.equal(untested.verdict, "Could not be tested");
  assert.equal(untested.p, null);
  assert.equal(untested.note, "not testable: an imported photo mark");
  assert.equal(untested.since, "since November 2025");
});

test("dates: the month of a timestamp as written, and local date and time", () => {
  assert.equal(monthYear("2026-12-04T23:30:01+00:00"), "December 2026");
  assert.equal(monthYear("2026-13-01"), null);
  assert.equal(monthYear(null), null);
  assert.equal(localDateTime("2026-12-04T23:30:01+00:00", {locale: "en-US", timeZone: "Europe/Berlin"}),
               "Dec 5, 2026, 12:30 AM");
  assert.equal(localDateTime("not a date"), "not a date");
  assert.equal(localDateTime(null), "—");
});
