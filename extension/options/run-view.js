// How a finished verification run reads on the options page: the verdict in one sentence, one card per mark,
// and the link to the full report.
"use strict";

(() => {
  const {el, markSummary, verdictTone} = globalThis.Isotopes;

  // The extension page with the run's full report (an extension page, opened in a new tab); `label` names the
  // link for screen readers where its text alone would be ambiguous.
  function reportLink(run, text = "Open the full report", label = null) {
    return el("a", {href: `../report/report.html?run=${encodeURIComponent(run)}`, target: "_blank",
                    rel: "noopener", "aria-label": label}, text);
  }

  // One card per mark of the run's result (verify.result's `results`).
  function markCards(results) {
    return el("ul", {class: "mark-results", "aria-label": "Your marks"},
              ...results.map((result) => {
                const mark = markSummary(result);
                const tone = !mark.tested ? "untested" : mark.detected ? "detected" : "clear";
                return el("li", {class: `mark-result ${tone}`},
                          el("span", {class: "mark-site"}, mark.site),
                          mark.since ? el("span", {class: "mark-since"}, mark.since) : null,
                          el("span", {class: "mark-verdict"}, mark.verdict),
                          mark.p ? el("span", {class: "mark-p"}, mark.p) : null,
                          mark.label ? el("span", {class: "mark-label"}, mark.label) : null,
                          mark.note ? el("p", {class: "mark-note"}, mark.note) : null);
              }));
  }

  // The verdict's class for a run's decision.
  function verdictClass(decision) {
    return `verdict ${verdictTone(decision)}`;
  }

  globalThis.Isotopes.runView = {reportLink, markCards, verdictClass};
})();
