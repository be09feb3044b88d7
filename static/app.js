/*
 * app.js: the jobcast page. Start a job, follow it live, get told when it ends.
 * Uses window.jobcast (jobcast.js), loaded before this file.
 */
(function () {
  "use strict";

  var jc = window.jobcast;
  var LAST_JOB_KEY = "jobcast.lastJob";
  var TOAST_MS = 8000;
  var MAX_TOASTS = 4;

  var STEP_LABELS = {
    waiting: "Waiting",
    running: "Running",
    completed: "Done",
    failed: "Failed",
  };

  function $(id) {
    return document.getElementById(id);
  }

  var el = {
    form: $("job-form"),
    type: $("job-type"),
    typeHint: $("type-hint"),
    durationField: $("duration-field"),
    duration: $("duration"),
    start: $("start-button"),
    formError: $("form-error"),
    empty: $("job-empty"),
    view: $("job-view"),
    status: $("job-status"),
    typeLabel: $("job-type-label"),
    id: $("job-id"),
    progress: $("progress"),
    progressFill: $("progress-fill"),
    progressText: $("progress-text"),
    step: $("job-step"),
    message: $("job-message"),
    attemptsRow: $("job-attempts-row"),
    attempts: $("job-attempts"),
    steps: $("steps"),
    error: $("job-error"),
    errorMessage: $("job-error-message"),
    result: $("job-result"),
    resultSummary: $("result-summary"),
    resultJson: $("result-json"),
    conn: $("conn-state"),
    connLabel: $("conn-label"),
    panelError: $("panel-error"),
    toasts: $("toasts"),
  };

  var jobTypes = [];
  // The job shown in the panel: {id, job, watcher, sawActive}.
  var current = null;
  // Jobs a toast was already shown for, so the owner feed and watch() never double up.
  var toasted = new Set();
  var submitting = false;

  // ------------------------------------------------------------ helpers

  var storage = {
    get: function (key) {
      try {
        return window.localStorage.getItem(key);
      } catch (_) {
        return null; // storage disabled (private mode, policy)
      }
    },
    set: function (key, value) {
      try {
        window.localStorage.setItem(key, value);
      } catch (_) {
        /* ignore */
      }
    },
    remove: function (key) {
      try {
        window.localStorage.removeItem(key);
      } catch (_) {
        /* ignore */
      }
    },
  };

  function errorMessage(err) {
    if (!err) return "Something went wrong.";
    if (typeof err === "string") return err;
    return err.message || "Something went wrong.";
  }

  function setUrlJob(id) {
    var url = new URL(window.location.href);
    if (id) url.searchParams.set("job", id);
    else url.searchParams.delete("job");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  function shortId(id) {
    var s = String(id);
    return s.length > 8 ? s.slice(0, 8) : s;
  }

  function typeInfo(type) {
    for (var i = 0; i < jobTypes.length; i++) {
      if (jobTypes[i].type === type) return jobTypes[i];
    }
    return null;
  }

  function formatSeconds(ms) {
    if (ms == null || !isFinite(ms)) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
    var m = Math.floor(s / 60);
    return m + " min " + Math.round(s - m * 60) + " s";
  }

  function elapsedMs(from, to) {
    var a = Date.parse(from);
    var b = Date.parse(to);
    return isFinite(a) && isFinite(b) && b >= a ? b - a : null;
  }

  function showFormError(err) {
    el.formError.textContent = errorMessage(err);
    el.formError.hidden = false;
  }

  function clearFormError() {
    el.formError.textContent = "";
    el.formError.hidden = true;
  }

  function showPanelError(message) {
    el.panelError.textContent = message;
    el.panelError.hidden = false;
  }

  function clearPanelError() {
    el.panelError.textContent = "";
    el.panelError.hidden = true;
  }

  // ------------------------------------------------------------- toasts

  function toast(message, options) {
    var opts = options || {};
    var node = document.createElement("div");
    node.className = "toast toast-" + (opts.kind || "info");
    node.setAttribute("role", "status");
    if (opts.jobId) node.dataset.jobId = opts.jobId;

    var text = document.createElement("span");
    text.className = "toast-message";
    text.textContent = message;
    node.appendChild(text);

    if (opts.action) {
      var action = document.createElement("button");
      action.type = "button";
      action.className = "toast-action";
      action.textContent = opts.action.label;
      action.addEventListener("click", function () {
        dismiss();
        opts.action.run();
      });
      node.appendChild(action);
    }

    // The × is drawn by CSS so the toast's text stays exactly the message.
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss notification");
    close.addEventListener("click", dismiss);
    node.appendChild(close);

    var timer = null;
    function arm() {
      clearTimeout(timer);
      timer = setTimeout(dismiss, TOAST_MS);
    }
    function dismiss() {
      clearTimeout(timer);
      if (node.parentNode) node.parentNode.removeChild(node);
    }
    // Keep the toast while it is hovered or focused, so it can be read and used.
    node.addEventListener("mouseenter", function () {
      clearTimeout(timer);
    });
    node.addEventListener("mouseleave", arm);
    node.addEventListener("focusin", function () {
      clearTimeout(timer);
    });
    node.addEventListener("focusout", function (ev) {
      if (!node.contains(ev.relatedTarget)) arm();
    });
    node.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") dismiss();
    });

    el.toasts.appendChild(node);
    while (el.toasts.children.length > MAX_TOASTS) {
      el.toasts.removeChild(el.toasts.firstElementChild);
    }
    arm();
    return node;
  }

  function finalToastText(status, error, prefix) {
    if (status === "completed") return prefix + " completed";
    if (status === "cancelled") return prefix + " cancelled";
    var msg = error && error.message ? error.message : "unknown error";
    return prefix + " failed: " + msg;
  }

  function toastKind(status) {
    return status === "completed" ? "success" : status === "failed" ? "error" : "info";
  }

  // ------------------------------------------------------------- render

  function clampProgress(value) {
    var p = Number(value);
    if (!isFinite(p)) return 0;
    return Math.min(100, Math.max(0, p));
  }

  function stepTitle(job, name) {
    if (!name) return null;
    var steps = job.steps || [];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i].name === name) return steps[i].title || steps[i].name;
    }
    return name;
  }

  function renderSteps(job) {
    var steps = Array.isArray(job.steps) ? job.steps : [];
    var list = el.steps;
    // Reuse items by step name so indicator transitions are not restarted.
    var existing = {};
    Array.prototype.forEach.call(list.children, function (li) {
      existing[li.dataset.step] = li;
    });
    var seen = {};
    steps.forEach(function (step, index) {
      var li = existing[step.name];
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
      var state = STEP_LABELS[step.status] ? step.status : "waiting";
      li.dataset.state = state;
      if (state === "running") li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      li.querySelector(".step-title").textContent = step.title || step.name;
      li.querySelector(".step-state").textContent = STEP_LABELS[state];
      var duration = step.duration_ms != null ? step.duration_ms : null;
      if (duration == null && step.finished_at && step.started_at) {
        duration = elapsedMs(step.started_at, step.finished_at);
      }
      li.querySelector(".step-duration").textContent =
        duration != null && state !== "running" && state !== "waiting" ? formatSeconds(duration) : "";
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      seen[step.name] = true;
    });
    Object.keys(existing).forEach(function (name) {
      if (!seen[name]) list.removeChild(existing[name]);
    });
  }

  function summarize(job) {
    var parts = ["Completed"];
    var ms = elapsedMs(job.started_at || job.created_at, job.finished_at);
    if (ms != null) parts[0] += " in " + formatSeconds(ms);
    var r = job.result;
    if (r && typeof r === "object" && !Array.isArray(r)) {
      if (typeof r.summary === "string") parts.push(r.summary);
      else if (typeof r.message === "string") parts.push(r.message);
      else {
        var n = Object.keys(r).length;
        parts.push(n + (n === 1 ? " field" : " fields") + " in the result");
      }
    } else if (Array.isArray(r)) {
      parts.push(r.length + (r.length === 1 ? " item" : " items") + " in the result");
    } else if (r == null) {
      parts.push("no result data");
    } else {
      var s = String(r);
      parts.push(s.length > 80 ? s.slice(0, 79) + "…" : s);
    }
    if (job.attempts > 1) parts.push("after " + job.attempts + " attempts");
    return parts.join(" · ");
  }

  function render(job) {
    el.empty.hidden = true;
    el.view.hidden = false;

    var status = job.status || "pending";
    el.status.textContent = status;
    el.status.dataset.status = status;
    el.id.textContent = job.id;
    var info = typeInfo(job.type);
    el.typeLabel.textContent = info ? info.title || info.type : job.type || "";

    var pct = clampProgress(job.progress);
    var rounded = Math.round(pct);
    el.progress.setAttribute("aria-valuenow", String(rounded));
    el.progress.setAttribute("aria-valuetext", rounded + "%");
    el.progress.dataset.status = status;
    // CSSOM writes are allowed under a strict style-src (only style attributes are not).
    el.progressFill.style.width = pct + "%";
    el.progressText.textContent = rounded + "%";

    var title = status === "completed" ? "All steps done" : stepTitle(job, job.step);
    if (!title) title = status === "pending" ? "Waiting to start" : "—";
    el.step.textContent = title;
    el.message.textContent = job.message || "—";

    if (job.max_attempts > 1 && job.attempts) {
      el.attempts.textContent = job.attempts + " of " + job.max_attempts;
      el.attemptsRow.hidden = false;
    } else {
      el.attemptsRow.hidden = true;
    }

    renderSteps(job);

    if (status === "failed") {
      var err = job.error || {};
      el.errorMessage.textContent =
        (err.type ? err.type + ": " : "") + (err.message || "The job failed without a message.");
      el.error.hidden = false;
    } else {
      el.error.hidden = true;
    }

    if (status === "completed") {
      el.resultSummary.textContent = summarize(job);
      var pretty;
      try {
        pretty = JSON.stringify(job.result === undefined ? null : job.result, null, 2);
      } catch (_) {
        pretty = String(job.result);
      }
      el.resultJson.textContent = pretty;
      el.result.hidden = false;
    } else {
      el.result.hidden = true;
    }
  }

  function renderConn(state) {
    el.conn.dataset.state = state;
    el.connLabel.textContent = state;
  }

  function clearJobView() {
    el.view.hidden = true;
    el.empty.hidden = false;
    renderConn("idle");
  }

  // ---------------------------------------------------------- watching

  function stubJob(created, type) {
    var info = typeInfo(type);
    return {
      id: created.id,
      type: type,
      status: created.status || "pending",
      progress: 0,
      step: null,
      message: null,
      steps: info && Array.isArray(info.steps)
        ? info.steps.map(function (s) {
            return { name: s.name, title: s.title, weight: s.weight, status: "waiting" };
          })
        : [],
      result: null,
      error: null,
    };
  }

  /** Show `job` in the panel and follow it. `seed` says whether `job` is a real server job. */
  function showJob(job, seed) {
    if (current && current.watcher) current.watcher.close();
    clearPanelError();

    var entry = {
      id: job.id,
      job: job,
      watcher: null,
      // Only a job seen unfinished gets an "ended" toast (not one reopened after it ended).
      sawActive: !jc.isFinal(job.status),
    };
    current = entry;
    storage.set(LAST_JOB_KEY, job.id);
    setUrlJob(job.id);
    render(job);

    function isCurrent() {
      return current === entry;
    }

    entry.watcher = jc.watch(job.id, {
      job: seed ? job : undefined,
      onState: function (state) {
        if (isCurrent()) renderConn(state);
      },
      onSnapshot: function (j) {
        if (!isCurrent()) return;
        entry.job = j;
        render(j);
      },
      onEvent: function (_event, j) {
        if (!isCurrent()) return;
        entry.job = j;
        render(j);
      },
      onDone: function (j) {
        if (!isCurrent()) return;
        entry.job = j;
        render(j);
        if (entry.sawActive && !toasted.has(j.id)) {
          toasted.add(j.id);
          toast(finalToastText(j.status, j.error, "Job"), { kind: toastKind(j.status), jobId: j.id });
        }
      },
      onError: function (err) {
        if (!isCurrent()) return;
        if (err.status === 404) {
          if (storage.get(LAST_JOB_KEY) === entry.id) storage.remove(LAST_JOB_KEY);
        }
        showPanelError(err.message || "The live connection failed.");
      },
    });
  }

  async function openJob(id, onlyIfIdle) {
    var before = current;
    try {
      var job = await jc.getJob(id);
      // The visitor may have started another job while this one was loading.
      if (onlyIfIdle && current !== before) return false;
      showJob(job, true);
    } catch (err) {
      if (err && (err.status === 404 || err.status === 400 || err.status === 422)) {
        storage.remove(LAST_JOB_KEY);
        setUrlJob(null);
        if (current && current.id === id) {
          current.watcher.close();
          current = null;
          clearJobView();
        }
        return false;
      }
      showFormError("Could not load job " + shortId(id) + ": " + errorMessage(err));
      return false;
    }
    return true;
  }

  /** On load: reopen ?job=<id>, or else the last job of this browser. */
  async function restoreJob() {
    var params = new URLSearchParams(window.location.search);
    var id = params.get("job") || storage.get(LAST_JOB_KEY);
    if (id) await openJob(id, true);
  }

  // ---------------------------------------------------------------- form

  function updateTypeFields() {
    var type = el.type.value;
    el.durationField.hidden = type !== "demo";
    var info = typeInfo(type);
    var steps = info && Array.isArray(info.steps) ? info.steps : [];
    el.typeHint.textContent = steps.length
      ? steps.length + (steps.length === 1 ? " step: " : " steps: ") +
        steps.map(function (s) { return s.title || s.name; }).join(" → ")
      : "";
  }

  async function loadJobTypes() {
    try {
      jobTypes = await jc.jobTypes();
    } catch (err) {
      el.type.innerHTML = "";
      var failed = document.createElement("option");
      failed.value = "";
      failed.textContent = "Unavailable";
      el.type.appendChild(failed);
      showFormError("Could not load job types: " + errorMessage(err));
      return;
    }
    el.type.innerHTML = "";
    jobTypes.forEach(function (t) {
      var opt = document.createElement("option");
      opt.value = t.type;
      opt.textContent = t.title || t.type;
      el.type.appendChild(opt);
    });
    if (!jobTypes.length) {
      var none = document.createElement("option");
      none.value = "";
      none.textContent = "No job types";
      el.type.appendChild(none);
    }
    if (typeInfo("demo")) el.type.value = "demo";
    el.start.disabled = !jobTypes.length;
    updateTypeFields();
  }

  function buildInput(type) {
    if (type !== "demo") return {};
    return { duration: Number(el.duration.value) };
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (submitting) return;
    clearFormError();
    var type = el.type.value;
    if (!type) {
      showFormError("Choose a job type first.");
      return;
    }
    if (type === "demo" && el.duration.value.trim() === "") {
      showFormError("Enter a duration in seconds.");
      el.duration.focus();
      return;
    }

    submitting = true;
    el.start.disabled = true;
    el.form.setAttribute("aria-busy", "true");
    try {
      var created = await jc.submit(type, buildInput(type));
      if (!created || !created.id) throw new Error("The server did not return a job id.");
      showJob(stubJob(created, type), false);
    } catch (err) {
      showFormError(err);
    } finally {
      submitting = false;
      el.start.disabled = !jobTypes.length;
      el.form.removeAttribute("aria-busy");
    }
  }

  // --------------------------------------------------------- owner feed

  /** Toasts for the visitor's other jobs as they end (the watched job's comes from watch()). */
  function startFeed() {
    jc.feed({
      onEvent: function (ev) {
        if (ev.kind !== "status" || !jc.isFinal(ev.status) || !ev.job_id) return;
        if (current && current.id === ev.job_id) return;
        if (toasted.has(ev.job_id)) return;
        toasted.add(ev.job_id);
        var id = ev.job_id;
        toast(finalToastText(ev.status, ev.error, "Job " + shortId(id)), {
          kind: toastKind(ev.status),
          jobId: id,
          action: { label: "View", run: function () { openJob(id); } },
        });
      },
    });
  }

  // ---------------------------------------------------------------- init

  async function init() {
    el.form.addEventListener("submit", onSubmit);
    el.type.addEventListener("change", updateTypeFields);

    try {
      await jc.ensureSession();
    } catch (err) {
      showFormError(err);
    }
    await Promise.all([loadJobTypes(), restoreJob()]);
    // Job titles come with the types: refresh the panel if a job was shown first.
    if (current && current.job) render(current.job);
    startFeed();
  }

  init().catch(function (err) {
    showFormError(err);
  });
})();
