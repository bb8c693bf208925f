// The options page's "Past checks" table: every recent verification run, newest first (verify.history).
"use strict";

(() => {
  const {el, localDateTime, runAnswer, runModelName, runView} = globalThis.Isotopes;
  const tbody = document.querySelector("#runs tbody");
  const status = document.getElementById("runs-status");

  function row(entry) {
    const when = localDateTime(entry.started);
    const model = runModelName(entry);
    return el("tr", {"data-run": entry.run, class: `run-${entry.state}`},
              el("td", {"data-label": "Date"}, el("time", {datetime: entry.started || ""}, when)),
              el("td", {"data-label": "Model"}, model),
              el("td", {"data-label": "Answer"}, runAnswer(entry)),
              el("td", {"data-label": "Report"}, entry.state === "done"
                ? runView.reportLink(entry.run, "Report", `Report of the check of ${model}, ${when}`) : "—"));
  }

  globalThis.Isotopes.pastRuns = {
    // `runs`: verify.history's, newest first; `problem`: why there are none to show, if the agent failed.
    show(runs, problem) {
      tbody.replaceChildren(...(runs || []).map(row));
      status.textContent = problem ? `Past checks cannot be shown: ${problem}` : runs && runs.length ? ""
        : "No checks yet.";
    },
  };
})();
