// The full report of a verification run (report.html?run=RUN_ID): the agent's self-contained HTML report shown
// in the extension, its CSS applied through a constructable stylesheet, and a button to save it as a file.
"use strict";

(() => {
  const {callAgent, importReport} = globalThis.Isotopes;
  const run = new URLSearchParams(location.search).get("run") || "";
  const status = document.getElementById("report-status");
  const problem = document.getElementById("report-error");
  const save = document.getElementById("save-report");
  const container = document.getElementById("report");

  const NO_REPORT = {
    unknown_run: () => `There is no check ${run} in the agent: it may have been deleted.`,
    no_result: (error) => `This check has no report: ${error.message}`,
  };

  function show(html) {
    const report = importReport(html, new DOMParser());
    if (report.css) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(report.css); // CSSOM, which the extension's CSP (style-src 'self') allows
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    container.replaceChildren(...Array.from(report.body.childNodes, (node) => document.adoptNode(node)));
    if (report.title) document.title = report.title;
  }

  function offerDownload(html) {
    save.disabled = false;
    save.addEventListener("click", () => {
      const url = URL.createObjectURL(new Blob([html], {type: "text/html"}));
      const link = document.createElement("a");
      link.href = url;
      link.download = `isotopes-report-${run}.html`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    });
  }

  async function load() {
    if (!run) {
      status.textContent = "";
      problem.textContent = "No check was named: open a report from the Isotopes settings page.";
      return;
    }
    try {
      const {html} = await callAgent("verify.report", {run});
      show(html);
      offerDownload(html);
      status.textContent = "";
    } catch (error) {
      status.textContent = "";
      const explain = NO_REPORT[error.code];
      problem.textContent = explain ? explain(error) : `The report could not be loaded: ${error.message}`;
    }
  }

  load();
})();
