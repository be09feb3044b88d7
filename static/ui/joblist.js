/*
 * "My jobs": the visitor's jobs, newest first, kept current by the owner feed
 * (status and step events), reloaded on "resync", and polled while the feed is
 * down. Each row links to the job's page.
 */

import { clampProgress, formatAgo, jobLabel, shortId, t, typeTitle } from "./format.js";

const LIMIT = 50;
const POLL_MS = 5000;
const RELOAD_DEBOUNCE_MS = 250;

function $(id) {
  return document.getElementById(id);
}

export class JobList {
  /**
   * options: clock (ServerClock), onEnded(job) for a job seen active that is now
   * final (found by a reload: the feed's own events are announced by the caller).
   */
  constructor(options) {
    this.options = options;
    this.el = {
      list: $("job-list"),
      empty: $("jobs-empty"),
      error: $("jobs-error"),
      refresh: $("jobs-refresh"),
    };
    this.types = [];
    this.rows = new Map(); // id → {job, node}
    this.currentId = null;
    this.loaded = false;
    this.inFlight = null;
    this.again = false;
    this.reloadTimer = null;
    this.pollTimer = null;
    this.el.refresh.addEventListener("click", () => this.reload());
  }

  setTypes(types) {
    this.types = types || [];
    for (const row of this.rows.values()) this.renderRow(row);
  }

  setCurrent(id) {
    this.currentId = id;
    for (const [rowId, row] of this.rows) {
      if (rowId === id) row.node.firstChild.setAttribute("aria-current", "page");
      else row.node.firstChild.removeAttribute("aria-current");
    }
  }

  /** Load the list again; calls made while one runs are folded into one more. */
  reload() {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = (async () => {
      try {
        const jobs = await window.jobcast.listJobs({ limit: LIMIT });
        this.el.error.hidden = true;
        this.replace(jobs);
      } catch (err) {
        this.el.error.textContent = t("list.failed", { reason: err.message || t("error.generic") });
        this.el.error.hidden = false;
      } finally {
        this.inFlight = null;
        if (this.again) {
          this.again = false;
          this.reload();
        }
      }
    })();
    return this.inFlight;
  }

  scheduleReload() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reload(), RELOAD_DEBOUNCE_MS);
  }

  /** While the owner feed is down, reload every few seconds instead. */
  setPolling(on) {
    clearInterval(this.pollTimer);
    this.pollTimer = on ? setInterval(() => {
      if (!document.hidden) this.reload();
    }, POLL_MS) : null;
  }

  replace(jobs) {
    // a row holding focus keeps it through the reload (its node is moved, not made anew)
    const focused = this.el.list.contains(document.activeElement) ? document.activeElement : null;
    const before = this.rows;
    const wasLoaded = this.loaded;
    this.rows = new Map();
    const fragment = document.createDocumentFragment();
    for (const job of jobs) {
      const old = before.get(job.id);
      const row = old || { job: null, node: null };
      const previous = old ? old.job : null;
      row.job = this.merge(previous, job);
      if (!row.node) row.node = this.createRow(job.id);
      this.renderRow(row);
      this.rows.set(job.id, row);
      fragment.appendChild(row.node);
      const ended = previous && !window.jobcast.isFinal(previous.status) && window.jobcast.isFinal(job.status);
      if (wasLoaded && ended && this.options.onEnded) this.options.onEnded(row.job);
    }
    this.el.list.textContent = "";
    this.el.list.appendChild(fragment);
    if (focused && focused.isConnected) focused.focus({ preventScroll: true });
    this.loaded = true;
    this.el.empty.hidden = this.rows.size > 0;
    this.setCurrent(this.currentId);
  }

  /** Keep what is newer: progress never goes back within an attempt. */
  merge(previous, next) {
    const job = Object.assign({}, previous || {}, next);
    if (previous && (next.attempts == null || next.attempts === previous.attempts) &&
        !window.jobcast.isFinal(next.status) && clampProgress(next.progress) < clampProgress(previous.progress)) {
      job.progress = previous.progress;
    }
    return job;
  }

  /** A job just submitted from this page: shown at once, before the list reloads. */
  add(job) {
    if (this.rows.has(job.id)) return;
    const row = { job: Object.assign({ progress: 0, created_at: new Date().toISOString() }, job), node: this.createRow(job.id) };
    this.rows.set(job.id, row);
    this.renderRow(row);
    this.el.list.insertBefore(row.node, this.el.list.firstChild);
    this.el.empty.hidden = true;
    this.setCurrent(this.currentId);
  }

  /** The watched job's finer state (its own websocket also brings progress events). */
  applyJob(job) {
    const row = this.rows.get(job.id);
    if (!row) return;
    const update = { status: job.status, progress: job.progress, attempts: job.attempts, step: job.step };
    if (job.seq != null) update.seq = job.seq;
    row.job = this.merge(row.job, update);
    this.renderRow(row);
  }

  /** An owner-feed event. Unknown jobs (started elsewhere) make the list reload. */
  applyEvent(ev) {
    const row = this.rows.get(ev.job_id);
    if (!row) {
      if (this.loaded) this.scheduleReload();
      return;
    }
    // an event the list's own read holds already (the feed can send one written as the
    // list was read after it): applied now, it would take the row back to where it was
    if (ev.seq != null && row.job.seq != null && ev.seq <= row.job.seq) return;
    const update = ev.seq != null ? { seq: ev.seq } : {};
    // input_required and input events carry the job's new status too (waiting, pending)
    if (ev.status && ev.kind !== "status") update.status = ev.status;
    if (ev.kind === "status") {
      if (ev.status) update.status = ev.status;
      if (ev.attempt != null) {
        if (row.job.attempts != null && ev.attempt > row.job.attempts) row.job.progress = 0;
        update.attempts = ev.attempt;
      }
      if (ev.status === "completed") update.progress = 100;
    }
    if (ev.progress != null && ev.status !== "completed") update.progress = ev.progress;
    if (ev.kind === "step" && ev.state === "running") update.step = ev.step;
    row.job = this.merge(row.job, update);
    this.renderRow(row);
  }

  createRow(id) {
    const li = document.createElement("li");
    li.className = "job-row";
    li.dataset.jobId = id;
    li.innerHTML =
      '<a class="job-row-link">' +
      '<span class="job-row-top"><span class="badge"></span><span class="job-row-type"></span>' +
      '<span class="job-row-age"></span></span><span class="job-row-label"></span>' +
      '<span class="job-row-bottom"><span class="mini-progress" aria-hidden="true"><span class="mini-fill"></span></span>' +
      '<span class="job-row-pct"></span><code class="job-row-id"></code></span>' +
      "</a>";
    const link = li.firstChild;
    link.href = "/jobs/" + encodeURIComponent(id);
    link.dataset.jobLink = id;
    return li;
  }

  renderRow(row) {
    const job = row.job;
    const node = row.node;
    const status = job.status || "pending";
    const pct = status === "completed" ? 100 : Math.floor(clampProgress(job.progress));
    const title = typeTitle(this.types, job.type);
    node.dataset.status = status;
    const badge = node.querySelector(".badge");
    badge.dataset.status = status;
    badge.textContent = t("status." + status);
    node.querySelector(".job-row-type").textContent = title;
    const label = jobLabel(this.types, job);
    const labelNode = node.querySelector(".job-row-label");
    labelNode.textContent = label;
    labelNode.hidden = !label;
    node.querySelector(".job-row-pct").textContent = pct + "%";
    node.querySelector(".job-row-id").textContent = shortId(job.id);
    node.querySelector(".mini-fill").style.width = pct + "%";
    node.querySelector(".mini-progress").dataset.status = status;
    this.renderAge(row);
  }

  renderAge(row) {
    const ms = this.options.clock.since(row.job.created_at);
    const text = formatAgo(ms);
    const node = row.node.querySelector(".job-row-age");
    if (node.textContent !== text) node.textContent = text;
  }

  tick() {
    for (const row of this.rows.values()) this.renderAge(row);
  }
}
