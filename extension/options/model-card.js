// One saved model on the options page: what it is, "Check my photos" (a verification run the agent owns), the
// run's progress while it goes on, and its answer when it ends.
"use strict";

(() => {
  const {callAgent, el, watchRun, describeModel, progressText, progressValue, runView} = globalThis.Isotopes;

  const START_PROBLEMS = {
    locked: "Your vault is locked: unlock it from the Isotopes button in the toolbar, then check again.",
    no_vault: "There is no vault yet: run `isotopes init` first, then mark some uploads.",
  };

  class ModelCard {
    // hooks: runChanged() when a run starts or ends, removed(id) when the model was removed.
    constructor(model, hooks) {
      this.hooks = hooks;
      this.run = null; // the run shown
      this.watching = null; // the AbortController of the watch on it
      const id = `model-${model.id}`;
      this.title = el("h3", {id: `${id}-title`});
      this.facts = el("dl", {class: "model-facts"});
      this.progress = el("progress", {id: `${id}-progress`, "aria-labelledby": `${id}-progress-label`,
                                      "aria-describedby": `${id}-progress-text`});
      this.progressText = el("p", {id: `${id}-progress-text`, class: "progress-text"});
      this.cancelButton = el("button", {type: "button", class: "secondary", onclick: () => this.cancel()}, "Cancel");
      this.progressBox = el("div", {class: "run-progress", hidden: true},
                            el("span", {id: `${id}-progress-label`, class: "progress-label"}, "Checking your photos"),
                            this.progress, this.progressText, this.cancelButton);
      this.status = el("p", {class: "run-status", role: "status"});
      this.details = el("div", {class: "run-details"});
      this.problem = el("p", {class: "error", role: "alert"});
      this.checkButton = el("button", {type: "button", onclick: () => this.start()}, "Check my photos");
      this.removeButton = el("button", {type: "button", class: "secondary", onclick: () => this.askRemove()},
                             "Remove");
      this.actions = el("div", {class: "card-actions"}, this.checkButton, this.removeButton);
      this.confirmText = el("p", {id: `${id}-confirm`});
      this.confirmNo = el("button", {type: "button", class: "secondary", onclick: () => this.keep()}, "Keep it");
      this.confirmYes = el("button", {type: "button", class: "danger", onclick: () => this.remove()}, "Remove");
      this.confirm = el("div", {class: "confirm", role: "group", "aria-labelledby": `${id}-confirm`, hidden: true},
                        this.confirmText, this.confirmYes, this.confirmNo);
      this.element = el("article", {class: "model-card", "data-model-id": String(model.id),
                                    "aria-labelledby": `${id}-title`},
                        this.title, this.facts, this.progressBox, this.status, this.details, this.actions,
                        this.confirm, this.problem);
      this.update(model);
    }

    update(model) {
      this.model = model;
      this.title.textContent = model.name;
      this.facts.replaceChildren(...describeModel(model).flatMap(([term, text]) => [el("dt", {}, term),
                                                                                    el("dd", {}, text)]));
      this.confirmText.textContent = `Remove “${model.name}”? Its past checks stay in the list below.`;
    }

    // Show a run (a status, or a verify.history entry), or none.
    show(run) {
      this.problem.textContent = "";
      if (!run) {
        this.run = null;
        this.idle("");
        return;
      }
      if (run.run !== this.run) this.stopWatching();
      this.run = run.run;
      if (run.state === "running") this.running(run);
      else if (run.state === "done") this.done(run);
      else if (run.state === "failed") {
        const message = (run.error && run.error.message) || "the check stopped without finishing";
        this.idle(`The check failed: ${message}`, "Retry", "run-failed");
      } else if (run.state === "cancelled") this.idle("Cancelled.", "Check my photos");
      else this.idle(`The check ended: ${run.state}.`);
    }

    idle(text, buttonText = "Check my photos", tone = "") {
      this.progressBox.hidden = true;
      this.status.className = `run-status ${tone}`.trim();
      this.status.textContent = text;
      this.details.replaceChildren();
      this.checkButton.textContent = buttonText;
      this.checkButton.hidden = false;
      this.checkButton.disabled = false;
    }

    running(status) {
      const bar = progressValue(status.progress);
      if (bar) {
        this.progress.max = bar.max;
        this.progress.value = bar.value;
      } else {
        this.progress.removeAttribute("value"); // indeterminate until the first batch
      }
      this.progressText.textContent = progressText(status.progress);
      if (this.progressBox.hidden) {
        this.progressBox.hidden = false;
        this.status.className = "run-status visually-hidden"; // the bar's label says it; screen readers hear it
        this.status.textContent = "Checking your photos…";
        this.details.replaceChildren();
        this.checkButton.hidden = true;
        this.cancelButton.disabled = !this.run;
        this.cancelButton.textContent = "Cancel";
      }
      if (this.run && !this.watching) this.watch(this.run);
    }

    async done(status) {
      const run = status.run;
      this.idle("", "Check again");
      this.status.className = `run-status ${runView.verdictClass(status.decision)}`;
      this.status.textContent = status.sentence || `Done: ${status.decision || "no decision"}.`;
      const report = el("p", {class: "report-link"}, runView.reportLink(run));
      this.details.replaceChildren(el("p", {class: "loading"}, "Loading your marks…"));
      let marks;
      try {
        const result = await callAgent("verify.result", {run});
        marks = runView.markCards(Array.isArray(result.results) ? result.results : []);
      } catch (error) {
        marks = el("p", {class: "error"}, `Each mark's result could not be loaded: ${error.message}`);
      }
      if (this.run === run) this.details.replaceChildren(marks, report);
    }

    watch(run) {
      this.stopWatching();
      const controller = new AbortController();
      this.watching = controller;
      const mine = () => this.watching === controller && this.run === run;
      watchRun(run, (status) => {
        if (mine() && status && status.state === "running") this.running(status);
      }, {signal: controller.signal}).then((status) => {
        if (!mine()) return;
        this.watching = null;
        this.show(status);
        this.hooks.runChanged();
      }, (error) => {
        if (!mine() || error.code === "aborted") return;
        this.watching = null;
        this.problem.textContent = `Lost track of the check (${error.message}). It goes on in the agent.`;
        this.details.replaceChildren(el("button", {type: "button", class: "secondary",
                                                   onclick: () => this.watch(run)}, "Show its progress again"));
      });
    }

    stopWatching() {
      if (this.watching) this.watching.abort();
      this.watching = null;
    }

    async start() {
      this.problem.textContent = "";
      this.stopWatching();
      this.run = null;
      this.running({state: "running", progress: null});
      try {
        const started = await callAgent("verify.start", {model_id: this.model.id});
        this.run = started.run;
        this.cancelButton.disabled = false;
        this.show(started.status || {run: started.run, state: "running", progress: null});
        this.hooks.runChanged();
      } catch (error) {
        this.idle("");
        this.problem.textContent = START_PROBLEMS[error.code] || `The check could not start: ${error.message}`;
        if (error.code === "unknown_model") this.hooks.runChanged();
      }
    }

    async cancel() {
      const run = this.run;
      if (!run) return;
      this.cancelButton.disabled = true;
      this.cancelButton.textContent = "Cancelling…";
      try {
        const status = await callAgent("verify.cancel", {run});
        if (this.run === run && status.state !== "running") { // else the watch sees it end
          this.stopWatching();
          this.show(status);
          this.hooks.runChanged();
        }
      } catch (error) {
        this.problem.textContent = `The check could not be cancelled: ${error.message}`;
        this.cancelButton.disabled = false;
        this.cancelButton.textContent = "Cancel";
      }
    }

    askRemove() {
      this.actions.hidden = true;
      this.confirm.hidden = false;
      this.confirmYes.disabled = false;
      this.confirmNo.focus();
    }

    keep() {
      this.confirm.hidden = true;
      this.actions.hidden = false;
      this.removeButton.focus();
    }

    async remove() {
      this.confirmYes.disabled = true;
      try {
        await callAgent("models.remove", {id: this.model.id});
        this.destroy();
        this.hooks.removed(this.model.id);
      } catch (error) {
        this.problem.textContent = `“${this.model.name}” could not be removed: ${error.message}`;
        this.keep();
      }
    }

    destroy() {
      this.stopWatching();
      this.element.remove();
    }
  }

  globalThis.Isotopes.ModelCard = ModelCard;
})();
