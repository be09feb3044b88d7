/*
 * admin.js: the operator dashboard (/admin). Asks for the admin token (kept in
 * sessionStorage, sent as a bearer token, never as the visitor cookie), then
 * shows queue, running jobs, throughput and failures. The admin feed (/ws/admin)
 * says when to refresh; while it is down, the page polls every 2 s instead.
 * admin.console.js draws the charts, the search, the job page and the actions.
 */

import { clampProgress, formatAgo, formatDuration, formatWait, shortId } from "./ui/format.js";
import { createConsole } from "./admin.console.js";
import { openAdminFeed } from "./admin.feed.js";

const TOKEN_KEY = "jobcast.adminToken";
const REFRESH_MS = 2000;
const FEED_REFRESH_MS = 30000; // with the feed open, polling is only a safety net
const PENDING_WARN_S = 60;
const FAILURE_WARN_RATE = 0.2;

const $ = (id) => document.getElementById(id);

const el = {
  login: $("login"),
  loginForm: $("login-form"),
  token: $("admin-token"),
  loginError: $("login-error"),
  loginButton: $("login-button"),
  dashboard: $("dashboard"),
  signOut: $("sign-out"),
  refreshState: $("refresh-state"),
  warnings: $("warnings"),
  queueDepth: $("queue-depth"),
  queueDue: $("queue-due"),
  oldestPending: $("oldest-pending"),
  pendingCount: $("pending-count"),
  runningCount: $("running-count"),
  stuckCount: $("stuck-count"),
  throughput: $("throughput"),
  failureRate: $("failure-rate"),
  tileOldest: $("tile-oldest"),
  tileRunning: $("tile-running"),
  runningBody: $("running-body"),
  runningEmpty: $("running-empty"),
  runningTable: $("running-table"),
  typesBody: $("types-body"),
  typesEmpty: $("types-empty"),
  typesTable: $("types-table"),
  failures: $("failures"),
  failuresEmpty: $("failures-empty"),
};

const session = {
  get() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  },
  set(token) {
    try {
      window.sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      /* kept in memory only */
    }
  },
  clear() {
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      /* ignore */
    }
  },
};

let token = null;
let timer = null;
let lastOk = 0;
let generation = 0; // bumps on sign-in/out, so stale answers are dropped
let consoleParts = null;
let feed = null;
let refreshQueued = null;

class AuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, init) {
  let res;
  try {
    // The visitor cookie is not an admin credential: leave it out.
    res = await fetch(path, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json", "Content-Type": "application/json" },
      credentials: "omit",
      cache: "no-store",
      ...(init || {}),
    });
  } catch (_) {
    throw new Error("The server does not answer.");
  }
  if (res.status === 401) throw new AuthError(401, "That token was not accepted (HTTP 401). Check it and try again.");
  if (res.status === 403) {
    throw new AuthError(403, "That token is not the admin token (or the admin endpoints are off: JOBCAST_ADMIN_TOKEN is not set).");
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    /* not JSON */
  }
  if (!res.ok) {
    const message = body && body.error && body.error.message;
    throw new Error(message || "The server answered HTTP " + res.status + ".");
  }
  return body;
}

// ------------------------------------------------------------- sign-in

function showLogin(message) {
  clearTimeout(timer);
  generation += 1;
  el.dashboard.hidden = true;
  el.signOut.hidden = true;
  el.login.hidden = false;
  el.refreshState.textContent = "";
  el.loginError.textContent = message || "";
  el.loginError.hidden = !message;
  el.token.value = "";
  el.token.focus();
}

async function signIn(candidate) {
  token = candidate;
  generation += 1;
  el.loginButton.disabled = true;
  try {
    const stats = await refresh(generation);
    session.set(token);
    if (!consoleParts) consoleParts = createConsole({ api, post, role: stats.role });
    consoleParts.stats(stats);
    document.documentElement.dataset.role = stats.role;
    openFeed(generation);
    el.login.hidden = true;
    el.dashboard.hidden = false;
    el.signOut.hidden = false;
  } catch (err) {
    token = null;
    session.clear();
    showLogin(err.message);
  } finally {
    el.loginButton.disabled = false;
  }
}

function post(path, body) {
  return api(path, { method: "POST", body: JSON.stringify(body) });
}

function openFeed(gen) {
  if (feed) feed.close();
  feed = openAdminFeed({
    token,
    onMessage(message) {
      if (gen !== generation) return;
      if (consoleParts) consoleParts.onFeed(message);
      if (message.type !== "action") queueRefresh(gen);
    },
    onLive(live) {
      if (!live && gen === generation) schedule(gen); // poll again while the feed is down
    },
  });
}

function queueRefresh(gen) {
  if (refreshQueued) return;
  refreshQueued = setTimeout(() => {
    refreshQueued = null;
    if (gen === generation) refresh(gen).catch(() => schedule(gen));
  }, 250);
}

function signOut() {
  if (feed) feed.close();
  feed = null;
  consoleParts = null;
  token = null;
  session.clear();
  showLogin("");
}

// ------------------------------------------------------------- refresh

async function refresh(gen) {
  const [stats, running, failed] = await Promise.all([
    api("/api/admin/stats"),
    api("/api/admin/jobs?status=running&limit=50"),
    api("/api/admin/jobs?status=failed&limit=10"),
  ]);
  if (gen !== generation) return stats;
  render(stats, running.jobs || [], failed.jobs || []);
  if (consoleParts) consoleParts.stats(stats);
  lastOk = Date.now();
  el.refreshState.textContent = "Updated " + new Date(lastOk).toLocaleTimeString();
  el.refreshState.dataset.state = "ok";
  schedule(gen);
  return stats;
}

function schedule(gen) {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (gen !== generation) return;
    if (document.hidden) {
      schedule(gen); // nobody is looking: check again later, fetch nothing
      return;
    }
    try {
      await refresh(gen);
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof AuthError) {
        session.clear();
        showLogin(err.message);
        return;
      }
      el.refreshState.textContent = err.message + " Retrying… (last update " + formatAgo(Date.now() - lastOk) + ")";
      el.refreshState.dataset.state = "error";
      schedule(gen);
    }
  }, feed && feed.live ? FEED_REFRESH_MS : REFRESH_MS);
}

// -------------------------------------------------------------- render

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function percent(rate) {
  if (rate == null || !Number.isFinite(rate)) return "—";
  return (rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0) + "%";
}

function seconds(s) {
  return s == null ? "—" : formatDuration(s * 1000);
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

function render(stats, running, failed) {
  const byStatus = stats.by_status || {};
  const queue = stats.queue || {};
  const hour = stats.last_hour || {};
  const day = stats.last_day || {};

  el.queueDepth.textContent = queue.depth == null ? "—" : String(queue.depth);
  el.queueDue.textContent = queue.depth == null ? "Redis does not answer" : (queue.due || 0) + " due now";
  el.oldestPending.textContent = byStatus.pending ? formatWait(stats.oldest_pending_s) : "—";
  // Jobs off the queue's line: they hold no worker and count against no cap.
  const aside = [["waiting", "waiting for input"], ["paused", "paused"], ["draft", "drafts"]]
    .filter(([status]) => byStatus[status])
    .map(([status, label]) => byStatus[status] + " " + label);
  el.pendingCount.textContent = [(byStatus.pending || 0) + " pending", ...aside].join(" · ");
  el.runningCount.textContent = String(byStatus.running || 0);
  el.stuckCount.textContent = stats.stuck_running ? stats.stuck_running + " stuck" : "none stuck";

  const finished = sum(Object.fromEntries(Object.entries(hour).map(([k, v]) => [k, v.finished])));
  const failedHour = sum(Object.fromEntries(Object.entries(hour).map(([k, v]) => [k, v.failed])));
  el.throughput.textContent = String(finished);
  el.failureRate.textContent = (finished / 60).toFixed(2) + "/min · " +
    (finished ? percent(failedHour / finished) + " failed" : "no failures");

  const oldWait = byStatus.pending && stats.oldest_pending_s > PENDING_WARN_S;
  el.tileOldest.dataset.level = oldWait ? "warn" : "";
  el.tileRunning.dataset.level = stats.stuck_running > 0 ? "danger" : "";

  renderWarnings(stats, hour, oldWait);
  renderRunning(running);
  renderTypes(stats.by_type || {}, hour, day);
  renderFailures(failed);
}

function renderWarnings(stats, hour, oldWait) {
  const items = [];
  if (stats.stuck_running > 0) {
    const stuck = stats.stuck_running === 1
      ? "1 running job has stopped reporting: its worker may have died."
      : stats.stuck_running + " running jobs have stopped reporting: their workers may have died.";
    items.push({
      level: "danger",
      text: stuck + " The reaper hands such jobs to another worker; if this stays, check the workers.",
    });
  }
  if (oldWait) {
    items.push({
      level: "warn",
      text: "The oldest pending job has waited " + formatWait(stats.oldest_pending_s) +
        ". Workers may be down, too few, or all busy.",
    });
  }
  for (const [type, w] of Object.entries(hour)) {
    if (w.finished >= 5 && w.failure_rate >= FAILURE_WARN_RATE) {
      items.push({ level: "warn", text: type + ": " + percent(w.failure_rate) + " of jobs failed in the last hour." });
    }
  }
  el.warnings.textContent = "";
  for (const item of items) {
    const li = document.createElement("li");
    li.className = "warning warning-" + item.level;
    li.setAttribute("role", "alert");
    li.textContent = item.text;
    el.warnings.appendChild(li);
  }
  el.warnings.hidden = items.length === 0;
}

function renderRunning(jobs) {
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

function renderTypes(byType, hour, day) {
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

function renderFailures(jobs) {
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

// ---------------------------------------------------------------- init

el.loginForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = el.token.value.trim();
  if (!value) {
    el.loginError.textContent = "Enter the admin token.";
    el.loginError.hidden = false;
    return;
  }
  signIn(value);
});
el.signOut.addEventListener("click", signOut);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && token && !el.dashboard.hidden) {
    const gen = generation;
    refresh(gen).catch(() => schedule(gen));
  }
});

const saved = session.get();
if (saved) signIn(saved);
else showLogin("");
document.documentElement.dataset.ready = "true";
