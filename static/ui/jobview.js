/*
 * The job panel: progress bar, steps, message, elapsed time and ETA, the result
 * or the error, and the Cancel (with its confirm dialog) and Retry buttons.
 * It only renders; app.js feeds it the job from jobcast.watch().
 */

import { ServerClock, clampProgress, elapsedMs, formatDuration, humanize, shortId, stepTitle, t, typeTitle } from "./format.js";

// a step's states, each worded by the catalogue's step.<state>
const STEP_STATES = new Set(["waiting", "running", "completed", "failed", "cancelled"]);

// an error's categories, each worded by the catalogue's error.category.<name>
const CATEGORIES = new Set(["permanent", "transient", "unknown"]);

// Jobs that may still be cancelled.
const ACTIVE = new Set(["pending", "running", "waiting", "paused", "draft"]);

function $(id) {
  return document.getElementById(id);
}

function compactValue(value) {
  if (value == null) return "—";
  if (typeof value === "string") return value.length > 160 ? value.slice(0, 159) + "…" : value;
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
  if (typeof value === "boolean") return t(value ? "value.yes" : "value.no");
  if (Array.isArray(value)) {
    if (value.length <= 5 && value.every((v) => v == null || typeof v !== "object")) {
      return value.map((v) => compactValue(v)).join(", ") || t("value.none");
    }
    return t("value.items", { count: value.length });
  }
  const json = JSON.stringify(value);
  if (json.length <= 80) return json;
  return t("value.fields", { count: Object.keys(value).length });
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
      heading: $("job-panel-title"),
      started: $("job-started"),
      inputLine: $("job-input-line"),
      keepWorking: $("job-keep-working"),
      copyId: $("copy-id"),
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
    this.el.copyId.addEventListener("click", () => this.copyId());
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
    this.el.heading.textContent = t("job.generic");
    this.eta.set(null);
    this.el.view.hidden = true;
    this.el.loading.hidden = true;
    this.el.empty.hidden = false;
    this.setConn("idle");
  }

  setConn(state) {
    this.el.conn.dataset.state = state;
    this.el.connLabel.textContent = t("conn." + state);
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
    el.status.textContent = t("status." + status);
    el.status.dataset.status = status;
    el.id.textContent = job.id;
    // the job first: its type's title is the panel's heading
    el.heading.textContent = typeTitle(this.types, job.type);
    const started = job.started_at || job.created_at;
    el.started.textContent = started ? t(job.started_at ? "job.started" : "job.created", { at: window.jobcast.i18n.date(started) }) : "";
    const line = this.inputLine(job);
    el.inputLine.hidden = !line;
    el.inputLine.textContent = line;
    el.keepWorking.hidden = !(status === "running" || status === "pending");

    const attemptNo = this.attemptNumber(job);
    el.attempt.hidden = attemptNo < 2;
    el.attempt.textContent = t("job.attempt", { n: attemptNo, of: job.max_attempts || attemptNo });

    el.lineage.hidden = !job.retry_of;
    if (job.retry_of) {
      el.retryOf.href = "/jobs/" + encodeURIComponent(job.retry_of);
      el.retryOf.dataset.jobLink = job.retry_of;
      el.retryOf.textContent = t("job.short", { id: shortId(job.retry_of) });
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
    el.message.textContent = waiting || job.message || "";
    el.message.parentElement.hidden = !(waiting || job.message); // no message, no empty box

    this.renderSteps(job);
    this.renderChildren(job);
    this.renderOutcome(job);
    this.renderActions(job);
    this.renderTimes();
  }

  /** "Input: Duration 3 · Fail step analyze": what the job was given, in a line. */
  inputLine(job) {
    const input = job.input && typeof job.input === "object" ? job.input : null;
    const info = this.types.find((x) => x.type === job.type);
    const props = (info && info.input_schema && info.input_schema.properties) || {};
    // what the visitor chose: values left at their default are not worth a word
    const chosen = (k) => input[k] != null && input[k] !== false && k !== "upload_ids" &&
      !(props[k] && JSON.stringify(props[k].default) === JSON.stringify(input[k]));
    const keys = input ? Object.keys(input).filter(chosen) : [];
    if (!keys.length) return "";
    const catalogue = window.jobcast.i18n;
    const parts = keys.slice(0, 6).map((k) => {
      const field = "type." + job.type + ".field." + k;
      const label = catalogue.maybe(field) || humanize(k);
      const value = typeof input[k] === "string" ? catalogue.maybe(field + ".option." + input[k]) : undefined;
      return label + " " + (value || compactValue(input[k]));
    });
    return t("job.input", { input: parts.join(" · ") });
  }

  async copyId() {
    if (!this.job) return;
    const button = this.el.copyId;
    try {
      await navigator.clipboard.writeText(this.job.id);
      button.textContent = t("job.copied");
    } catch (_) {
      // no clipboard (an insecure origin, a refusal): select the id to copy by hand
      window.getSelection().selectAllChildren(this.el.id);
      button.textContent = t("job.copy_select");
    }
    setTimeout(() => {
      button.textContent = t("job.copy_id");
    }, 2000);
  }

  attemptNumber(job) {
    const attempts = Number(job.attempts) || 0;
    // Waiting for a retry: the attempt to come.
    if (job.status === "pending" && attempts > 0) return attempts + 1;
    return attempts;
  }

  stepHeadline(job) {
    if (job.status === "pending") return t(job.attempts > 0 ? "headline.retry_wait" : "headline.start_wait");
    if (job.status !== "running" && job.status !== "failed") return t("headline." + job.status);
    const step = (job.steps || []).find((s) => s.name === job.step);
    if (step) return stepTitle(job.type, step);
    return job.step || (job.status === "running" ? t("status.running") : "—");
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
      const state = STEP_STATES.has(step.status) ? step.status : "waiting";
      if (li.dataset.state !== state) li.dataset.state = state;
      if (state === "running") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      li.querySelector(".step-title").textContent = stepTitle(job.type, step);
      li.querySelector(".step-state").textContent = t("step." + state);
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
      badge.textContent = t("status." + child.status);
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
      el.errorTitle.textContent = t("error.title");
      el.errorMessage.textContent = err.message || job.message || t("error.no_message");
      const meta = [];
      if (err.type) meta.push(err.type);
      if (err.category && CATEGORIES.has(err.category)) meta.push(t("error.category." + err.category));
      if (job.attempts > 1) meta.push(t("error.attempts", { count: job.attempts }));
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
    head.textContent = (took != null ? t("result.took", { time: formatDuration(took) }) : t("status.completed")) +
      (job.attempts > 1 ? " " + t("error.attempts", { count: job.attempts }) : "");
    el.resultSummary.appendChild(head);
    const r = job.result;
    const isObject = r && typeof r === "object" && !Array.isArray(r);
    const line = isObject && typeof r.summary === "string" ? r.summary
      : r == null ? t("result.none") : !isObject ? compactValue(r) : "";
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
      dt.textContent = humanize(key);
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
    el.cancel.textContent = t(this.busy === "cancel" ? "action.cancelling" : "action.cancel");
    const retryable = job.status === "failed" || job.status === "cancelled";
    el.retry.hidden = !retryable;
    el.retry.disabled = this.busy === "retry";
    // a permanent error would fail the same way: Retry is offered, not pressed on the visitor
    const permanent = job.status === "failed" && job.error && job.error.category === "permanent";
    el.retry.classList.toggle("button-primary", !permanent);
    el.retry.classList.toggle("button-secondary", permanent);
    el.retry.textContent = t(this.busy === "retry" ? "action.starting" : permanent ? "action.retry_anyway" : "action.retry");
    // after a confirmed cancel, focus goes to Retry once the job says it is cancelled
    if (this.focusRetry && !el.retry.hidden && !this.busy) {
      this.focusRetry = false;
      el.retry.focus();
    }
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
      if (ms != null) elapsed = t("time.running", { time: formatDuration(Math.max(1000, ms)) });
      eta = jc.describeEta(this.eta.left());
    } else if (job.status === "pending") {
      const ms = this.clock.since(job.created_at);
      if (job.attempts > 0 && this.retryAt) {
        const left = Math.max(0, (this.retryAt - Date.now()) / 1000);
        eta = left >= 1 ? t("time.retry_in", { n: Math.ceil(left) }) : t("time.retry_now");
      } else {
        eta = t("time.worker_wait");
      }
      if (ms != null) elapsed = t("time.queued", { time: formatDuration(Math.max(1000, ms)) });
    } else if (job.status === "waiting" || job.status === "paused" || job.status === "draft") {
      eta = t("time." + job.status);
    } else {
      // a completed job's time is in its result's heading: said once
      const ms = elapsedMs(job.started_at || job.created_at, job.finished_at);
      if (ms != null && job.status !== "completed") elapsed = t("time.ended", { time: formatDuration(ms) });
      if (job.finished_at) {
        const ago = this.clock.since(job.finished_at);
        if (ago != null && ago > 60000) eta = t("time.finished", { at: window.jobcast.i18n.date(job.finished_at) });
      }
    }
    if (el.elapsed.textContent !== elapsed) el.elapsed.textContent = elapsed;
    if (el.eta.textContent !== eta) el.eta.textContent = eta;
    el.elapsed.parentElement.hidden = !elapsed && !eta;
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
      this.focusRetry = true;
    } catch (err) {
      this.showPanelError(err.status === 409 ? t("cancel.too_late") : err.message || t("cancel.failed"));
      if (this.options.onFocusLost) setTimeout(this.options.onFocusLost);
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
      this.showPanelError(err.status === 409 ? t("retry.refused") : err.message || t("retry.failed"));
    } finally {
      this.busy = null;
      if (this.job) this.renderActions(this.job);
    }
  }
}
