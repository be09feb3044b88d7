/*
 * admin.console.js: the operator console's live parts: charts (uPlot, vendored in
 * static/vendor/uplot), the queues with pause and resume, the job search whose filter
 * lives in the URL, a job's page for operators, and bulk actions with a confirm that
 * shows the count and progress from the admin feed (/ws/admin).
 */

import { formatAgo, t as say } from "./ui/format.js";
import { jobLink, labelCells, typeName } from "./admin.tables.js";

export const FAILURE_THRESHOLD = 0.1; // deploy/prometheus/alerts.yml alerts at the same rate
const FILTER_FIELDS = ["type", "status", "tag", "tenant", "subject", "owner", "error_class", "q", "since", "until"];
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

const $ = (id) => document.getElementById(id);

/** The catalogue's word for `key` where it has one, else `raw` (a name the server sent). */
function word(key, raw) {
  return window.jobcast.i18n.maybe(key) || raw;
}

export function createConsole({ api, post, role }) {
  const canAct = role === "admin";
  const state = { window: "hour", charts: {}, series: null, cursor: null, stats: null, panelJob: null, actions: new Map() };

  document.querySelectorAll(".act").forEach((b) => {
    b.hidden = !canAct;
  });

  // ------------------------------------------------------------- charts

  function chart(id, series, data, opts = {}) {
    const host = $(id);
    if (!host || typeof window.uPlot !== "function") return;
    const width = Math.max(240, host.clientWidth || 320);
    const options = {
      width,
      height: 150,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: opts.y || {} },
      axes: [
        { stroke: "#888", grid: { stroke: "#8883" }, values: (u, splits) => timeTicks(host, splits) },
        { stroke: "#888", grid: { stroke: "#8883" }, size: valuesWidth, values: (u, splits, i, space, incr) => numberTicks(splits, incr) },
      ],
      series: [{}, ...series],
    };
    if (state.charts[id]) state.charts[id].destroy();
    host.textContent = "";
    state.charts[id] = new window.uPlot(options, data, host);
    host.dataset.points = String(data[0].length);
  }

  /** A time axis's ticks (seconds) as the page's language writes them: the time, with the
   *  date under the first and where a new day begins. The labels drawn are kept in data-ticks. */
  function timeTicks(host, splits) {
    const i18n = window.jobcast.i18n;
    let day = null;
    const ticks = splits.map((v) => {
      const at = new Date(v * 1000);
      const time = i18n.date(at, { timeStyle: "short" });
      const newDay = at.toDateString() !== day;
      day = at.toDateString();
      return newDay ? time + "\n" + i18n.date(at, { day: "numeric", month: "short" }) : time;
    });
    host.dataset.ticks = ticks.join(" | ");
    return ticks;
  }

  /** A value axis's ticks as the page's language writes numbers, with as many decimals as
   *  the step between ticks needs (0,05 · 0,10 · 0,15). */
  function numberTicks(splits, incr) {
    let digits = 0;
    while (digits < 6 && Math.abs(Math.round(incr * 10 ** digits) - incr * 10 ** digits) > 1e-6) digits += 1;
    const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
    return splits.map((v) => (v == null ? "" : window.jobcast.i18n.number(v, options)));
  }

  /** The width of a value axis: its longest tick, at least 44 px. */
  function valuesWidth(u, values) {
    return Math.max(44, 14 + 7 * Math.max(0, ...(values || []).map((v) => String(v).length)));
  }

  function line(label, i, dash) {
    const stroke = COLORS[i % COLORS.length];
    return { label, stroke, width: 1.5, spanGaps: true, dash, points: { show: true, size: 5, fill: stroke } };
  }

  function drawCharts(s) {
    state.series = s;
    const types = Object.keys(s.types).sort();
    const t = s.t;
    const byType = (key) => [t, ...types.map((name) => s.types[name][key])];
    chart("chart-finished", types.map((n, i) => line(typeName(n), i)), byType("finished_per_min"));
    chart("chart-failure", types.map((n, i) => line(typeName(n), i)), byType("failure_rate"), { y: { range: [0, 1] } });
    chart("chart-depth", [line(say("admin.chart.queued"), 0)], [t, s.queue_depth]);
    const all = s.all || { run_p50: t.map(() => null), run_p95: t.map(() => null), wait_p50: t.map(() => null), wait_p95: t.map(() => null) };
    chart("chart-run", [line("p50", 0), line("p95", 1, [4, 2])], [t, all.run_p50, all.run_p95]);
    chart("chart-wait", [line("p50", 2), line("p95", 3, [4, 2])], [t, all.wait_p50, all.wait_p95]);
    chart("chart-events", [line(say("admin.chart.per_s"), 4)], [t, s.events_per_s]);
    renderQueues();
  }

  async function loadCharts() {
    drawCharts(await api("/api/admin/series?window=" + state.window));
  }

  document.querySelectorAll("#charts [data-window]").forEach((b) => {
    b.addEventListener("click", () => {
      state.window = b.dataset.window;
      document.querySelectorAll("#charts [data-window]").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
      $("charts-title").textContent = say("admin.charts.title_" + state.window);
      loadCharts().catch(() => {});
    });
  });

  // ------------------------------------------------------ queues, pauses

  /** Since when a type's failure rate is over the threshold (the current run of buckets). */
  function failingSince(name) {
    const s = state.series;
    if (!s || !s.types[name]) return null;
    const rates = s.types[name].failure_rate;
    let since = null;
    for (let i = rates.length - 1; i >= 0; i -= 1) {
      if (rates[i] === null) continue;
      if (rates[i] > FAILURE_THRESHOLD) since = s.t[i];
      else break;
    }
    return since;
  }

  function renderQueues() {
    const list = $("queue-list");
    const stats = state.stats;
    if (!list || !stats) return;
    const paused = new Map((stats.paused || []).map((p) => [p.type, p]));
    // the types with jobs not finished, or finished in the last day, and the paused ones
    const names = [...new Set([
      ...Object.keys(stats.by_type || {}), ...Object.keys(stats.last_day || {}), ...paused.keys(),
    ])].sort();
    list.textContent = "";
    for (const name of names) {
      const li = document.createElement("li");
      li.className = "queue";
      li.dataset.type = name;
      const title = document.createElement("strong");
      title.textContent = typeName(name);
      const counts = stats.by_type[name] || {};
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent = say("admin.queue_counts", { pending: counts.pending || 0, running: counts.running || 0 });
      li.append(title, note);
      const since = failingSince(name);
      if (since !== null) {
        const badge = document.createElement("span");
        badge.className = "badge over-threshold";
        badge.dataset.status = "failed";
        badge.textContent = say("admin.over", {
          percent: FAILURE_THRESHOLD * 100, time: window.jobcast.i18n.date(since * 1000, { timeStyle: "short" }),
        });
        li.append(badge);
      }
      const p = paused.get(name);
      if (p) {
        const badge = document.createElement("span");
        badge.className = "badge paused-badge";
        badge.dataset.status = "paused";
        badge.textContent = say("admin.paused_for", { ago: formatAgo(Date.now() - Date.parse(p.paused_at)) });
        li.append(badge);
      }
      if (canAct) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "button button-small";
        button.textContent = p ? say("admin.resume") : say("admin.pause");
        button.setAttribute("aria-label", (p ? say("admin.resume") : say("admin.pause")) + " " + typeName(name));
        button.addEventListener("click", async () => {
          button.disabled = true;
          await post("/api/admin/types/" + encodeURIComponent(name) + (p ? "/resume" : "/pause"), {});
          state.stats.paused = p ? state.stats.paused.filter((x) => x.type !== name)
            : [...(state.stats.paused || []), { type: name, paused_at: new Date().toISOString() }];
          renderQueues();
        });
        li.append(button);
      }
      list.append(li);
    }
  }

  // --------------------------------------------------- search and filters

  const form = $("filter-form");

  function filterFromUrl() {
    const params = new URLSearchParams(window.location.search);
    const filter = {};
    for (const key of FILTER_FIELDS) {
      const value = params.get(key);
      if (value) filter[key] = value;
    }
    return filter;
  }

  function filterToForm(filter) {
    for (const key of FILTER_FIELDS) {
      const input = form.elements[key];
      if (!input) continue;
      const value = filter[key] || "";
      input.value = (key === "since" || key === "until") && value ? value.slice(0, 16) : value;
    }
  }

  function filterFromForm() {
    const filter = {};
    for (const key of FILTER_FIELDS) {
      const value = (form.elements[key].value || "").trim();
      if (!value) continue;
      filter[key] = key === "since" || key === "until" ? new Date(value).toISOString() : value;
    }
    return filter;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  async function search(filter, cursor) {
    const params = new URLSearchParams({ ...filter, limit: "50" });
    if (cursor) params.set("cursor", cursor);
    $("search-error").hidden = true;
    let page;
    try {
      page = await api("/api/admin/jobs?" + params.toString());
    } catch (err) {
      $("search-error").textContent = err.message;
      $("search-error").hidden = false;
      return;
    }
    const body = $("search-body");
    if (!cursor) body.textContent = "";
    for (const job of page.jobs) {
      const tr = document.createElement("tr");
      tr.dataset.jobId = job.id;
      const link = document.createElement("td");
      const a = jobLink(job.id);
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        openJob(job.id);
      });
      link.append(a);
      const err = job.error ? (job.error.type || "") + ": " + (job.error.message || "") : "";
      tr.append(link, cell(typeName(job.type)), cell(say("status." + job.status)), cell((job.tags || []).join(", ")),
        cell(when(job.created_at)), cell(err));
      tr.children[2].dataset.status = job.status;
      body.append(tr);
    }
    state.cursor = page.next_cursor;
    $("search-more").hidden = !page.next_cursor;
    labelCells($("search-table"));
    $("search-table").dataset.count = String(body.children.length);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const filter = filterFromForm();
    const url = new URL(window.location.href);
    url.search = new URLSearchParams(filter).toString();
    window.history.pushState(null, "", url);
    search(filter);
  });
  $("search-more").addEventListener("click", () => search(filterFromUrl(), state.cursor));
  window.addEventListener("popstate", () => {
    filterToForm(filterFromUrl());
    search(filterFromUrl());
  });

  // ------------------------------------------------------------- actions

  async function bulk(action, target) {
    const note = $("action-progress");
    let count;
    if (target.ids) count = target.ids.length;
    else {
      const params = new URLSearchParams({ ...target.filter, action });
      count = (await api("/api/admin/count?" + params.toString())).matched;
    }
    const filtered = target.filter && Object.keys(target.filter).length;
    const what = target.ids ? say("admin.what.ids", { count })
      : filtered ? say("admin.what.filter", { count, filter: JSON.stringify(target.filter) })
        : say("admin.what.all", { count });
    if (!window.confirm(say("admin.confirm." + action, { what }))) return;
    const accepted = await post("/api/admin/jobs/" + action, target.filter && Object.keys(target.filter).length === 0
      ? { filter: "all" } : target);
    note.dataset.actionId = accepted.action_id;
    note.dataset.state = "running";
    note.textContent = say("admin.action_progress", { action: say("admin.action." + action), done: 0, matched: accepted.matched });
    const known = state.actions.get(accepted.action_id);
    if (known) onAction(known); // the feed may tell of it before the answer came
  }

  document.querySelectorAll("[data-bulk]").forEach((b) => {
    b.addEventListener("click", () => bulk(b.dataset.bulk, { filter: filterFromUrl() }).catch((err) => {
      $("search-error").textContent = err.message;
      $("search-error").hidden = false;
    }));
  });
  document.querySelectorAll("[data-one]").forEach((b) => {
    b.addEventListener("click", () => state.panelJob && bulk(b.dataset.one, { ids: [state.panelJob] }));
  });

  function onAction(message) {
    state.actions.set(message.id, message);
    const note = $("action-progress");
    if (note.dataset.actionId !== message.id) return;
    const words = { action: say("admin.action." + message.action), done: message.done, matched: message.matched };
    note.textContent = say(message.finished ? "admin.action_done" : "admin.action_progress", words);
    note.dataset.state = message.finished ? "done" : "running";
    if (message.finished) search(filterFromUrl());
  }

  // ---------------------------------------------------------- job page

  function section(title, value) {
    const wrap = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = title;
    const pre = document.createElement("pre");
    pre.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    wrap.append(h, pre);
    return wrap;
  }

  function table(title, id, heads, rows, empty) {
    const wrap = document.createElement("section");
    wrap.id = id;
    const h = document.createElement("h3");
    h.textContent = title;
    wrap.append(h);
    if (!rows.length) {
      const p = document.createElement("p");
      p.textContent = empty;
      wrap.append(p);
      return wrap;
    }
    const t = document.createElement("table");
    const tr = t.createTHead().insertRow();
    for (const head of heads) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = head;
      tr.append(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
      const r = body.insertRow();
      for (const value of row) r.insertCell().textContent = value;
    }
    wrap.append(t);
    return wrap;
  }

  function when(at) {
    return at ? window.jobcast.i18n.date(at, { dateStyle: "medium", timeStyle: "medium" }) : "—";
  }

  function checkpoints(list) {
    return table(say("admin.job.checkpoints", { count: list.length }), "job-checkpoints",
      ["admin.col.step", "admin.job.result", "admin.job.done_at", "admin.job.took", "admin.job.starts"].map((k) => say(k)),
      list.map((c) => [c.title + " (" + c.step + ")", JSON.stringify(c.result), when(c.finished_at),
        c.duration_ms === null ? "—" : c.duration_ms + " ms", String(c.attempts)]),
      say("admin.job.no_checkpoint"));
  }

  function deliveries(webhook) {
    const tries = webhook ? webhook.deliveries : [];
    return table(webhook ? say("admin.job.deliveries_to", { url: webhook.url }) : say("admin.job.deliveries"), "job-deliveries",
      ["admin.job.try", "admin.job.sent", "admin.col.status", "HTTP", "admin.col.error", "admin.job.next_try"].map((k) => say(k)),
      tries.map((d) => [String(d.attempt), when(d.tried_at), d.status,
        d.status_code === null ? "—" : String(d.status_code), d.error || "", when(d.next_at)]),
      webhook ? say("admin.job.not_sent") : say("admin.job.no_webhook"));
  }

  async function openJob(jobId) {
    const detail = await api("/api/admin/jobs/" + encodeURIComponent(jobId));
    const job = detail.job;
    state.panelJob = job.id;
    $("job-panel-title").textContent = typeName(job.type) + " · " + job.id + " · " + say("status." + job.status);
    const body = $("job-panel-body");
    body.textContent = "";
    const timeline = document.createElement("ol");
    timeline.className = "timeline";
    let attempt = null;
    let last = null;
    const workers = {};
    for (const c of detail.claims || []) (workers[c.attempt] = workers[c.attempt] || []).push(c.worker);
    for (const e of detail.events) {
      if (e.attempt !== undefined && e.attempt !== attempt) {
        attempt = e.attempt;
        const head = document.createElement("li");
        head.className = "timeline-attempt";
        head.textContent = workers[attempt]
          ? say("admin.job.ran_on", { n: attempt, workers: workers[attempt].join(say("admin.job.then")) })
          : say("admin.job.attempt", { n: attempt });
        timeline.append(head);
      }
      const li = document.createElement("li");
      const at = Date.parse(e.at);
      const gap = window.jobcast.i18n.number((at - last) / 1000, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      const took = last === null ? "" : " (+" + say("unit.s", { n: gap }) + ")";
      last = at;
      li.dataset.kind = e.kind;
      const kind = word("admin.event." + e.kind, e.kind);
      const inMs = e.duration_ms !== undefined ? " " + say("admin.job.in_ms", { ms: e.duration_ms }) : "";
      const what = e.kind === "status" ? word("status." + e.status, e.status) + (e.message ? " — " + e.message : "")
        : e.kind === "step" ? (e.step || "") + " " + word("status." + (e.state || e.status), e.state || e.status || "") + inMs
          : e.progress !== undefined ? window.jobcast.i18n.number(e.progress) + " %" : "";
      li.textContent = window.jobcast.i18n.date(at, { timeStyle: "medium" }) + took + " · " + kind + " · " + what +
        (e.worker ? " · " + say("admin.job.worker", { id: e.worker }) : "");
      timeline.append(li);
    }
    const events = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = say("admin.job.timeline", { count: detail.events.length });
    events.append(h, timeline);
    const stepLine = (s) => s.name + ": " + word("status." + s.status, s.status) +
      (s.duration_ms ? " " + say("admin.job.in_ms", { ms: s.duration_ms }) : "");
    body.append(events, section(say("admin.job.input"), job.input), section(say("admin.job.metadata"), job.metadata || {}),
      job.error ? section(say("admin.job.error"), job.error)
        : section(say("admin.job.result"), job.result === undefined ? null : job.result),
      section(say("admin.job.steps"), job.steps.map(stepLine).join("\n")),
      checkpoints(detail.checkpoints || []),
      deliveries(job.webhook),
      section(say("admin.job.children"), job.children || []),
      section(say("admin.job.who"), [job.owner_id, job.subject, job.tenant, (job.tags || []).join(", ")].join(" · ")));
    const url = new URL(window.location.href);
    url.hash = "job=" + job.id;
    window.history.replaceState(null, "", url);
    const panel = $("job-panel");
    if (!panel.open) panel.showModal();
  }

  $("job-panel-close").addEventListener("click", () => {
    $("job-panel").close();
    state.panelJob = null;
    const url = new URL(window.location.href);
    url.hash = "";
    window.history.replaceState(null, "", url);
  });

  // ------------------------------------------------------------- start

  filterToForm(filterFromUrl());
  search(filterFromUrl());
  loadCharts().catch(() => {});
  // a job id anywhere on the page links to #job=<id>: its page opens here
  function openFromHash() {
    const hash = /job=([0-9a-f-]{36})/.exec(window.location.hash);
    if (hash && hash[1] !== state.panelJob) openJob(hash[1]).catch(() => {});
  }
  window.addEventListener("hashchange", openFromHash);
  openFromHash();

  return {
    stats(stats) {
      state.stats = stats;
      renderQueues();
    },
    onFeed(message) {
      if (message.type === "action") onAction(message);
      if (message.type === "stats") loadCharts().catch(() => {});
      if (message.type === "jobs" && state.panelJob && message.changes.some((c) => c.job_id === state.panelJob)) {
        openJob(state.panelJob).catch(() => {});
      }
    },
    refreshCharts: loadCharts,
  };
}
