/*
 * admin.tables.js: the operator dashboard's tables: running jobs, job types, run-time
 * concurrency limits and recent failures, drawn into the elements admin.js found (``el``).
 */

import { clampProgress, formatAgo, formatDuration, shortId, t, typeTitle } from "./ui/format.js";

export const FAILURE_WARN_RATE = 0.2;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function percent(rate) {
  if (rate == null || !Number.isFinite(rate)) return "—";
  const digits = rate > 0 && rate < 0.1 ? 1 : 0;
  return window.jobcast.i18n.number(rate, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits });
}

let titles = []; // [{type, title}] of the install's job types, from the stats

/** The install's job type titles (the stats' `titles`), for typeName. */
export function setTitles(byName) {
  titles = Object.entries(byName || {}).map(([type, title]) => ({ type, title }));
}

/** A job type as people read it: its title in the page's language, else its name. */
export function typeName(type) {
  return typeTitle(titles, type);
}

/** Each body cell's column name (data-label), which a phone shows beside it. */
export function labelCells(table) {
  const heads = table.tHead ? [...table.tHead.rows[0].cells].map((th) => th.textContent.trim()) : [];
  for (const row of table.tBodies[0].rows) {
    [...row.cells].forEach((c, i) => {
      c.dataset.label = heads[i] || "";
    });
  }
}

/** A job id that opens the job's page in the console (#job=<id>). */
export function jobLink(id) {
  const a = document.createElement("a");
  a.className = "mono";
  a.href = "#job=" + id;
  a.textContent = shortId(id);
  a.title = id;
  return a;
}

function seconds(s) {
  return s == null ? "—" : formatDuration(s * 1000);
}

export function renderRunning(el, jobs) {
  el.runningBody.textContent = "";
  for (const job of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    const id = document.createElement("td");
    id.append(jobLink(job.id));
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
    bar.setAttribute("aria-label", t("admin.progress_of", { id: shortId(job.id) }));
    const fill = document.createElement("span");
    fill.className = "mini-fill";
    fill.style.width = pct + "%";
    bar.appendChild(fill);
    const label = document.createElement("span");
    label.className = "pct";
    label.textContent = pct + "%";
    progress.append(bar, label);
    const step = (job.steps || []).find((s) => s.name === job.step);
    const title = step ? window.jobcast.i18n.stepTitle(job.type, step) : job.step || "—";
    const stepText = title + (job.message ? " · " + job.message : "");
    const started = Date.parse(job.started_at);
    const runFor = Number.isFinite(started) ? formatDuration(Math.max(0, Date.now() - started)) : "—";
    const attempt = job.attempts > 1 ? " " + t("admin.attempt", { n: job.attempts }) : "";
    tr.append(id, cell(typeName(job.type)), owner, progress, cell(stepText, "wrap"), cell(runFor + attempt, "nowrap"));
    el.runningBody.appendChild(tr);
  }
  labelCells(el.runningTable);
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
    name.textContent = typeName(type);
    const rate = cell(h.finished ? percent(h.failure_rate) : "—", "num");
    if (h.finished && h.failure_rate >= FAILURE_WARN_RATE) rate.classList.add("bad");
    const number = (n) => window.jobcast.i18n.number(n, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    const perMin = cell(h.finished ? number(h.finished / 60) : "0", "num");
    perMin.title = t("admin.finished_hour", { count: h.finished || 0 });
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
  labelCells(el.typesTable);
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
    type.textContent = typeName(job.type);
    const id = jobLink(job.id);
    const kind = document.createElement("span");
    kind.className = "badge";
    kind.dataset.status = "failed";
    kind.textContent = err.category ? t("admin.category." + err.category) : t("status.failed");
    const when = document.createElement("span");
    when.className = "muted";
    const finished = Date.parse(job.finished_at);
    when.textContent = Number.isFinite(finished) ? formatAgo(Date.now() - finished) : "";
    head.append(type, id, kind, when);
    const message = document.createElement("p");
    message.className = "failure-message";
    message.textContent = (err.type ? err.type + ": " : "") + (err.message || job.message || t("admin.no_message"));
    const meta = document.createElement("p");
    meta.className = "failure-meta muted";
    meta.textContent = t("admin.failure_meta", {
      step: job.step || "—", attempt: job.attempts, max: job.max_attempts, owner: shortId(job.owner_id),
    });
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
    const limit = row.kind === "throttle" ? t("admin.limit_per", { limit: row.limit, period: row.period_s }) : String(row.limit);
    tr.append(
      cell(row.key, "mono"),
      cell(t("admin.kind." + row.kind)),
      cell(limit, "num"),
      cell(row.running == null ? "—" : String(row.running), "num"),
      cell(String(row.parked), "num"),
      cell(row.set_by, "muted"),
    );
    el.limitsBody.appendChild(tr);
  }
  labelCells(el.limitsTable);
  el.limitsTable.hidden = limits.length === 0;
  el.limitsEmpty.hidden = limits.length !== 0;
}
