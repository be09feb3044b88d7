/*
 * app.js: the jobcast page (`/` and `/jobs/{id}`). Start a job, follow it live,
 * see your other jobs, get told when any of them ends, even in another tab.
 * Uses window.jobcast (jobcast.js, loaded before this module).
 */

import { AnswerForm } from "./ui/answerform.js";
import { Attention } from "./ui/attention.js";
import { JobControls } from "./ui/controls.js";
import { jobLabel, shortId, stepTitle, t, typeTitle } from "./ui/format.js";
import { InputForm } from "./ui/inputform.js";
import { JobList } from "./ui/joblist.js";
import { JobView } from "./ui/jobview.js";
import { LivePanel } from "./ui/livepanel.js";
import { Toasts } from "./ui/toasts.js";

const jc = window.jobcast;
const LAST_JOB_KEY = "jobcast.lastJob";
const TOKEN_KEY = "jobcast.token";
const BASE_TITLE = "jobcast";
// a start is passing news: its toast goes sooner than an end's
const STARTED_TOAST_MS = 8000;

const $ = (id) => document.getElementById(id);

const el = {
  form: $("job-form"),
  type: $("job-type"),
  typeHint: $("type-hint"),
  start: $("start-button"),
  draft: $("draft-button"),
  formError: $("form-error"),
  limitOptions: $("limit-options"),
  key: $("job-key"),
  keyLimit: $("job-key-limit"),
};

const storage = {
  get(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (_) {
      return null; // storage disabled (private mode, policy)
    }
  },
  set(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (_) {
      /* ignore */
    }
  },
  remove(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (_) {
      /* ignore */
    }
  },
};

let jobTypes = [];
// The job shown in the panel: {id, job, watcher, sawActive}.
let current = null;
let submitting = false;

/**
 * Keyboard focus never falls to <body>: when an action hides or disables what held it
 * (Start, Cancel, Retry, an answer sent, a toast closed), it goes to the job's heading.
 */
function focusJob() {
  $("job-panel-title").focus();
}

function keepFocus() {
  const active = document.activeElement;
  if (!active || active === document.body || active.disabled || !active.isConnected || !active.getClientRects().length) {
    focusJob();
  }
}

const toasts = new Toasts($("toasts"), { onFocusLost: keepFocus });
const attention = new Attention({
  button: $("notify-button"),
  baseTitle: BASE_TITLE,
  name: (job) => typeTitle(jobTypes, job.type),
});
const inputForm = new InputForm($("input-fields"));
const view = new JobView({
  onCancel: (id) => {
    cancelledHere.add(id);
    return jc.cancel(id);
  },
  onFocusLost: keepFocus,
  onRetry: async (job) => {
    const created = await track(jc.retry(job.id));
    if (!created || !created.id) throw new Error(t("error.no_id"));
    goTo(created.id, { created, type: job.type, input: job.input, retryOf: job.id });
    focusJob();
  },
});
const list = new JobList({ clock: view.clock, onEnded: (job) => announceEnd(job) });
const live = new LivePanel();
const answerForm = new AnswerForm({
  onAnswer: async (id, answer, step) => {
    await jc.answer(id, answer, step);
    setTimeout(keepFocus); // the question's form goes once answered
  },
  onFocusLost: keepFocus,
});
const controls = new JobControls({
  api: jc,
  onError: (message) => view.showPanelError(message),
  onFocusLost: keepFocus,
  onChanged: (job) => {
    if (job && current && current.id === job.id) {
      current.job = job;
      view.snapshot(job);
      renderExtras(job);
    }
  },
});

/** The parts of the panel beside JobView's: the question, the controls, streams and metadata. */
function renderExtras(job, full) {
  answerForm.render(job);
  controls.render(job);
  if (full) live.reset(job);
  else live.steps(job);
}

function errorMessage(err) {
  if (!err) return t("error.generic");
  if (typeof err === "string") return err;
  return err.message || t("error.generic");
}

function showFormError(err) {
  el.formError.textContent = errorMessage(err);
  el.formError.hidden = false;
}

function clearFormError() {
  el.formError.textContent = "";
  el.formError.hidden = true;
}

// ------------------------------------------------------------ announcing

/** A toast (and, while the tab is hidden, a desktop notification) once per job and outcome. */
function announceEnd(job) {
  if (!job || !job.id || !jc.isFinal(job.status)) return;
  // the job on screen says it itself; the cancel pressed here needs no news of it
  const onScreen = current && current.id === job.id && !document.hidden;
  if (onScreen || cancelledHere.has(job.id)) return;
  if (!toasts.once(job.id + ":" + job.status)) return;
  const known = (current && current.id === job.id && current.job) || (list.rows.get(job.id) || {}).job || {};
  // what came of it: a finished job's result is fetched when the news did not bring it
  if (job.status === "completed" && !job.result && !known.result) {
    jc.getJob(job.id).then((full) => toastEnd(full, known), () => toastEnd(job, known));
  } else {
    toastEnd(job, known);
  }
}

/** A job as a toast names it: its type's title and what tells it apart (else its short id). */
function jobName(job) {
  return typeTitle(jobTypes, job.type) + " " + (jobLabel(jobTypes, job) || shortId(job.id));
}

function toastEnd(job, known) {
  const type = job.type || known.type;
  const input = job.input || known.input || {};
  const name = jobName({ id: job.id, type, input });
  const result = job.result || known.result;
  const ended = started.get(job.id);
  if (ended) ended.dismiss(); // its end says more than its start
  // a job type may word its own: type.<name>.toast.<status>, filled from its input and result
  const words = Object.assign({ name, label: jobLabel(jobTypes, { type, input }) }, input, result && typeof result === "object" ? result : {});
  const title = jc.i18n.maybe("type." + type + ".toast." + job.status, words) || t("toast." + job.status, { name });
  const error = job.error || known.error;
  const summary = result && typeof result.summary === "string" ? result.summary : "";
  const detail = job.status === "failed" ? (error && error.message) || "" : job.status === "completed" ? summary : "";
  const href = "/jobs/" + encodeURIComponent(job.id);
  toasts.show({
    kind: job.status === "completed" ? "success" : job.status === "failed" ? "error" : "info",
    title,
    detail,
    href,
    linkLabel: t("toast.view"),
    jobId: job.id,
  });
  attention.notify({ title, body: detail, href, tag: "jobcast-" + job.id });
}

// Jobs cancelled from this tab: their end is no news here.
const cancelledHere = new Set();

// Job id → its "started" toast, closed when the job's end is announced.
const started = new Map();

// The last job submitted from this tab (Start, Retry): one it starts is on screen once it returns.
let submission = Promise.resolve();

function track(promise) {
  submission = promise.catch(() => null);
  return promise;
}

/** A toast when a job of the visitor's starts running, except the one on screen. */
async function announceStart(ev) {
  await submission;
  if ((current && current.id === ev.job_id) || !toasts.once(ev.job_id + ":running")) return;
  let job = (list.rows.get(ev.job_id) || {}).job;
  if (!job || !job.type) job = await jc.getJob(ev.job_id).catch(() => ({ id: ev.job_id }));
  // its end may have come meanwhile: then that is the news
  const ended = jc.FINAL_STATUSES.some((status) => toasts.shown.has(ev.job_id + ":" + status));
  if (ended || jc.isFinal(job.status) || (current && current.id === ev.job_id)) return;
  const href = "/jobs/" + encodeURIComponent(ev.job_id);
  const node = toasts.show({
    kind: "info",
    title: t("toast.started", { name: jobName(Object.assign({ id: ev.job_id }, job)) }),
    detail: t("toast.started_detail"),
    href,
    linkLabel: t("toast.view"),
    jobId: ev.job_id,
    timeoutMs: STARTED_TOAST_MS,
  });
  started.set(ev.job_id, node);
}

// Job id → its "needs your input" toast, closed once the question is answered anywhere.
const questions = new Map();

function answered(jobId) {
  const node = questions.get(jobId);
  questions.delete(jobId);
  if (node) node.dismiss();
}

/** A toast in every tab of the owner when one of its jobs asks for input. */
function announceInput(ev) {
  if (!ev || !ev.job_id || !toasts.once(ev.job_id + ":input:" + ev.seq)) return;
  const known = (current && current.id === ev.job_id && current.job) || (list.rows.get(ev.job_id) || {}).job || {};
  const name = jobName(Object.assign({ id: ev.job_id }, known));
  const href = "/jobs/" + encodeURIComponent(ev.job_id);
  const detail = name + (ev.prompt ? ": " + ev.prompt : "");
  const node = toasts.show({
    kind: "info", title: t("input.title"), detail, href, linkLabel: t("toast.answer"), jobId: ev.job_id, sticky: true,
  });
  questions.set(ev.job_id, node);
  attention.notify({ title: t("input.title"), body: detail, href, tag: "jobcast-input-" + ev.job_id });
}

// -------------------------------------------------------------- routing

/** The job to show: /jobs/{id}, else ?job=, else the last job of this browser. */
function jobIdFromLocation() {
  const match = window.location.pathname.match(/^\/jobs\/([^/]+)\/?$/);
  if (match) return { id: decodeURIComponent(match[1]), from: "path" };
  const query = new URLSearchParams(window.location.search).get("job");
  if (query) return { id: query, from: "query" };
  const last = storage.get(LAST_JOB_KEY);
  return last ? { id: last, from: "storage" } : null;
}

function jobPath(id) {
  return "/jobs/" + encodeURIComponent(id);
}

/** Show another job in place, with its own address (links, Retry, Start). */
function goTo(id, known) {
  if (window.location.pathname !== jobPath(id)) window.history.pushState(null, "", jobPath(id));
  if (known && known.created) {
    list.add({ id, type: known.type, input: known.input, status: known.created.status || "pending" });
    list.scheduleReload();
    showJob(stubJob(known.created, known.type, known.retryOf), { seed: false, eta: known.created.estimated_seconds });
  } else {
    openJob(id, "path");
  }
}

function onLinkClick(ev) {
  const link = ev.target.closest("a[data-job-link]");
  if (!link || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  const id = link.dataset.jobLink;
  if (current && current.id === id && window.location.pathname === jobPath(id)) return;
  goTo(id);
  $("job-panel").scrollIntoView({ block: "nearest" });
}

function onPopState() {
  const found = jobIdFromLocation();
  if (found && (!current || current.id !== found.id)) openJob(found.id, found.from);
}

// -------------------------------------------------------------- watching

function stubJob(created, type, retryOf) {
  const info = jobTypes.find((t) => t.type === type);
  return {
    id: created.id,
    type,
    status: created.status || "pending",
    progress: 0,
    step: null,
    message: null,
    attempts: 0,
    max_attempts: info ? info.max_attempts : null,
    steps: info && Array.isArray(info.steps)
      ? info.steps.map((s) => ({ name: s.name, title: s.title, weight: s.weight, status: "waiting", estimate_s: s.estimate_s }))
      : [],
    result: null,
    error: null,
    retry_of: retryOf || null,
    created_at: new Date().toISOString(),
  };
}

/** Show `job` in the panel and follow it. `seed` says whether `job` is a real server job. */
function showJob(job, { seed, eta }) {
  if (current && current.watcher) current.watcher.close();
  const entry = {
    id: job.id,
    job,
    watcher: null,
    // Only a job seen unfinished gets an "ended" toast (not one reopened after it ended).
    sawActive: !jc.isFinal(job.status),
  };
  current = entry;
  storage.set(LAST_JOB_KEY, job.id);
  list.setCurrent(job.id);
  view.show(job, eta);
  renderExtras(job, true);
  attention.setJob(job);
  const isCurrent = () => current === entry;
  const update = (j) => {
    entry.job = j;
    list.applyJob(j);
    attention.setJob(j);
  };

  entry.watcher = jc.watch(job.id, {
    job: seed ? job : undefined,
    onState(state) {
      // Once the job has ended there is no connection to speak of.
      if (isCurrent()) view.setConn(state === "closed" ? "idle" : state);
    },
    onSnapshot(j) {
      if (!isCurrent()) return;
      if (!jc.isFinal(j.status)) entry.sawActive = true;
      update(j);
      view.snapshot(j);
      renderExtras(j, true);
    },
    onEvent(event, j) {
      if (!isCurrent()) return;
      update(j);
      view.event(event, j);
      renderExtras(j);
    },
    onInput(request) {
      if (!request) answered(entry.id);
    },
    onStream(chunk, text) {
      if (isCurrent()) live.append(chunk, text);
    },
    onMetadata(_changed, metadata) {
      if (isCurrent()) live.metadata(metadata);
    },
    onDone(j) {
      if (!isCurrent()) return;
      update(j);
      view.snapshot(j);
      renderExtras(j);
      if (entry.sawActive) announceEnd(j);
    },
    onError(err) {
      if (!isCurrent()) return;
      if (err.status === 404 && storage.get(LAST_JOB_KEY) === entry.id) storage.remove(LAST_JOB_KEY);
      view.showPanelError(err.status === 404 ? notFoundText(entry.id) : err.message || t("error.live"));
    },
  });
}

function notFoundText(id) {
  return t("error.not_found", { id: shortId(id) });
}

async function openJob(id, from) {
  const before = current;
  if (!current || current.id !== id) view.loading(true);
  try {
    const job = await jc.getJob(id);
    // The visitor may have started another job while this one was loading.
    if (current !== before) return;
    if (from === "query") window.history.replaceState(null, "", jobPath(id));
    showJob(job, { seed: true });
  } catch (err) {
    if (current !== before) return;
    view.loading(false);
    if (err && (err.status === 404 || err.status === 400 || err.status === 422)) {
      if (storage.get(LAST_JOB_KEY) === id) storage.remove(LAST_JOB_KEY);
      if (current) current.watcher.close();
      current = null;
      attention.setJob(null);
      view.clear();
      renderExtras(null, true);
      list.setCurrent(null);
      // A job remembered by this browser that is gone is not worth an error.
      if (from !== "storage") view.showPanelError(notFoundText(id));
      return;
    }
    view.clear();
    view.showPanelError(t("error.load_job", { id: shortId(id), reason: errorMessage(err) }));
  }
}

// ------------------------------------------------------------------ form

function selectedType() {
  return jobTypes.find((t) => t.type === el.type.value) || null;
}

function updateTypeFields() {
  const info = selectedType();
  inputForm.render(info ? info.input_schema : null, info ? info.type : null);
  const steps = info && Array.isArray(info.steps) ? info.steps : [];
  el.typeHint.textContent = steps.length
    ? t("form.steps", { count: steps.length, steps: steps.map((s) => stepTitle(info.type, s)).join(" → ") })
    : "";
}

async function loadJobTypes() {
  try {
    jobTypes = await jc.jobTypes();
  } catch (err) {
    el.type.textContent = "";
    el.type.appendChild(new Option(t("form.unavailable"), ""));
    showFormError(t("form.types_failed", { reason: errorMessage(err) }));
    return;
  }
  el.type.textContent = "";
  for (const info of jobTypes) el.type.appendChild(new Option(typeTitle(jobTypes, info.type), info.type));
  if (!jobTypes.length) el.type.appendChild(new Option(t("form.no_types"), ""));
  if (jobTypes.some((t) => t.type === "demo")) el.type.value = "demo";
  el.start.disabled = el.draft.disabled = !jobTypes.length;
  updateTypeFields();
  view.setTypes(jobTypes);
  controls.setTypes(jobTypes);
  list.setTypes(jobTypes);
}

/**
 * The submit's options beyond the input: a draft, and a concurrency key with its limit
 * (the "Concurrency limit" fields; an empty key adds none).
 */
function submitOptions(asDraft) {
  const extra = asDraft ? { draft: true } : {};
  el.key.removeAttribute("aria-invalid");
  el.keyLimit.removeAttribute("aria-invalid");
  const key = el.key.value.trim();
  if (key) {
    const limit = Number(el.keyLimit.value);
    if (!Number.isInteger(limit) || limit < 1) {
      el.limitOptions.open = true;
      el.keyLimit.setAttribute("aria-invalid", "true");
      el.keyLimit.focus();
      throw new Error(t("form.bad_limit"));
    }
    extra.concurrency = [{ key, limit }];
  }
  return Object.keys(extra).length ? extra : undefined;
}

/** The server refused the key or its limit: open the fields and point at the key. */
function markKeyInvalid() {
  el.limitOptions.open = true;
  el.key.setAttribute("aria-invalid", "true");
  el.key.focus();
}

async function onSubmit(ev) {
  ev.preventDefault();
  if (submitting) return;
  clearFormError();
  const type = el.type.value;
  if (!type) {
    showFormError(t("form.choose_type"));
    return;
  }
  let input;
  try {
    input = await inputForm.value();
  } catch (err) {
    showFormError(err);
    return;
  }

  let extra;
  try {
    extra = submitOptions(Boolean(ev.submitter && ev.submitter.value === "draft"));
  } catch (err) {
    showFormError(err);
    return;
  }
  submitting = true;
  el.start.disabled = el.draft.disabled = true;
  el.form.setAttribute("aria-busy", "true");
  try {
    const created = await track(jc.submit(type, input, extra));
    if (!created || !created.id) throw new Error(t("error.no_id"));
    goTo(created.id, { created, type, input });
    focusJob();
  } catch (err) {
    if (err && Array.isArray(err.details && err.details.details)) {
      for (const d of err.details.details) {
        if (String(d.field).startsWith("concurrency")) markKeyInvalid();
        else inputForm.markInvalid(d.field);
      }
    }
    showFormError(err);
  } finally {
    submitting = false;
    el.start.disabled = el.draft.disabled = !jobTypes.length;
    el.form.removeAttribute("aria-busy");
  }
}

// ------------------------------------------------------------ owner feed

function startFeed() {
  jc.feed({
    progress: true, // every running job's row moves, not only the open one's
    onEvent(ev) {
      list.applyEvent(ev);
      if (ev.kind === "input_required") announceInput(ev);
      else if (ev.kind === "input" || (ev.kind === "status" && ev.status !== "waiting")) answered(ev.job_id);
      if (ev.kind === "status" && ev.status === "running") announceStart(ev);
      if (ev.kind === "status" && jc.isFinal(ev.status)) {
        announceEnd({ id: ev.job_id, status: ev.status, error: ev.error || null });
      }
    },
    onResync() {
      list.reload();
    },
    onState(state) {
      // Without the feed, the list polls (and toasts what it finds ended).
      list.setPolling(state === "offline" || state === "unavailable");
    },
  });
}

// ------------------------------------------------------------------ init

/**
 * A link with "#token=<browser token>" (jobcast submit prints one when it acts with an
 * app key) opens the job with that token, in this tab only: the token is kept in
 * sessionStorage, not in the address bar (nor its history), and never becomes a cookie.
 */
function adoptLinkToken() {
  const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token");
  try {
    if (fromLink) window.sessionStorage.setItem(TOKEN_KEY, fromLink);
    const kept = fromLink || window.sessionStorage.getItem(TOKEN_KEY);
    if (kept) jc.useToken(kept);
  } catch (_) {
    if (fromLink) jc.useToken(fromLink); // storage disabled: this page view only
  }
  if (fromLink) history.replaceState(history.state, "", window.location.pathname + window.location.search);
}

/** The page's own words in its language, and the switch between the languages there are. */
function setUpLanguage() {
  jc.i18n.translate(document);
  const select = $("lang-select");
  for (const [code, name] of Object.entries(jc.i18n.languages)) select.appendChild(new Option(name, code));
  select.value = jc.i18n.lang;
  select.setAttribute("aria-label", t("page.language"));
  // every part of the page renders in the new language from the start
  select.addEventListener("change", async () => {
    await jc.i18n.setLanguage(select.value);
    const url = new URL(window.location.href);
    url.searchParams.delete("lang"); // ?lang= would win over the choice just made
    window.location.replace(url.href);
  });
}

async function init() {
  adoptLinkToken();
  await jc.i18n.ready;
  setUpLanguage();
  el.form.addEventListener("submit", onSubmit);
  el.type.addEventListener("change", updateTypeFields);
  document.addEventListener("click", onLinkClick);
  window.addEventListener("popstate", onPopState);
  setInterval(() => {
    view.tick();
    list.tick();
  }, 1000);

  try {
    await jc.ensureSession();
  } catch (err) {
    showFormError(err);
  }
  const found = jobIdFromLocation();
  await Promise.all([
    loadJobTypes(),
    found ? openJob(found.id, found.from) : Promise.resolve(view.clear()),
    list.reload(),
  ]);
  startFeed();
  document.documentElement.dataset.ready = "true";
}

init().catch((err) => showFormError(err));
