/*
 * admin.js: the operator dashboard (/admin). Asks for the admin token (kept in
 * sessionStorage, sent as a bearer token, never as the visitor cookie), then
 * shows queue, running jobs, throughput and failures. The admin feed (/ws/admin)
 * says when to refresh; while it is down, the page polls every 2 s instead.
 * admin.console.js draws the charts, the search, the job page and the actions.
 */

import { formatAgo, formatWait, t } from "./ui/format.js";
import { createConsole } from "./admin.console.js";
import { openAdminFeed } from "./admin.feed.js";
import {
  FAILURE_WARN_RATE, percent, renderFailures, renderLimits, renderRunning, renderTypes, setTitles, typeName,
} from "./admin.tables.js";

const TOKEN_KEY = "jobcast.adminToken";
const REFRESH_MS = 2000;
const FEED_REFRESH_MS = 30000; // with the feed open, polling is only a safety net
const PENDING_WARN_S = 60;

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
  limitsBody: $("limits-body"),
  limitsEmpty: $("limits-empty"),
  limitsTable: $("limits-table"),
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
    throw new Error(t("admin.error.no_answer"));
  }
  if (res.status === 401) throw new AuthError(401, t("admin.error.401"));
  if (res.status === 403) {
    throw new AuthError(403, t("admin.error.403"));
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    /* not JSON */
  }
  if (!res.ok) {
    const message = body && body.error && body.error.message;
    throw new Error(message || t("admin.error.http", { status: String(res.status) }));
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
  const [stats, running, failed, limits] = await Promise.all([
    api("/api/admin/stats?counts=live"), // the console shows no finished job's count
    api("/api/admin/jobs?status=running&limit=50"),
    api("/api/admin/jobs?status=failed&limit=10"),
    api("/api/admin/limits"),
  ]);
  if (gen !== generation) return stats;
  render(stats, running.jobs || [], failed.jobs || []);
  renderLimits(el, limits.limits || []);
  if (consoleParts) consoleParts.stats(stats);
  lastOk = Date.now();
  el.refreshState.textContent = t("admin.updated", { time: window.jobcast.i18n.date(lastOk, { timeStyle: "medium" }) });
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
      el.refreshState.textContent = t("admin.retrying", { error: err.message, ago: formatAgo(Date.now() - lastOk) });
      el.refreshState.dataset.state = "error";
      schedule(gen);
    }
  }, feed && feed.live ? FEED_REFRESH_MS : REFRESH_MS);
}

// -------------------------------------------------------------- render

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

function render(stats, running, failed) {
  setTitles(stats.titles);
  const byStatus = stats.by_status || {};
  const queue = stats.queue || {};
  const hour = stats.last_hour || {};
  const day = stats.last_day || {};

  el.queueDepth.textContent = queue.depth == null ? "—" : String(queue.depth);
  el.queueDue.textContent = queue.depth == null ? t("admin.queue.no_redis") : t("admin.queue.due", { count: queue.due || 0 });
  el.oldestPending.textContent = byStatus.pending ? formatWait(stats.oldest_pending_s) : "—";
  // Jobs off the queue's line: they hold no worker and count against no cap.
  const aside = ["waiting", "paused", "draft"]
    .filter((status) => byStatus[status])
    .map((status) => t("admin.aside." + status, { count: byStatus[status] }));
  // Pending jobs past their type's pending limit, of types that report rather than fail them.
  const stuckPending = sum(stats.stuck_pending || {});
  const stuckNote = stuckPending ? [t("admin.stuck", { count: stuckPending })] : [];
  el.pendingCount.textContent = [t("admin.pending", { count: byStatus.pending || 0 }), ...stuckNote, ...aside].join(" · ");
  el.runningCount.textContent = String(byStatus.running || 0);
  el.stuckCount.textContent = stats.stuck_running ? t("admin.stuck", { count: stats.stuck_running }) : t("admin.none_stuck");

  const finished = sum(Object.fromEntries(Object.entries(hour).map(([k, v]) => [k, v.finished])));
  const failedHour = sum(Object.fromEntries(Object.entries(hour).map(([k, v]) => [k, v.failed])));
  el.throughput.textContent = String(finished);
  const perMin = window.jobcast.i18n.number(finished / 60, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  el.failureRate.textContent = t("admin.rate", { rate: perMin }) + " · " +
    (finished ? t("admin.rate_failed", { percent: percent(failedHour / finished) }) : t("admin.no_failures"));

  const oldWait = byStatus.pending && stats.oldest_pending_s > PENDING_WARN_S;
  el.tileOldest.dataset.level = stuckPending ? "danger" : oldWait ? "warn" : "";
  el.tileRunning.dataset.level = stats.stuck_running > 0 ? "danger" : "";

  renderWarnings(stats, hour, oldWait);
  renderRunning(el, running);
  renderTypes(el, stats.by_type || {}, hour, day);
  renderFailures(el, failed);
}

function renderWarnings(stats, hour, oldWait) {
  const items = [];
  if (stats.stuck_running > 0) {
    const stuck = t("admin.warn.stuck_running", { count: stats.stuck_running });
    items.push({ level: "danger", text: stuck + " " + t("admin.warn.reaper") });
  }
  for (const [type, n] of Object.entries(stats.stuck_pending || {})) {
    items.push({
      level: "danger",
      text: t("admin.warn.stuck_pending", { type: typeName(type), count: n }),
    });
  }
  if (oldWait) {
    items.push({
      level: "warn",
      text: t("admin.warn.oldest", { wait: formatWait(stats.oldest_pending_s) }),
    });
  }
  for (const [type, w] of Object.entries(hour)) {
    if (w.finished >= 5 && w.failure_rate >= FAILURE_WARN_RATE) {
      items.push({ level: "warn", text: t("admin.warn.failing", { type: typeName(type), percent: percent(w.failure_rate) }) });
    }
  }
  el.warnings.textContent = "";
  for (const item of items) {
    const li = document.createElement("li");
    li.className = "warning warning-" + item.level;
    li.textContent = item.text;
    el.warnings.appendChild(li);
  }
  el.warnings.hidden = items.length === 0;
}

// ---------------------------------------------------------------- init

el.loginForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = el.token.value.trim();
  if (!value) {
    el.loginError.textContent = t("admin.login.empty");
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

async function init() {
  // the page's words in its language (the catalogues of static/i18n, jobcast.js's choice)
  await window.jobcast.i18n.ready;
  window.jobcast.i18n.translate(document);
  document.title = t("admin.page_title");
  const saved = session.get();
  if (saved) signIn(saved);
  else showLogin("");
  document.documentElement.dataset.ready = "true";
}

init();
