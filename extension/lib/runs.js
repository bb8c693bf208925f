// Verification runs for people (native_host/PROTOCOL.md, "Verification runs"): progress in words, each saved
// model's newest run, what a past run answered, and each mark's result.
(function (exports) {
  "use strict";

  const {formatP, formatCount, plural, formatDuration, monthYear} =
    exports.formatP ? exports : require("./format.js");

  // What a run is doing besides testing the label it was given (native_host/PROTOCOL.md, "Verification runs").
  const PHASES = {
    "reading the clean images": "Reading the photos",
    "testing every label": "Testing every label",
    "the paper's test": "The paper's test",
  };

  // A running run's progress: "120 of 200 photos checked · 4,100 queries · about 20 s left"; "Starting…"
  // before the first batch.
  function progressText(progress) {
    if (!progress || typeof progress.images_total !== "number") return "Starting…";
    const parts = [`${formatCount(progress.images_done || 0)} of ${plural(progress.images_total, "photo", "photos")} ` +
                   "checked"];
    if (typeof progress.queries === "number") parts.push(plural(progress.queries, "query", "queries"));
    if (typeof progress.eta_seconds === "number") parts.push(`about ${formatDuration(progress.eta_seconds)} left`);
    const text = parts.join(" · ");
    return PHASES[progress.phase] ? `${PHASES[progress.phase]}: ${text}` : text;
  }

  // For a <progress>: {value, max}, or null while there is no progress yet (an indeterminate bar). Queries move
  // the bar after every model call; photos only once every mark has seen them (a minute apart on a slow API).
  function progressValue(progress) {
    if (progress && progress.queries_planned > 0) {
      return {value: Math.min(progress.queries || 0, progress.queries_planned), max: progress.queries_planned};
    }
    if (!progress || !(progress.images_total > 0)) return null;
    return {value: Math.min(progress.images_done || 0, progress.images_total), max: progress.images_total};
  }

  // Whether run `a` is newer than run `b`: run ids start with their UTC start time, so they sort by age.
  function newer(a, b) {
    return String(a.run) > String(b.run);
  }

  // The newest run of each saved model in `runs` (verify.history's), as a Map model_id -> entry.
  function newestRunByModel(runs) {
    const newest = new Map();
    for (const entry of runs || []) {
      if (!entry || entry.model_id === null || entry.model_id === undefined) continue;
      const known = newest.get(entry.model_id);
      if (!known || newer(entry, known)) newest.set(entry.model_id, entry);
    }
    return newest;
  }

  // What a run answered, in the past-runs table.
  function runAnswer(entry) {
    switch (entry.state) {
      case "running": return "Running…";
      case "cancelled": return "Cancelled";
      case "failed": return `Failed: ${(entry.error && entry.error.message) || "the run stopped without finishing"}`;
      case "done": return entry.sentence || (entry.decision ? `Done: ${entry.decision}` : "Done");
      default: return String(entry.state);
    }
  }

  // The model a run checked: the saved model's name, or the model spec of a run started without one.
  function runModelName(entry) {
    return entry.model_name || entry.model || "—";
  }

  // The verdict's tone: "detected", "clear" (not detected) or "unknown".
  function verdictTone(decision) {
    return decision === "detected" ? "detected" : decision === "not detected" ? "clear" : "unknown";
  }

  // One mark's result (verify.result's `results`), in words.
  function markSummary(result) {
    const tested = typeof result.p_value === "number";
    const since = monthYear(result.started);
    let p = null;
    if (tested) {
      p = `p = ${formatP(result.p_value)}`;
      if (typeof result.p_adjusted === "number" && result.p_adjusted !== result.p_value) {
        p += `, adjusted for all your marks: ${formatP(result.p_adjusted)}`;
      }
    }
    return {
      site: String(result.site),
      since: since ? `since ${since}` : null,
      tested,
      detected: tested && Boolean(result.detected),
      verdict: !tested ? "Could not be tested" : result.detected ? "Detected" : "Not detected",
      p,
      label: result.label === null || result.label === undefined ? null : `label ${result.label}`,
      note: result.note ? String(result.note) : null,
    };
  }

  Object.assign(exports, {progressText, progressValue, newestRunByModel, runAnswer, runModelName, verdictTone,
                          markSummary});
})(typeof module === "object" ? module.exports : (globalThis.Isotopes = globalThis.Isotopes || {}));
