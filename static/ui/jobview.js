/*
 * The job panel: progress bar, steps, message, elapsed time and ETA, the result
 * or the error, and the Cancel (with its confirm dialog) and Retry buttons.
 * It only renders; app.js feeds it the job from jobcast.watch().
 */

import { ServerClock, clampProgress, elapsedMs, formatDuration, shortId, typeTitle } from "./format.js";

const STEP_LABELS = {
  waiting: "Waiting",
  running: "Running",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

const CATEGORY_TEXT = {
  permanent: "permanent error: the same input would fail the same way",
  transient: "temporary error: a retry may succeed",
  unknown: "unexpected error",
};

// Jobs that may still be cancelled.
const ACTIVE = new Set(["pending", "running", "waiting", "paused", "draft"]);

function $(id) {
  return document.getElementById(id);
}

function compactValue(value) {
  if (value == null) return "—";
  if (typeof value === "string") return value.length > 160 ? value.slice(0, 159) + "…" : value;
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) {
    if (value.length <= 5 && value.every((v) => v == null || typeof v !== "object")) {
      return value.map((v) => compactValue(v)).join(", ") || "none";
    }
    return value.length + (value.length === 1 ? " item" : " items");
  }
  const json = JSON.stringify(value);
  if (json.length <= 80) return json;
  const n = Object.keys(value).length;
  return n + (n === 1 ? " field" : " fields");
}

export class JobView {
  /**
   * options: onCancel(jobId) → Promise, onRetry(job) → Promise; both reject with
   * an error whose message is shown in the panel.
   */
  constructor(options) {
    this.options = options;
    this.el = {
      empty: $("job-empty"),
      loading: $("job-loading"),
      view: $("job-view"),
      status: $("job-status"),
      attempt: $("job-attempt"),
      typeLabel: $("job-type-label"),
      id: $("job-id"),
      lineage: $("job-lineage"),
      retryOf: $("job-retry-of"),
      progress: $("progress"),
      progressFill: $("progress-fill"),
      progressText: $("progress-text"),
      elapsed: $("job-elapsed"),
      eta: $("job-eta"),
      facts: $("job-facts"),
      step: $("job-step"),
      message: $("job-message"),
      steps: $("steps"),
      children: $("job-children"),
      childList: $("children"),
      error: $("job-error"),
      errorTitle: $("job-error-title"),
      errorMessage: $("job-error-message"),
      errorMeta: $("job-error-meta"),
      result: $("job-result"),
      resultSummary: $("result-summary"),
      resultFields: $("result-fields"),
      resultDetails: $("result-details"),
      resultJson: $("result-json"),
      cancel: $("cancel-button"),
      retry: $("retry-button"),
      dialog: $("cancel-dialog"),
      conn: $("conn-state"),
      connLabel: $("conn-label"),
      panelError: $("panel-error"),
    };
    this.types = [];
    this.job = null;
    this.clock = new ServerClock();
    this.eta = new window.jobcast.Countdown();
    this.retryAt = null; // Date.now() when a retry wait ends
    this.busy = null; // "cancel" | "retry" while a request runs

    this.el.cancel.addEventListener("click", () => this.askCancel());
    this.el.retry.addEventListener("click", () => this.retry());
    this.el.dialog.addEventListener("close", () => {
      if (this.el.dialog.returnValue === "confirm") this.cancel();
    });
  }

  setTypes(types) {
    this.types = types || [];
    if (this.job) this.render();
  }

  // ---------------------------------------------------------------- state

  /** Show a job the panel has not shown before (or a new state of it). */
  show(job, etaSeconds) {
    const fresh = !this.job || this.job.id !== job.id;
    if (fresh) {
      this.clearPanelError();
      this.busy = null;
      this.el.resultDetails.open = false;
    }
    this.job = job;
    this.setEta(etaSeconds !== undefined ? etaSeconds : job.eta_seconds);
    this.render();
  }

  /** A full state from the server (websocket snapshot or a changed poll). */
  snapshot(job) {
    this.job = job;
    this.setEta(typeof job.eta_seconds === "number" ? job.eta_seconds : undefined);
    this.render();
  }

  /** One event, with the job as it stands after it. */
  event(event, job) {
    this.clock.observe(event.at);
    this.job = job;
    if (event.kind === "status" && event.retry_in_s != null) {
      this.retryAt = Date.now() + event.retry_in_s * 1000;
    }
    // Re-estimated on every step or progress change; status events keep the countdown.
    if (event.kind !== "status" || job.status === "running") this.setEta(undefined);
    this.render();
  }

  setEta(seconds) {
    const job = this.job;
    if (!job || window.jobcast.isFinal(job.status)) {
      this.eta.set(null);
      return;
    }
    const estimate = typeof seconds === "number" ? seconds : window.jobcast.estimateRemaining(job);
    this.eta.set(estimate);
  }

  loading(on) {
    this.el.loading.hidden = !on;
    if (on) this.el.empty.hidden = true;
  }

  clear() {
    this.job = null;
    this.eta.set(null);
    this.el.view.hidden = true;
    this.el.loading.hidden = true;
    this.el.empty.hidden = false;
    this.setConn("idle");
  }

  setConn(state) {
    this.el.conn.dataset.state = state;
    this.el.connLabel.textContent = state;
  }

  showPanelError(message) {
    this.el.panelError.textContent = message;
    this.el.panelError.hidden = false;
  }

  clearPanelError() {
    this.el.panelError.textContent = "";
    this.el.panelError.hidden = true;
  }

  // --------------------------------------------------------------- render

  render() {
    const job = this.job;
    if (!job) return;
    const el = this.el;
    el.empty.hidden = true;
    el.loading.hidden = true;
    el.view.hidden = false;

    const status = job.status || "pending";
    el.status.textContent = status;
    el.status.dataset.status = status;
    el.id.textContent = job.id;
    el.typeLabel.textContent = typeTitle(this.types, job.type);

    const attemptNo = this.attemptNumber(job);
    el.attempt.hidden = attemptNo < 2;
    el.attempt.textContent = "Attempt " + attemptNo + " of " + (job.max_attempts || attemptNo);

    el.lineage.hidden = !job.retry_of;
    if (job.retry_of) {
      el.retryOf.href = "/jobs/" + encodeURIComponent(job.retry_of);
      el.retryOf.dataset.jobLink = job.retry_of;
      el.retryOf.textContent = "job " + shortId(job.retry_of);
    }

    const pct = clampProgress(job.progress);
    // Floor, so 100% means done; a completed job is always 100.
    const shown = status === "completed" ? 100 : Math.floor(pct);
    el.progress.setAttribute("aria-valuenow", String(shown));
    el.progress.setAttribute("aria-valuetext", shown + "%");
    el.progress.dataset.status = status;
    // CSSOM writes are allowed under a strict style-src (only style attributes are not).
    el.progressFill.style.width = (status === "completed" ? 100 : pct) + "%";
    el.progressText.textContent = shown + "%";

    // Once it has ended, the outcome below says it better.
    el.facts.hidden = window.jobcast.isFinal(status);
    el.step.textContent = this.stepHeadline(job);
    const waiting = job.status === "pending" && job.waiting_reason;
    el.message.textContent = waiting || job.message || "—";

    this.renderSteps(job);
    this.renderChildren(job);
    this.renderOutcome(job);
    this.renderActions(job);
    this.renderTimes();
  }

  attemptNumber(job) {
    const attempts = Number(job.attempts) || 0;
    // Waiting for a retry: the attempt to come.
    if (job.status === "pending" && attempts > 0) return attempts + 1;
    return attempts;
  }

  stepHeadline(job) {
    if (job.status === "completed") return "All steps done";
    if (job.status === "cancelled") return "Cancelled";
    if (job.status === "pending") return job.attempts > 0 ? "Waiting to retry" : "Waiting to start";
    if (job.status === "waiting") return "Waiting for your input";
    if (job.status === "paused") return "Paused";
    if (job.status === "draft") return "Draft: not started";
    const step = (job.steps || []).find((s) => s.name === job.step);
    if (step) return step.title || step.name;
    return job.step || (job.status === "running" ? "Running" : "—");
  }

  renderSteps(job) {
    const steps = Array.isArray(job.steps) ? job.steps : [];
    const list = this.el.steps;
    // Reuse items by step name so indicator transitions are not restarted.
    const existing = new Map();
    for (const li of list.children) existing.set(li.dataset.step, li);
    const seen = new Set();
    steps.forEach((step, index) => {
      let li = existing.get(step.name);
      if (!li) {
        li = document.createElement("li");
        li.className = "step";
        li.dataset.step = step.name;
        li.innerHTML =
          '<span class="step-indicator" aria-hidden="true"></span>' +
          '<span class="step-body"><span class="step-title"></span>' +
          '<span class="step-detail"><span class="step-state"></span>' +
          '<span class="step-duration"></span></span></span>';
      }
      const state = STEP_LABELS[step.status] ? step.status : "waiting";
      if (li.dataset.state !== state) li.dataset.state = state;
      if (state === "running") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      li.querySelector(".step-title").textContent = step.title || step.name;
      li.querySelector(".step-state").textContent = STEP_LABELS[state];
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      seen.add(step.name);
    });
    for (const [name, li] of existing) if (!seen.has(name)) li.remove();
    this.renderStepTimes();
  }

  /** Durations of finished steps, and the running step's time so far (ticks every second). */
  renderStepTimes() {
    const job = this.job;
    if (!job) return;
    const byName = new Map((job.steps || []).map((s) => [s.name, s]));
    for (const li of this.el.steps.children) {
      const step = byName.get(li.dataset.step);
      if (!step) continue;
      let text = "";
      if (li.dataset.state === "running") {
        const ms = this.clock.since(step.started_at);
        if (ms != null && window.jobcast.isFinal(job.status) === false) text = formatDuration(ms);
      } else if (li.dataset.state !== "waiting") {
        let ms = step.duration_ms != null ? step.duration_ms : null;
        if (ms == null) ms = elapsedMs(step.started_at, step.finished_at);
        text = ms != null ? formatDuration(ms) : "";
      }
      const node = li.querySelector(".step-duration");
      if (node.textContent !== text) node.textContent = text;
    }
  }

  renderChildren(job) {
    const children = Array.isArray(job.children) ? job.children : [];
    this.el.children.hidden = children.length === 0;
    const list = this.el.childList;
    list.textContent = "";
    for (const child of children) {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/jobs/" + encodeURIComponent(child.id);
      link.dataset.jobLink = child.id;
      link.textContent = typeTitle(this.types, child.type) + " " + shortId(child.id);
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = child.status;
      badge.textContent = child.status;
      const pct = document.createElement("span");
      pct.className = "child-progress";
      pct.textContent = Math.floor(clampProgress(child.progress)) + "%";
      li.append(link, badge, pct);
      list.appendChild(li);
    }
  }

  renderOutcome(job) {
    const el = this.el;
    const status = job.status;
    if (status === "failed") {
      const err = job.error || {};
      el.errorTitle.textContent = "Job failed";
      el.errorMessage.textContent = err.message || job.message || "The job failed without a message.";
      const meta = [];
      if (err.type) meta.push(err.type);
      if (err.category && CATEGORY_TEXT[err.category]) meta.push(CATEGORY_TEXT[err.category]);
      if (job.attempts > 1) meta.push("after " + job.attempts + " attempts");
      el.errorMeta.textContent = meta.join(" · ");
      el.errorMeta.hidden = meta.length === 0;
      el.error.hidden = false;
    } else {
      el.error.hidden = true;
    }

    if (status !== "completed") {
      el.result.hidden = true;
      return;
    }
    el.resultSummary.textContent = "";
    const took = elapsedMs(job.started_at || job.created_at, job.finished_at);
    const head = document.createElement("strong");
    head.textContent = "Completed" + (took != null ? " in " + formatDuration(took) : "") +
      (job.attempts > 1 ? " after " + job.attempts + " attempts" : "");
    el.resultSummary.appendChild(head);
    const r = job.result;
    const isObject = r && typeof r === "object" && !Array.isArray(r);
    const line = isObject && typeof r.summary === "string" ? r.summary
      : r == null ? "No result data." : !isObject ? compactValue(r) : "";
    if (line) {
      const text = document.createElement("span");
      text.className = "result-line";
      text.textContent = line;
      el.resultSummary.appendChild(text);
    }

    el.resultFields.textContent = "";
    const fields = isObject ? Object.keys(r).filter((k) => k !== "summary") : [];
    for (const key of fields.slice(0, 12)) {
      const row = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = compactValue(r[key]);
      row.append(dt, dd);
      el.resultFields.appendChild(row);
    }
    el.resultFields.hidden = fields.length === 0;

    let pretty;
    try {
      pretty = JSON.stringify(r === undefined ? null : r, null, 2);
    } catch (_) {
      pretty = String(r);
    }
    el.resultJson.textContent = pretty;
    el.result.hidden = false;
  }

  renderActions(job) {
    const el = this.el;
    const active = ACTIVE.has(job.status);
    el.cancel.hidden = !active;
    el.cancel.disabled = this.busy === "cancel";
    el.cancel.textContent = this.busy === "cancel" ? "Cancelling…" : "Cancel job";
    const retryable = job.status === "failed" || job.status === "cancelled";
    el.retry.hidden = !retryable;
    el.retry.disabled = this.busy === "retry";
    el.retry.textContent = this.busy === "retry" ? "Starting…" : "Retry";
    if (!active && el.dialog.open) el.dialog.close("keep");
  }

  /** Elapsed time and ETA; called on every render and once a second. */
  renderTimes() {
    const job = this.job;
    if (!job) return;
    const el = this.el;
    const jc = window.jobcast;
    let elapsed = "";
    let eta = "";
    if (job.status === "running") {
      const ms = this.clock.since(job.started_at);
      if (ms != null) elapsed = "Running for " + formatDuration(Math.max(1000, ms));
      eta = jc.describeEta(this.eta.left());
    } else if (job.status === "pending") {
      const ms = this.clock.since(job.created_at);
      if (job.attempts > 0 && this.retryAt) {
        const left = Math.max(0, (this.retryAt - Date.now()) / 1000);
        eta = left >= 1 ? "retrying in " + Math.ceil(left) + " s" : "retrying now";
      } else {
        eta = "waiting for a worker";
      }
      if (ms != null) elapsed = "Queued " + formatDuration(Math.max(1000, ms)) + " ago";
    } else if (job.status === "waiting" || job.status === "paused" || job.status === "draft") {
      eta = job.status === "waiting" ? "waiting for an answer" : job.status === "paused" ? "paused" : "not started";
    } else {
      const ms = elapsedMs(job.started_at || job.created_at, job.finished_at);
      if (ms != null) elapsed = (job.status === "completed" ? "Took " : "Ended after ") + formatDuration(ms);
      if (job.finished_at) {
        const ago = this.clock.since(job.finished_at);
        if (ago != null && ago > 60000) eta = "finished " + new Date(job.finished_at).toLocaleString();
      }
    }
    if (el.elapsed.textContent !== elapsed) el.elapsed.textContent = elapsed;
    if (el.eta.textContent !== eta) el.eta.textContent = eta;
    this.renderStepTimes();
  }

  tick() {
    this.renderTimes();
  }

  // -------------------------------------------------------------- actions

  askCancel() {
    if (!this.job || !ACTIVE.has(this.job.status)) return;
    this.el.dialog.returnValue = "";
    this.el.dialog.showModal();
  }

  async cancel() {
    const job = this.job;
    if (!job || this.busy) return;
    this.busy = "cancel";
    this.clearPanelError();
    this.renderActions(job);
    try {
      await this.options.onCancel(job.id);
    } catch (err) {
      this.showPanelError(err.status === 409 ? "The job had already finished." : err.message || "Could not cancel the job.");
    } finally {
      if (this.job === job || (this.job && this.job.id === job.id)) this.busy = null;
      if (this.job) this.renderActions(this.job);
    }
  }

  async retry() {
    const job = this.job;
    if (!job || this.busy) return;
    this.busy = "retry";
    this.clearPanelError();
    this.renderActions(job);
    try {
      await this.options.onRetry(job);
    } catch (err) {
      this.showPanelError(err.status === 409 ? "Only failed or cancelled jobs can be retried." : err.message || "Could not retry the job.");
    } finally {
      this.busy = null;
      if (this.job) this.renderActions(this.job);
    }
  }
}
