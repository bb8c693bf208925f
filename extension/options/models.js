// The options page's models: loads the saved models and the recent runs from the agent, keeps one card per
// model (each re-attached to its newest run), and the past-checks table up to date.
"use strict";

(() => {
  const {callAgent, ModelCard, modelForm, pastRuns, newestRunByModel} = globalThis.Isotopes;
  const list = document.getElementById("model-list");
  const status = document.getElementById("models-status");
  const HISTORY_LIMIT = 50;
  const cards = new Map(); // model id -> ModelCard
  let historyTicket = 0;

  async function history() {
    const ticket = ++historyTicket;
    try {
      const {runs} = await callAgent("verify.history", {limit: HISTORY_LIMIT});
      if (ticket === historyTicket) pastRuns.show(runs);
      return runs;
    } catch (error) {
      if (ticket === historyTicket) pastRuns.show([], error.message);
      return [];
    }
  }

  const hooks = {
    runChanged: () => history(),
    removed: (id) => {
      cards.delete(id);
      load();
    },
  };

  // Cards for the models in `models`, in their order; a model new to the page shows its newest run in `runs`.
  function showModels(models, runs) {
    const newest = newestRunByModel(runs);
    const kept = new Set(models.map((model) => model.id));
    for (const [id, card] of cards) {
      if (!kept.has(id)) {
        card.destroy();
        cards.delete(id);
      }
    }
    for (const model of models) {
      let card = cards.get(model.id);
      if (card) {
        card.update(model);
      } else {
        card = new ModelCard(model, hooks);
        cards.set(model.id, card);
        card.show(newest.get(model.id) || null);
      }
      list.append(card.element); // in the agent's order
    }
    status.textContent = models.length ? "" : "No models yet: add one below.";
  }

  async function load() {
    let listed;
    try {
      listed = await callAgent("models.list");
    } catch (error) {
      status.textContent = error.code === "unknown_action"
        ? "This agent cannot check models yet: update Isotopes."
        : `Your models cannot be shown: ${error.message}`;
      await history();
      return;
    }
    modelForm.setPresets(listed.presets);
    const runs = await history();
    showModels(Array.isArray(listed.models) ? listed.models : [], runs);
  }

  modelForm.onSaved(() => load());
  load();
})();
