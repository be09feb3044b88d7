/*
 * admin.tables.js: the operator dashboard's tables: running jobs, job types, run-time
 * concurrency limits and recent failures, drawn into the elements admin.js found (``el``).
 */

import { clampProgress, formatAgo, formatDuration, shortId } from "./ui/format.js";

export const FAILURE_WARN_RATE = 0.2;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function percent(rate) {
  if (rate == null || !Number.isFinite(rate)) return "—";
  return (rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0) + "%";
}

function seconds(s) {
  return s == null ? "—" : formatDuration(s * 1000);
}

export function renderRunning(el, jobs) {
  el.runningBody.textContent = "";
  for (const job of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    const id = cell(shortId(job.id), "mono");
    id.title = job.id;
    const owner = cell(shortId(job.owner_id), "mono muted");
    owner.title = job.owner_id;
    const progress = document.createElement("td");
    progress.className = "col-progress";
    const pct = Math.floor(clampProgress(job.progress));
    const bar = document.createElement("div");
    bar.className = "mini-progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-label", "Progress of job " + shortId(job.id));
    const fill = document.createElement("span");
    fill.className = "mini-fill";
    fill.style.width = pct + "%";
    bar.appendChild(fill);
    const label = document.createElement("span");
    label.className = "pct";
    label.textContent = pct + "%";
    progress.append(bar, label);
    const step = (job.steps || []).find((s) => s.name === job.step);
    const stepText = (step ? step.title || step.name : job.step || "—") + (job.message ? " · " + job.message : "");
    const started = Date.parse(job.started_at);
    const runFor = Number.isFinite(started) ? formatDuration(Math.max(0, Date.now() - started)) : "—";
    const attempt = job.attempts > 1 ? " (attempt " + job.attempts + ")" : "";
    tr.append(id, cell(job.type), owner, progress, cell(stepText, "wrap"), cell(runFor + attempt, "nowrap"));
    el.runningBody.appendChild(tr);
  }
  el.runningTable.hidden = jobs.length === 0;
  el.runningEmpty.hidden = jobs.length > 0;
}

export function renderTypes(el, byType, hour, day) {
  const types = Array.from(new Set([...Object.keys(byType), ...Object.keys(hour), ...Object.keys(day)])).sort();
  el.typesBody.textContent = "";
  for (const type of types) {
    const counts = byType[type] || {};
    const h = hour[type] || {};
    const d = day[type] || {};
    const tr = document.createElement("tr");
    tr.dataset.type = type;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = type;
    const rate = cell(h.finished ? percent(h.failure_rate) : "—", "num");
    if (h.finished && h.failure_rate >= FAILURE_WARN_RATE) rate.classList.add("bad");
    const perMin = cell(h.finished ? (h.finished / 60).toFixed(2) : "0", "num");
    perMin.title = (h.finished || 0) + " finished in the last hour";
    tr.append(
      name,
      cell(String(counts.pending || 0), "num"),
      cell(String(counts.running || 0), "num"),
      perMin,
      rate,
      cell(h.finished ? seconds(h.p50_s) + " / " + seconds(h.p95_s) : "—", "num nowrap"),
      cell(d.finished ? percent(d.failure_rate) : "—", "num"),
    );
    el.typesBody.appendChild(tr);
  }
  el.typesTable.hidden = types.length === 0;
  el.typesEmpty.hidden = types.length > 0;
}

export function renderFailures(el, jobs) {
  el.failures.textContent = "";
  for (const job of jobs) {
    const err = job.error || {};
    const li = document.createElement("li");
    li.className = "failure";
    li.dataset.jobId = job.id;
    const head = document.createElement("div");
    head.className = "failure-head";
    const type = document.createElement("strong");
    type.textContent = job.type;
    const id = document.createElement("code");
    id.textContent = shortId(job.id);
    id.title = job.id;
    const kind = document.createElement("span");
    kind.className = "badge";
    kind.dataset.status = "failed";
    kind.textContent = err.category || "failed";
    const when = document.createElement("span");
    when.className = "muted";
    const finished = Date.parse(job.finished_at);
    when.textContent = Number.isFinite(finished) ? formatAgo(Date.now() - finished) : "";
    head.append(type, id, kind, when);
    const message = document.createElement("p");
    message.className = "failure-message";
    message.textContent = (err.type ? err.type + ": " : "") + (err.message || job.message || "no message");
    const meta = document.createElement("p");
    meta.className = "failure-meta muted";
    meta.textContent = "step " + (job.step || "—") + " · attempt " + job.attempts + " of " + job.max_attempts +
      " · owner " + shortId(job.owner_id);
    li.append(head, message, meta);
    el.failures.appendChild(li);
  }
  el.failures.hidden = jobs.length === 0;
  el.failuresEmpty.hidden = jobs.length > 0;
}

export function renderLimits(el, limits) {
  el.limitsBody.textContent = "";
  for (const row of limits) {
    const tr = document.createElement("tr");
    const limit = row.kind === "throttle" ? row.limit + " per " + row.period_s + " s" : String(row.limit);
    tr.append(
      cell(row.key, "mono"),
      cell(row.kind),
      cell(limit, "num"),
      cell(row.running == null ? "—" : String(row.running), "num"),
      cell(String(row.parked), "num"),
      cell(row.set_by, "muted"),
    );
    el.limitsBody.appendChild(tr);
  }
  el.limitsTable.hidden = limits.length === 0;
  el.limitsEmpty.hidden = limits.length !== 0;
}
