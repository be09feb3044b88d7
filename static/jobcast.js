/*
 * jobcast.js: a small, dependency-free browser client for the jobcast API.
 *
 * Classic script: it sets `window.jobcast`. Every request is same-origin and
 * authenticated by the HttpOnly session cookie that POST /api/sessions sets.
 *
 *   await jobcast.ensureSession();
 *   const types = await jobcast.jobTypes();
 *   const created = await jobcast.submit("demo", { duration: 3 });
 *   const watcher = jobcast.watch(created.id, {
 *     onSnapshot(job) {}, onEvent(event, job) {}, onState(state) {},
 *     onDone(job) {}, onError(error) {},
 *   });
 *   watcher.close();
 */
(function (global) {
  "use strict";

  var FINAL_STATUSES = ["completed", "failed", "cancelled"];

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var MAX_CONNECT_FAILURES = 3; // in a row, before falling back to polling
  var CONNECT_TIMEOUT_MS = 10000; // no snapshot by then counts as a failed connect
  var POLL_INTERVAL_MS = 2000;

  function isFinal(status) {
    return FINAL_STATUSES.indexOf(status) !== -1;
  }

  function clone(value) {
    return value == null ? value : JSON.parse(JSON.stringify(value));
  }

  function has(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
  }

  /** An error from the API (or the network), carrying the API's error code. */
  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.name = "ApiError";
      this.status = status; // HTTP status, 0 for network failures
      this.code = code;
      this.details = details;
    }
  }

  var DEFAULT_MESSAGES = {
    400: "The request was not valid.",
    401: "Your session has expired. Reload the page to continue.",
    403: "You are not allowed to do that.",
    404: "Not found.",
    422: "The input was not valid.",
    429: "Too many requests. Wait a moment and try again.",
    500: "The server had a problem. Try again.",
    502: "The server is not reachable right now. Try again.",
    503: "The service is busy or unavailable. Try again shortly.",
    504: "The server took too long to answer. Try again.",
  };

  function defaultMessage(status) {
    return DEFAULT_MESSAGES[status] || "Request failed (HTTP " + status + ").";
  }

  // ---------------------------------------------------------------- HTTP

  async function rawFetch(method, path, body, headers) {
    var init = {
      method: method,
      credentials: "same-origin",
      // The browser cache must not answer for us: polling sends its own
      // If-None-Match and wants to see the 304 itself.
      cache: "no-store",
      headers: Object.assign({ Accept: "application/json" }, headers || {}),
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "Could not reach the server. Check your connection.", err);
    }
  }

  async function readJson(res) {
    var text;
    try {
      text = await res.text();
    } catch (_) {
      return null;
    }
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  /** Turn a non-2xx response into an ApiError, using the API's error shape when present. */
  async function toError(res) {
    var data = await readJson(res);
    var e = data && typeof data === "object" ? data.error : null;
    if (e && typeof e === "object") {
      return new ApiError(
        res.status,
        String(e.code || "http_" + res.status),
        String(e.message || defaultMessage(res.status)),
        e
      );
    }
    if (typeof e === "string" && e) return new ApiError(res.status, "http_" + res.status, e, data);
    return new ApiError(res.status, "http_" + res.status, defaultMessage(res.status), data);
  }

  /**
   * JSON request. Resolves to {status, data, etag}; a 304 resolves with data null.
   * A 401 gets one retry after a new session is created (the cookie may have expired).
   */
  async function request(method, path, options) {
    var opts = options || {};
    var res = await rawFetch(method, path, opts.body, opts.headers);
    if (res.status === 401 && !opts.noAuthRetry) {
      await createSession();
      res = await rawFetch(method, path, opts.body, opts.headers);
    }
    var etag = res.headers.get("ETag");
    if (res.status === 304) return { status: 304, data: null, etag: etag };
    if (!res.ok) throw await toError(res);
    return { status: res.status, data: await readJson(res), etag: etag };
  }

  // ------------------------------------------------------------- session

  var sessionInFlight = null;
  var ensured = null;

  /** POST /api/sessions; concurrent callers share one request. */
  function createSession() {
    if (!sessionInFlight) {
      sessionInFlight = request("POST", "/api/sessions", { noAuthRetry: true }).then(
        function (r) {
          sessionInFlight = null;
          return r.data;
        },
        function (err) {
          sessionInFlight = null;
          throw err;
        }
      );
    }
    return sessionInFlight;
  }

  /** Make sure the browser holds a session cookie, creating one if the API says 401. */
  function ensureSession() {
    if (!ensured) {
      ensured = (async function () {
        var res = await rawFetch("GET", "/api/jobs?limit=1");
        if (res.status === 401) {
          await createSession();
        } else if (!res.ok) {
          throw await toError(res);
        }
        return true;
      })();
      // A failed attempt must not stick: the next call tries again.
      ensured.catch(function () {
        ensured = null;
      });
    }
    return ensured;
  }

  // ------------------------------------------------------------ REST API

  function jobPath(id) {
    return "/api/jobs/" + encodeURIComponent(id);
  }

  /** GET /api/job-types → array of {type, title, steps, input_schema}. */
  async function jobTypes() {
    var r = await request("GET", "/api/job-types");
    return (r.data && Array.isArray(r.data.job_types)) ? r.data.job_types : [];
  }

  /** POST /api/jobs → {id, status, status_url, ws_url, estimated_seconds}. */
  async function submit(type, input) {
    var r = await request("POST", "/api/jobs", { body: { type: type, input: input || {} } });
    return r.data;
  }

  /** GET /api/jobs/{id} → job. */
  async function getJob(id) {
    var r = await request("GET", jobPath(id));
    return r.data;
  }

  function wsUrl(path) {
    var proto = global.location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + global.location.host + path;
  }

  function backoffDelay(retry) {
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, retry));
    // Jitter in [base/2, base) so many tabs do not reconnect in lockstep.
    return base / 2 + Math.random() * (base / 2);
  }

  // --------------------------------------------------------------- watch

  /**
   * Follow one job live.
   *
   * options:
   *   after       last seq already known (default 0)
   *   job         a job object already fetched; seeds the state (and `after`)
   *   onSnapshot(job)        full state: on (re)connect and on each changed poll
   *   onEvent(event, job)    each new event, with the job state after it
   *   onState(state)         "connecting" | "live" | "reconnecting" | "polling" | "closed"
   *   onDone(job)            once, when the job reaches a final status
   *   onError({code, message, status})  fatal problems (job not found, not authenticated)
   *
   * Returns {close(), job() , state()}.
   */
  function watch(jobId, options) {
    var opts = options || {};
    var lastSeq = Math.max(0, Number(opts.after) || 0);
    var job = null;
    var state = null;
    var stopped = false;
    var done = false;
    var ws = null;
    var gotSnapshot = false; // on the current socket
    var failures = 0; // consecutive sockets that closed before a snapshot
    var retry = 0; // backoff exponent
    var timer = null; // pending reconnect / poll / start
    var connectTimer = null;
    var etag = null;
    var pendingError = null; // {type:"error"} message received before a close
    // Progress already reported for the current attempt: it never goes down.
    var reported = { attempt: undefined, progress: 0 };

    function emit(name) {
      var fn = opts[name];
      if (typeof fn !== "function") return;
      try {
        fn.apply(null, Array.prototype.slice.call(arguments, 1));
      } catch (err) {
        // A broken callback must not break the connection logic.
        setTimeout(function () {
          throw err;
        });
      }
    }

    function setState(next) {
      if (next === state) return;
      state = next;
      emit("onState", next);
    }

    function guardProgress(j) {
      var attempt = j.attempts == null ? null : j.attempts;
      var p = Number(j.progress);
      if (!isFinite(p)) p = 0;
      p = Math.min(100, Math.max(0, p));
      if (attempt !== reported.attempt) {
        reported = { attempt: attempt, progress: p }; // a new attempt starts over
      } else if (p < reported.progress) {
        p = reported.progress;
      } else {
        reported.progress = p;
      }
      j.progress = p;
    }

    function adopt(next) {
      job = clone(next);
      if (!Array.isArray(job.steps)) job.steps = [];
      if (job.id == null) job.id = jobId;
      guardProgress(job);
      if (typeof job.seq === "number") lastSeq = Math.max(lastSeq, job.seq);
    }

    function applySnapshot(next) {
      if (!next || typeof next !== "object") return;
      adopt(next);
      emit("onSnapshot", clone(job));
      checkDone();
    }

    function resetForRetry() {
      job.progress = 0;
      job.step = null;
      job.result = null;
      job.error = null;
      job.finished_at = null;
      job.steps.forEach(function (s) {
        s.status = "waiting";
        s.started_at = null;
        s.finished_at = null;
        s.duration_ms = null;
      });
    }

    function applyEvent(ev) {
      var seq = Number(ev.seq);
      // Already seen, or already reflected in the snapshot.
      if (!isFinite(seq) || seq <= lastSeq) return;
      lastSeq = seq;
      if (!job) {
        job = { id: jobId, status: "pending", progress: 0, step: null, message: null, steps: [] };
      }

      if (ev.kind === "status") {
        if (ev.attempt != null && ev.attempt !== job.attempts) {
          if (job.attempts != null && ev.attempt > job.attempts) resetForRetry();
          job.attempts = ev.attempt;
        }
        if (ev.status) job.status = ev.status;
        if (has(ev, "message")) job.message = ev.message;
        if (ev.progress != null) job.progress = ev.progress;
        if (ev.status === "running" && !job.started_at) job.started_at = ev.at || null;
        if (ev.status === "completed") {
          job.progress = 100;
          job.error = null;
          if (has(ev, "result")) job.result = ev.result;
        }
        if (ev.status === "failed" && ev.error) job.error = ev.error;
        if (isFinal(ev.status)) job.finished_at = ev.at || job.finished_at || null;
      } else if (ev.kind === "step") {
        var step = null;
        for (var i = 0; i < job.steps.length; i++) {
          if (job.steps[i].name === ev.step) step = job.steps[i];
        }
        if (step) {
          if (ev.state) step.status = ev.state;
          if (ev.state === "running") {
            step.started_at = ev.at || step.started_at || null;
            step.finished_at = null;
            step.duration_ms = null;
          } else {
            if (ev.duration_ms != null) step.duration_ms = ev.duration_ms;
            step.finished_at = ev.at || step.finished_at || null;
          }
        }
        if (ev.state === "running") job.step = ev.step;
        if (ev.progress != null) job.progress = ev.progress;
      } else if (ev.kind === "progress") {
        if (ev.progress != null) job.progress = ev.progress;
        if (ev.step != null) job.step = ev.step;
        if (has(ev, "message")) job.message = ev.message;
      }

      job.seq = seq;
      guardProgress(job);
      var reportedEvent = Object.assign({}, ev);
      if (ev.progress != null || ev.kind === "progress") reportedEvent.progress = job.progress;
      emit("onEvent", reportedEvent, clone(job));
      checkDone();
    }

    function checkDone() {
      if (done || !job || !isFinal(job.status)) return;
      done = true;
      emit("onDone", clone(job));
      stop();
    }

    function stop() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(connectTimer);
      timer = null;
      if (ws) {
        var sock = ws;
        ws = null;
        try {
          sock.close(1000);
        } catch (_) {
          /* already closing */
        }
      }
      setState("closed");
    }

    function fatal(err) {
      emit("onError", err);
      stop();
    }

    function scheduleReconnect() {
      var delay = backoffDelay(retry);
      retry += 1;
      setState("reconnecting");
      timer = setTimeout(connect, delay);
    }

    function connect() {
      timer = null;
      if (stopped) return;
      if (typeof WebSocket === "undefined") {
        startPolling();
        return;
      }
      if (state === null) setState("connecting");
      gotSnapshot = false;
      pendingError = null;
      var sock;
      try {
        sock = new WebSocket(wsUrl("/ws/jobs/" + encodeURIComponent(jobId) + "?after=" + lastSeq));
      } catch (_) {
        socketGone(null);
        return;
      }
      ws = sock;
      connectTimer = setTimeout(function () {
        if (ws === sock && !gotSnapshot) sock.close(); // onclose follows, as a failure
      }, CONNECT_TIMEOUT_MS);

      sock.onmessage = function (msg) {
        if (ws !== sock) return;
        var data;
        try {
          data = JSON.parse(msg.data);
        } catch (_) {
          return;
        }
        if (!data || typeof data !== "object") return;
        if (data.type === "snapshot") {
          gotSnapshot = true;
          failures = 0;
          retry = 0;
          clearTimeout(connectTimer);
          setState("live");
          applySnapshot(data.job);
        } else if (data.type === "event") {
          applyEvent(data);
        } else if (data.type === "error") {
          pendingError = data.error || null;
        }
      };
      sock.onerror = function () {
        /* a close event always follows; handled there */
      };
      sock.onclose = function (ev) {
        if (ws !== sock) return;
        ws = null;
        clearTimeout(connectTimer);
        socketGone(ev.code);
      };
    }

    function socketGone(code) {
      if (stopped) return;
      if (done) {
        stop();
        return;
      }
      // 44xx: the server refused for good (not found, not authenticated).
      if (code >= 4400 && code < 4500) {
        var e = pendingError || {};
        if (code === 4404) {
          fatal({ code: e.code || "not_found", message: "Job not found", status: 404 });
        } else if (code === 4401) {
          fatal({ code: e.code || "unauthenticated", message: e.message || defaultMessage(401), status: 401 });
        } else {
          fatal({ code: e.code || "ws_" + code, message: e.message || "The server refused the live connection.", status: 0 });
        }
        return;
      }
      if (!gotSnapshot) {
        failures += 1;
        if (failures >= MAX_CONNECT_FAILURES) {
          startPolling();
          return;
        }
      }
      scheduleReconnect();
    }

    function startPolling() {
      setState("polling");
      poll();
    }

    async function poll() {
      timer = null;
      if (stopped) return;
      try {
        var r = await request("GET", jobPath(jobId), {
          headers: etag ? { "If-None-Match": etag } : {},
        });
        if (stopped) return;
        if (r.status !== 304) {
          if (r.etag) etag = r.etag;
          applySnapshot(r.data);
        }
      } catch (err) {
        if (stopped) return;
        if (err.status === 404) {
          fatal({ code: err.code || "not_found", message: "Job not found", status: 404 });
          return;
        }
        if (err.status === 401 || err.status === 403) {
          fatal({ code: err.code, message: err.message, status: err.status });
          return;
        }
        // Network trouble or a 5xx: keep polling.
      }
      if (!stopped) timer = setTimeout(poll, POLL_INTERVAL_MS);
    }

    if (opts.job && typeof opts.job === "object") adopt(opts.job);

    // Start on the next tick, so the caller holds the handle before callbacks run.
    timer = setTimeout(function () {
      timer = null;
      if (stopped) return;
      if (job && isFinal(job.status)) {
        checkDone();
        return;
      }
      connect();
    }, 0);

    return {
      close: function () {
        if (!stopped) stop();
      },
      job: function () {
        return clone(job);
      },
      state: function () {
        return state;
      },
    };
  }

  // ---------------------------------------------------------------- feed

  /**
   * The owner feed (WS /ws): status events for all of this visitor's jobs.
   * options: onEvent(event), onState("connecting"|"live"|"reconnecting"|"closed").
   * Best effort: gives up quietly after 3 failed connects in a row.
   */
  function feed(options) {
    var opts = options || {};
    var stopped = false;
    var ws = null;
    var timer = null;
    var retry = 0;
    var failures = 0;
    var state = null;

    function setState(next) {
      if (next === state) return;
      state = next;
      if (typeof opts.onState === "function") opts.onState(next);
    }

    function stop() {
      stopped = true;
      clearTimeout(timer);
      if (ws) {
        var sock = ws;
        ws = null;
        try {
          sock.close(1000);
        } catch (_) {
          /* already closing */
        }
      }
      setState("closed");
    }

    function connect() {
      timer = null;
      if (stopped) return;
      if (typeof WebSocket === "undefined") {
        stop();
        return;
      }
      if (state === null) setState("connecting");
      var opened = false;
      var sock;
      try {
        sock = new WebSocket(wsUrl("/ws"));
      } catch (_) {
        stop();
        return;
      }
      ws = sock;
      sock.onopen = function () {
        opened = true;
        failures = 0;
        retry = 0;
        setState("live");
      };
      sock.onmessage = function (msg) {
        if (ws !== sock) return;
        var data;
        try {
          data = JSON.parse(msg.data);
        } catch (_) {
          return;
        }
        if (data && data.type === "event" && typeof opts.onEvent === "function") {
          try {
            opts.onEvent(data);
          } catch (err) {
            setTimeout(function () {
              throw err;
            });
          }
        }
      };
      sock.onerror = function () {};
      sock.onclose = function (ev) {
        if (ws !== sock) return;
        ws = null;
        if (stopped) return;
        if (ev.code >= 4400 && ev.code < 4500) {
          stop();
          return;
        }
        if (!opened) {
          failures += 1;
          if (failures >= MAX_CONNECT_FAILURES) {
            stop();
            return;
          }
        }
        setState("reconnecting");
        timer = setTimeout(connect, backoffDelay(retry));
        retry += 1;
      };
    }

    timer = setTimeout(connect, 0);
    return {
      close: function () {
        if (!stopped) stop();
      },
    };
  }

  global.jobcast = {
    ApiError: ApiError,
    FINAL_STATUSES: FINAL_STATUSES.slice(),
    isFinal: isFinal,
    ensureSession: ensureSession,
    createSession: createSession,
    jobTypes: jobTypes,
    submit: submit,
    getJob: getJob,
    watch: watch,
    feed: feed,
  };
})(window);
