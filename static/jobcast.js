/*
 * jobcast.js: a small, dependency-free browser client for the jobcast API,
 * and the <job-progress> and <job-toasts> elements built on it.
 *
 * Classic script: it sets `window.jobcast` and defines <job-progress> and <job-toasts>.
 * Requests are authenticated by the HttpOnly session cookie that POST /api/sessions sets,
 * or by a browser token.
 *
 *   await jobcast.ensureSession();
 *   const types = await jobcast.jobTypes();
 *   const created = await jobcast.submit("demo", { duration: 3 });
 *   const watcher = jobcast.watch(created.id, {
 *     onSnapshot(job) {}, onEvent(event, job) {}, onState(state) {},
 *     onDone(job) {}, onError(error) {},
 *     onInput(request, job) {}, onStream(chunk, text, job) {}, onMetadata(changed, metadata, job) {},
 *   });
 *   await jobcast.answer(created.id, { approve: true });   // a waiting job's question
 *   watcher.close();
 *
 *   <job-progress job-id="…"></job-progress>            same origin
 *   <job-progress job-id="…" server="/jobcast"></job-progress>   behind a path prefix
 *
 * `jobcast.client(server)` gives the same API bound to another base URL (a path
 * prefix on this origin, or a same-site origin such as https://jobs.example.com);
 * `jobcast.client(server, {token})` calls it with a browser token minted by the app's
 * backend, from any origin jobcast allows:
 *
 *   <job-progress job-id="…" server="https://jobs.example.com" token="…"></job-progress>
 *   <job-toasts server="https://jobs.example.com" token="…"></job-toasts>
 *
 * jobcast.mjs is this script as an ES module (its exports, the same elements);
 * jobcast.d.ts types both.
 */
(function (global) {
  "use strict";

  var FINAL_STATUSES = ["completed", "failed", "cancelled"];

  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var FEED_BACKOFF_MAX_MS = 30000;
  var MAX_CONNECT_FAILURES = 3; // in a row, before falling back to polling
  var CONNECT_TIMEOUT_MS = 10000; // no snapshot by then counts as a failed connect
  var PROBE_TIMEOUT_MS = 4000; // a websocket tried again while polling gets less time
  var PROBE_EVERY_MS = 30000; // while polling, try the websocket again this often
  var POLL_INTERVAL_MS = 2000;
  var FEED_REMEMBER = 5000; // events a feed remembers, to pass each on once

  // Where this script was loaded from: the element's stylesheet sits next to it.
  var SCRIPT_SRC = (global.document && global.document.currentScript && global.document.currentScript.src) || "";

  function isFinal(status) {
    return FINAL_STATUSES.indexOf(status) !== -1;
  }

  function clone(value) {
    return value == null ? value : JSON.parse(JSON.stringify(value));
  }

  function has(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
  }

  /** A websocket message as an object, or null when it is not a JSON object. */
  function parseMessage(msg) {
    try {
      var data = JSON.parse(msg.data);
      return data && typeof data === "object" ? data : null;
    } catch (_) {
      return null;
    }
  }

  /** Close a socket normally, if there is one and it is not closing already. */
  function closeQuietly(sock) {
    if (!sock) return;
    try {
      sock.close(1000);
    } catch (_) {
      /* already closing */
    }
  }

  /**
   * A socket the server closed for good (44xx, or 1008 for a bad request) as
   * {code, message, status}: the error it sent before closing, else what the close says.
   * null for a close that is worth a reconnect.
   */
  function refusal(ev, sent) {
    if (!((ev.code >= 4400 && ev.code < 4500) || ev.code === 1008)) return null;
    var e = sent || {};
    var expired = ev.reason === "token expired";
    var status = ev.code === 1008 ? 400 : ev.code - 4000;
    return {
      code: expired ? "token_expired" : e.code || "ws_" + ev.code,
      message: e.message || (expired ? "The token expired." : defaultMessage(status)),
      status: status,
    };
  }

  function later(fn) {
    // A broken callback must not break the connection logic: rethrow outside it.
    return function () {
      try {
        return fn.apply(null, arguments);
      } catch (err) {
        setTimeout(function () {
          throw err;
        });
      }
    };
  }

  // ------------------------------------------------------------ language

  /*
   * Every string the page, this client and <job-progress> show comes from a catalogue:
   * static/i18n/<lang>.js, a plain script setting window.jobcastStrings[<lang>] to
   * {key: text}. English is always loaded (the fallback for a key a language lacks);
   * the language is ?lang=, else the one chosen with setLanguage (kept in
   * localStorage), else the first of navigator.languages with a catalogue. An app adds
   * or overrides strings with jobcast.i18n.add(lang, {key: text}). A text may hold
   * {name} placeholders, and be {one, other} to follow Intl.PluralRules on {count}.
   */
  var LANG_KEY = "jobcast.lang";
  var LANGUAGES = { en: "English", de: "Deutsch" };
  var added = {}; // lang → the app's own strings, over the catalogue's
  var loading = {}; // lang → Promise of its catalogue
  var current = "en";

  function catalogues() {
    return global.jobcastStrings || (global.jobcastStrings = {});
  }

  function primary(tag) {
    return String(tag || "").toLowerCase().split(/[-_]/)[0];
  }

  function storedLanguage() {
    try {
      var query = new URLSearchParams(global.location.search).get("lang");
      return query || global.localStorage.getItem(LANG_KEY);
    } catch (_) {
      return null;
    }
  }

  /** The language to show: asked for (?lang=, the switch), else the browser's first we have. */
  function chooseLanguage() {
    var asked = primary(storedLanguage());
    if (has(LANGUAGES, asked)) return asked;
    var wanted = (global.navigator && (global.navigator.languages || [global.navigator.language])) || [];
    for (var i = 0; i < wanted.length; i++) {
      if (has(LANGUAGES, primary(wanted[i]))) return primary(wanted[i]);
    }
    return "en";
  }

  function catalogueUrl(lang) {
    try {
      var from = SCRIPT_SRC || global.jobcastModuleUrl || global.location.origin + "/static/jobcast.js";
      return new URL("i18n/" + lang + ".js", from).href;
    } catch (_) {
      return "/static/i18n/" + lang + ".js";
    }
  }

  /** Loads static/i18n/<lang>.js once (unless already on the page); never rejects. */
  function loadCatalogue(lang) {
    if (catalogues()[lang] || !global.document) return Promise.resolve();
    if (!loading[lang]) {
      loading[lang] = new Promise(function (resolve) {
        var script = global.document.createElement("script");
        script.src = catalogueUrl(lang);
        script.onload = script.onerror = function () {
          resolve();
        };
        global.document.head.appendChild(script);
      });
    }
    return loading[lang];
  }

  function lookup(lang, key) {
    var own = added[lang];
    if (own && has(own, key)) return own[key];
    var file = catalogues()[lang];
    if (file && has(file, key)) return file[key];
    return undefined;
  }

  /** The text for `key` in the page's language (else English, else the key), filled from `vars`. */
  function t(key, vars) {
    var text = lookup(current, key);
    var lang = current;
    if (text === undefined) {
      text = lookup("en", key);
      lang = "en";
    }
    if (text === undefined) return key;
    if (text && typeof text === "object") {
      var count = vars && typeof vars.count === "number" ? vars.count : 0;
      var form = new Intl.PluralRules(lang).select(count);
      text = has(text, form) ? text[form] : text.other;
    }
    return String(text).replace(/\{(\w+)\}/g, function (whole, name) {
      if (!vars || !has(vars, name)) return whole;
      var value = vars[name];
      return typeof value === "number" ? formatNumber(value) : String(value);
    });
  }

  /** A text for `key` when the catalogue has one, else undefined (a job type's own words). */
  function maybe(key, vars) {
    return lookup(current, key) !== undefined || lookup("en", key) !== undefined ? t(key, vars) : undefined;
  }

  function formatNumber(value, options) {
    return new Intl.NumberFormat(current, options).format(value);
  }

  /** 850 ms · 3.2 s · 42 s · 2 min 5 s · 1 h 3 min, the decimal as the language writes it. */
  function formatDuration(ms) {
    if (ms == null || !isFinite(ms) || ms < 0) return "";
    if (ms < 1000) return t("unit.ms", { n: Math.round(ms) });
    var s = ms / 1000;
    if (s < 10) return t("unit.s", { n: formatNumber(s, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) });
    if (s < 60) return t("unit.s", { n: Math.round(s) });
    var total = Math.round(s);
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var rest = total % 60;
    if (h) return t("unit.h_min", { h: h, m: m });
    return rest ? t("unit.min_s", { m: m, s: rest }) : t("unit.min", { n: m });
  }

  /** A moment as the language writes a date and time. */
  function formatDate(at, options) {
    var d = at instanceof Date ? at : new Date(at);
    if (!isFinite(d.getTime())) return "";
    return new Intl.DateTimeFormat(current, options || { dateStyle: "medium", timeStyle: "short" }).format(d);
  }

  /** Sets the page's language (kept for next time) and loads its catalogue; fires jobcast:language. */
  function setLanguage(lang) {
    var chosen = has(LANGUAGES, primary(lang)) ? primary(lang) : "en";
    try {
      global.localStorage.setItem(LANG_KEY, chosen);
    } catch (_) {
      /* storage disabled: the choice lasts this page */
    }
    return useLanguage(chosen);
  }

  function useLanguage(lang) {
    current = lang;
    var loaded = Promise.all([loadCatalogue("en"), loadCatalogue(lang)]).then(function () {
      if (global.document && current === lang) {
        global.document.documentElement.lang = lang;
        global.dispatchEvent(new CustomEvent("jobcast:language", { detail: { lang: lang } }));
      }
    });
    i18n.ready = loaded;
    return loaded;
  }

  /** Fills every [data-i18n] element's text and [data-i18n-<attr>] attribute under `root`. */
  function translate(root) {
    var scope = root || global.document;
    scope.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.dataset.i18n);
    });
    ["aria-label", "title", "placeholder"].forEach(function (attr) {
      scope.querySelectorAll("[data-i18n-" + attr + "]").forEach(function (node) {
        node.setAttribute(attr, t(node.getAttribute("data-i18n-" + attr)));
      });
    });
  }

  /** A job type's title in the page's language: the catalogue's type.<name>, else its own. */
  function typeTitle(type, own) {
    return maybe("type." + type) || own || type || t("job.generic");
  }

  /** A step's title: the catalogue's type.<type>.step.<name>, else the type's own. */
  function stepTitle(type, step) {
    return maybe("type." + type + ".step." + step.name) || step.title || step.name;
  }

  var i18n = {
    t: t,
    typeTitle: typeTitle,
    stepTitle: stepTitle,
    maybe: maybe,
    translate: translate,
    number: formatNumber,
    duration: formatDuration,
    date: formatDate,
    languages: LANGUAGES,
    setLanguage: setLanguage,
    /** The app's own strings for `lang` (and its name, for a language jobcast does not ship). */
    add: function (lang, strings, name) {
      added[lang] = Object.assign(added[lang] || {}, strings);
      if (name) LANGUAGES[lang] = name;
      else if (!has(LANGUAGES, lang)) LANGUAGES[lang] = lang;
      if (lang === current && global.document) {
        global.dispatchEvent(new CustomEvent("jobcast:language", { detail: { lang: lang } }));
      }
    },
    get lang() {
      return current;
    },
    ready: Promise.resolve(),
  };

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

  var DEFAULT_MESSAGES = [400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504];

  function defaultMessage(status) {
    return DEFAULT_MESSAGES.indexOf(status) !== -1 ? t("http." + status) : t("http.other", { status: status });
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
      return new ApiError(res.status, String(e.code || "http_" + res.status),
        String(e.message || defaultMessage(res.status)), e);
    }
    if (typeof e === "string" && e) return new ApiError(res.status, "http_" + res.status, e, data);
    return new ApiError(res.status, "http_" + res.status, defaultMessage(res.status), data);
  }

  function backoffDelay(retry, maxMs) {
    var base = Math.min(maxMs || BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, retry));
    // Jitter in [base/2, base) so many tabs do not reconnect in lockstep.
    return base / 2 + Math.random() * (base / 2);
  }

  // ------------------------------------------------------------------ ETA

  /**
   * Seconds left for a job, from its steps' `estimate_s` and its progress; null
   * when final or when nothing is known. Steps done count 0, the running step
   * counts the part of its estimate its share of the progress has not covered,
   * waiting steps their whole estimate. Without estimates, the time spent so
   * far is extrapolated over the progress left.
   */
  function estimateRemaining(job, nowMs) {
    if (!job || isFinal(job.status)) return null;
    var steps = Array.isArray(job.steps) ? job.steps : [];
    var progress = Math.min(100, Math.max(0, Number(job.progress) || 0));
    var known = steps.length > 0 && steps.every(function (s) {
      return typeof s.estimate_s === "number" && isFinite(s.estimate_s);
    });
    if (known) {
      var totalWeight = 0;
      steps.forEach(function (s) {
        totalWeight += Number(s.weight) > 0 ? Number(s.weight) : 1;
      });
      var doneWeight = 0;
      var left = 0;
      steps.forEach(function (s) {
        var weight = Number(s.weight) > 0 ? Number(s.weight) : 1;
        if (s.status === "completed") {
          doneWeight += weight;
        } else if (s.status === "running") {
          var share = (progress / 100) * totalWeight - doneWeight;
          var fraction = Math.min(1, Math.max(0, share / weight));
          left += s.estimate_s * (1 - fraction);
          doneWeight += weight;
        } else {
          left += s.estimate_s;
        }
      });
      return Math.max(0, left);
    }
    var started = Date.parse(job.started_at);
    var now = nowMs == null ? Date.now() : nowMs;
    if (job.status === "running" && isFinite(started) && progress > 0) {
      var spent = Math.max(0, (now - started) / 1000);
      return Math.max(0, (spent * (100 - progress)) / progress);
    }
    return typeof job.eta_seconds === "number" ? Math.max(0, job.eta_seconds) : null;
  }

  /** "about 12 s left", "about 3 min left", "almost done", or "" when unknown. */
  function describeEta(seconds) {
    if (seconds == null || !isFinite(seconds)) return "";
    if (seconds < 1.5) return t("eta.almost");
    if (seconds < 90) return t("eta.s", { n: Math.round(seconds) });
    if (seconds < 5400) return t("eta.min", { n: Math.round(seconds / 60) });
    var hours = seconds / 3600;
    var shown = hours < 10 ? formatNumber(hours, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) : Math.round(hours);
    return t("eta.h", { n: shown });
  }

  /** A value in seconds that counts down in real time from the moment it is set; never below 0. */
  class Countdown {
    constructor() {
      this.seconds = null;
      this.at = 0;
    }
    set(seconds) {
      this.seconds = seconds == null || !isFinite(seconds) ? null : Math.max(0, Number(seconds));
      this.at = Date.now();
    }
    left() {
      if (this.seconds == null) return null;
      return Math.max(0, this.seconds - (Date.now() - this.at) / 1000);
    }
  }

  // --------------------------------------------------------------- client

  /**
   * The API bound to one server: "" for this origin, a path prefix ("/jobcast"),
   * or an origin ("https://jobs.example.com", a same-site origin listed in its
   * JOBCAST_ALLOWED_ORIGINS).
   */
  function makeClient(server, config) {
    var base = String(server || "").replace(/\/+$/, "");
    // A browser token minted by the app's backend: a bearer on HTTP, ?token= on websockets,
    // no cookie and no anonymous session. null: the session cookie.
    var token = (config && config.token) || null;

    function url(path) {
      return base + path;
    }

    function wsUrl(path, params) {
      var u = new URL(base + path, global.location.href);
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      var query = Object.assign({}, params || {});
      if (token) query.token = token;
      Object.keys(query).forEach(function (key) {
        if (query[key] != null && query[key] !== "") u.searchParams.set(key, String(query[key]));
      });
      return u.href;
    }

    async function rawFetch(method, path, body, headers) {
      var auth = token ? { Authorization: "Bearer " + token } : {};
      var init = {
        method: method,
        // "include" so that a same-site jobcast origin gets its cookie too; a token needs none.
        credentials: token ? "omit" : "include",
        // The browser cache must not answer for us: polling sends its own
        // If-None-Match and wants to see the 304 itself.
        cache: "no-store",
        headers: Object.assign({ Accept: "application/json" }, auth, headers || {}),
      };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      try {
        return await fetch(url(path), init);
      } catch (err) {
        throw new ApiError(0, "network_error", t("http.network"), err);
      }
    }

    /**
     * JSON request. Resolves to {status, data, etag}; a 304 resolves with data null.
     * A 401 gets one retry after a new session is created (the cookie may have expired).
     */
    async function request(method, path, options) {
      var opts = options || {};
      var res = await rawFetch(method, path, opts.body, opts.headers);
      if (res.status === 401 && !opts.noAuthRetry && !token) {
        await createSession();
        res = await rawFetch(method, path, opts.body, opts.headers);
      }
      var etag = res.headers.get("ETag");
      if (res.status === 304) return { status: 304, data: null, etag: etag };
      if (!res.ok) throw await toError(res);
      return { status: res.status, data: await readJson(res), etag: etag };
    }

    // ------------------------------------------------------------ session

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
      if (token) return Promise.resolve(true); // a token is the credential: no session
      if (!ensured) {
        ensured = (async function () {
          // a page served without a session cookie says so: make one, no 401 to learn it
          var page = typeof document !== "undefined" ? document.documentElement : null;
          if (page && page.dataset.session === "none") return !!(await createSession());
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

    // ----------------------------------------------------------- REST API

    function jobPath(id) {
      return "/api/jobs/" + encodeURIComponent(id);
    }

    /** GET /api/job-types → array of {type, title, steps, input_schema}. */
    async function jobTypes() {
      var r = await request("GET", "/api/job-types");
      return r.data && Array.isArray(r.data.job_types) ? r.data.job_types : [];
    }

    /**
     * POST /api/jobs → {id, status, status_url, ws_url, estimated_seconds}.
     * `extra` adds the optional fields: priority, delay_seconds, idempotency_key,
     * max_attempts, timeout_seconds, callback_url, concurrency ([{key, limit}]), throttle.
     */
    async function submit(type, input, extra) {
      var body = Object.assign({}, extra || {}, { type: type, input: input || {} });
      var r = await request("POST", "/api/jobs", { body: body });
      return r.data;
    }

    /** GET /api/jobs/{id} → job. */
    async function getJob(id) {
      var r = await request("GET", jobPath(id));
      return r.data;
    }

    /** GET /api/jobs → this visitor's jobs, newest first. filters: {status, type, limit}. */
    async function listJobs(filters) {
      var params = new URLSearchParams();
      var f = filters || {};
      ["status", "type", "limit"].forEach(function (key) {
        if (f[key] != null && f[key] !== "") params.set(key, String(f[key]));
      });
      var query = params.toString();
      var r = await request("GET", "/api/jobs" + (query ? "?" + query : ""));
      return r.data && Array.isArray(r.data.jobs) ? r.data.jobs : [];
    }

    /** POST /api/jobs/{id}/cancel → {id, status: "cancelled"}; ApiError 409 when it already ended. */
    async function cancel(id) {
      var r = await request("POST", jobPath(id) + "/cancel");
      return r.data;
    }

    /** POST /api/jobs/{id}/retry → a new job, as submit() answers; ApiError 409 unless failed or cancelled. */
    async function retry(id) {
      var r = await request("POST", jobPath(id) + "/retry");
      return r.data;
    }

    /**
     * POST /api/jobs/{id}/input: answer the question a waiting job asks.
     * ApiError 409 when it is not waiting (or already answered), 422 when the answer
     * does not fit the question's schema (its details name the field, e.g. answer.approve).
     */
    async function answer(id, value, step) {
      var body = { answer: value };
      if (step != null) body.step = step;
      var r = await request("POST", jobPath(id) + "/input", { body: body });
      return r.data;
    }

    /** POST /api/jobs/{id}/pause: a running job stops at its next step boundary. */
    async function pause(id) {
      var r = await request("POST", jobPath(id) + "/pause");
      return r.data;
    }

    /** POST /api/jobs/{id}/resume: a paused job is queued again, from its checkpoint. */
    async function resume(id) {
      var r = await request("POST", jobPath(id) + "/resume");
      return r.data;
    }

    /** POST /api/jobs/{id}/start: a draft is queued. */
    async function start(id) {
      var r = await request("POST", jobPath(id) + "/start");
      return r.data;
    }

    /** PATCH /api/jobs/{id} {input}: replace a draft's input; the job as it stands. */
    async function updateDraft(id, input) {
      var r = await request("PATCH", jobPath(id), { body: { input: input || {} } });
      return r.data;
    }

    // -------------------------------------------------------------- watch

    /**
     * Follow one job live: a websocket that resumes from the last seq after any
     * drop (with backoff), and polling with If-None-Match where websockets fail.
     *
     * options:
     *   after       last seq already known (default 0)
     *   job         a job object already fetched; seeds the state (and `after`)
     *   onSnapshot(job)        full state: on (re)connect and on each changed poll
     *   onEvent(event, job)    each new event, with the job state after it
     *   onState(state)         "connecting" | "live" | "reconnecting" | "polling" | "closed"
     *   onDone(job)            once, when the job reaches a final status
     *   onError({code, message, status})  fatal problems (job not found, not authenticated)
     *   onInput(request, job)  the job asks a person (request: {step, prompt, schema,
     *                          expires_at, on_timeout}), or null once it was answered
     *   onStream({name, offset, text}, fullText, job)  new text of a named stream, once
     *                          each and in order, also across reconnects
     *   onMetadata(changed, metadata, job)  keys of the job's metadata that changed
     *   noSession   true: a 401 while polling is an error, never a new anonymous session
     *
     * Progress never goes down within an attempt; a new attempt starts from 0.
     * Returns {close(), job(), state()}.
     */
    function watch(jobId, options) {
      var opts = options || {};
      if (opts.server != null && String(opts.server).replace(/\/+$/, "") !== base) {
        return makeClient(opts.server, { token: token }).watch(jobId, Object.assign({}, opts, { server: null }));
      }
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
      var polling = false;
      var probing = false; // a websocket tried again while polling
      var nextProbeAt = 0;
      var etag = null;
      var pendingError = null; // {type:"error"} message received before a close
      // Progress already reported for the current attempt: it never goes down.
      var reported = { attempt: undefined, progress: 0 };
      // The seq up to which job.streams holds every stream's text.
      var streamSeq = 0;

      function emit(name) {
        var fn = opts[name];
        if (typeof fn !== "function") return;
        later(fn).apply(null, Array.prototype.slice.call(arguments, 1));
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
        var had = job && job.streams;
        job = clone(next);
        if (job.streams == null) {
          // A websocket snapshot carries no stream text: the stream events after `after`
          // are replayed for it (see applyEvent), so the text held so far stays.
          job.streams = had || {};
        } else if (typeof job.seq === "number") {
          streamSeq = Math.max(streamSeq, job.seq); // a polled view holds every stream whole
        }
        if (!Array.isArray(job.steps)) job.steps = [];
        if (job.id == null) job.id = jobId;
        guardProgress(job);
        if (typeof job.seq === "number") lastSeq = Math.max(lastSeq, job.seq);
      }

      function applySnapshot(next) {
        if (!next || typeof next !== "object") return;
        var before = job;
        adopt(next);
        emit("onSnapshot", clone(job));
        liveDifferences(before, job);
        checkDone();
      }

      /** What a snapshot brings that the last state lacked: stream text, metadata, a question. */
      function liveDifferences(before, after) {
        var old = (before && before.streams) || {};
        var streams = after.streams || {};
        Object.keys(streams).forEach(function (name) {
          var had = typeof old[name] === "string" ? old[name] : "";
          var now = String(streams[name] || "");
          if (now.length > had.length) {
            emit("onStream", { name: name, offset: had.length, text: now.slice(had.length) }, now, clone(job));
          }
        });
        var meta = after.metadata || {};
        var oldMeta = (before && before.metadata) || {};
        var changed = {};
        Object.keys(meta).forEach(function (key) {
          if (JSON.stringify(meta[key]) !== JSON.stringify(oldMeta[key])) changed[key] = meta[key];
        });
        if (Object.keys(changed).length) emit("onMetadata", changed, clone(meta), clone(job));
        var asked = after.status === "waiting" ? after.input_request || null : null;
        var wasAsked = before && before.status === "waiting" ? before.input_request || null : null;
        if (JSON.stringify(asked) !== JSON.stringify(wasAsked)) emit("onInput", clone(asked), clone(job));
      }

      function stepIndex(name) {
        for (var i = 0; i < job.steps.length; i++) if (job.steps[i].name === name) return i;
        return -1;
      }

      /** A step added at run time goes after its parent and the parent's other added steps. */
      function addRunStep(ev) {
        var step = {
          name: ev.step, title: ev.title || ev.step, parent: ev.parent || null, share: ev.share,
          status: "waiting", counters: ev.counters || null, metadata: ev.metadata || null, error: null,
          started_at: null, finished_at: null, duration_ms: null, attempts: 0,
        };
        var at = job.steps.length;
        var parentAt = ev.parent ? stepIndex(ev.parent) : -1;
        if (parentAt !== -1) {
          at = parentAt + 1;
          while (at < job.steps.length && job.steps[at].parent === ev.parent) at += 1;
        }
        job.steps.splice(at, 0, step);
        return step;
      }

      function applyStream(ev) {
        if (!job.streams) job.streams = {};
        var name = String(ev.name || "output");
        var had = job.streams[name] || "";
        var text = String(ev.text || "");
        var offset = Number(ev.offset);
        if (!isFinite(offset)) offset = had.length;
        // Keep only the text past what is held: a snapshot and a replay may overlap.
        var fresh = text.slice(Math.max(0, had.length - offset));
        if (!fresh) return null;
        job.streams[name] = had + fresh;
        return { name: name, offset: had.length, text: fresh };
      }

      function resetForRetry() {
        job.progress = 0;
        job.step = null;
        job.result = null;
        job.finished_at = null;
        job.steps.forEach(function (s) {
          // A completed step's checkpoint is kept: the next attempt skips it.
          if (s.checkpointed && s.status === "completed") return;
          s.status = "waiting";
          s.started_at = null;
          s.finished_at = null;
          s.duration_ms = null;
        });
      }

      function applyEvent(ev) {
        var seq = Number(ev.seq);
        if (!isFinite(seq)) return;
        if (seq <= lastSeq) {
          // Reflected in the snapshot, except a stream's text: the snapshot leaves it out.
          if (ev.kind === "stream" && seq > streamSeq && job) {
            streamSeq = seq;
            var missed = applyStream(ev);
            if (missed) emit("onStream", missed, job.streams[missed.name], clone(job));
          }
          return;
        }
        var callbacks = []; // callbacks of the new kinds, called after onEvent with the job after it
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
          // why a pending job is held back (a concurrency key, a throttle, its turn)
          if (has(ev, "waiting_reason")) job.waiting_reason = ev.waiting_reason;
          if (ev.progress != null) job.progress = ev.progress;
          if (ev.status === "running") {
            job.waiting_reason = null;
            job.error = null;
            if (!job.started_at) job.started_at = ev.at || null;
          }
          if (ev.error) job.error = ev.error;
          job.retry_in_s = ev.retry_in_s != null ? ev.retry_in_s : null;
          if (ev.status === "completed") {
            job.progress = 100;
            job.error = null;
            if (has(ev, "result")) job.result = ev.result;
          }
          if (isFinal(ev.status)) {
            job.finished_at = ev.at || job.finished_at || null;
            job.eta_seconds = null;
          }
        } else if (ev.kind === "step") {
          var at = stepIndex(ev.step);
          var step = at === -1 ? null : job.steps[at];
          if (!step && ev.parent !== undefined) step = addRunStep(ev);
          if (step) {
            if (has(ev, "counters") && ev.counters) step.counters = ev.counters;
            if (ev.metadata) step.metadata = Object.assign({}, step.metadata || {}, ev.metadata);
            if (ev.error) step.error = ev.error;
            if (ev.state === "completed" && !step.parent) step.checkpointed = true;
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
          if (ev.state === "running" && !(step && step.parent)) job.step = ev.step;
          if (ev.progress != null) job.progress = ev.progress;
        } else if (ev.kind === "progress") {
          if (ev.progress != null) job.progress = ev.progress;
          if (ev.step != null) job.step = ev.step;
          if (has(ev, "message")) job.message = ev.message;
        } else if (ev.kind === "input_required") {
          job.status = ev.status || "waiting";
          job.step = ev.step || job.step;
          job.input_request = {
            step: ev.step, prompt: ev.prompt, schema: ev.schema,
            expires_at: ev.expires_at || null, on_timeout: ev.on_timeout || "fail",
          };
          callbacks.push(["onInput", clone(job.input_request)]);
        } else if (ev.kind === "input") {
          job.status = ev.status || "pending";
          job.input_request = null;
          callbacks.push(["onInput", null]);
        } else if (ev.kind === "resumed") {
          job.resumed = { step: ev.step, skipped: ev.skipped || [], attempt: ev.attempt };
          if (ev.progress != null) job.progress = ev.progress;
        } else if (ev.kind === "metadata") {
          var changed = ev.metadata || {};
          job.metadata = Object.assign({}, job.metadata || {}, changed);
          callbacks.push(["onMetadata", clone(changed), clone(job.metadata)]);
        } else if (ev.kind === "stream") {
          var chunk = applyStream(ev);
          if (chunk) callbacks.push(["onStream", chunk, job.streams[chunk.name]]);
        }

        job.seq = seq;
        streamSeq = seq;
        guardProgress(job);
        var reportedEvent = Object.assign({}, ev);
        if (ev.progress != null || ev.kind === "progress") reportedEvent.progress = job.progress;
        emit("onEvent", reportedEvent, clone(job));
        callbacks.forEach(function (call) {
          emit.apply(null, call.concat([clone(job)]));
        });
        checkDone();
      }

      function checkDone() {
        if (done || !job || !isFinal(job.status)) return;
        done = true;
        emit("onDone", clone(job));
        stop();
      }

      function dropSocket() {
        clearTimeout(connectTimer);
        var sock = ws;
        ws = null;
        closeQuietly(sock);
      }

      function stop() {
        stopped = true;
        clearTimeout(timer);
        timer = null;
        dropSocket();
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
          sock = new WebSocket(wsUrl("/ws/jobs/" + encodeURIComponent(jobId), { after: lastSeq }));
        } catch (_) {
          socketGone(null);
          return;
        }
        ws = sock;
        connectTimer = setTimeout(function () {
          if (ws === sock && !gotSnapshot) sock.close(); // onclose follows, as a failure
        }, probing ? PROBE_TIMEOUT_MS : CONNECT_TIMEOUT_MS);

        sock.onmessage = function (msg) {
          if (ws !== sock) return;
          var data = parseMessage(msg);
          if (!data) return;
          if (data.type === "snapshot") {
            gotSnapshot = true;
            failures = 0;
            retry = 0;
            polling = false;
            probing = false;
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
          socketGone(ev.code, ev.reason);
        };
      }

      function socketGone(code, reason) {
        if (stopped) return;
        if (done) {
          stop();
          return;
        }
        // 44xx: the server refused for good (not found, not authenticated).
        if (code >= 4400 && code < 4500) {
          var e = pendingError || {};
          if (code === 4404) {
            fatal({ code: e.code || "not_found", message: t("element.not_found"), status: 404 });
          } else if (code === 4401) {
            var expired = reason === "token expired" || e.code === "token_expired";
            fatal({
              code: expired ? "token_expired" : e.code || "unauthenticated",
              message: e.message || (expired ? "The token expired." : defaultMessage(401)),
              status: 401,
            });
          } else {
            fatal({ code: e.code || "ws_" + code, message: e.message || t("http.ws_refused"), status: 0 });
          }
          return;
        }
        if (probing) {
          // The websocket is still not usable: go on polling, try again later.
          probing = false;
          polling = true;
          nextProbeAt = Date.now() + PROBE_EVERY_MS;
          timer = setTimeout(poll, 0);
          return;
        }
        if (!gotSnapshot) {
          failures += 1;
          if (failures >= MAX_CONNECT_FAILURES) {
            startPolling();
            return;
          }
        }
        // 1001 (server restarting), 1013 (we read too slowly), 1006 (network): resume after lastSeq.
        scheduleReconnect();
      }

      function startPolling() {
        polling = true;
        nextProbeAt = Date.now() + PROBE_EVERY_MS;
        setState("polling");
        poll();
      }

      async function poll() {
        timer = null;
        if (stopped || !polling) return;
        if (typeof WebSocket !== "undefined" && Date.now() >= nextProbeAt) {
          probing = true;
          connect();
          return;
        }
        try {
          var r = await request("GET", jobPath(jobId), {
            headers: etag ? { "If-None-Match": etag } : {},
            noAuthRetry: !!opts.noSession,
          });
          if (stopped || !polling) return;
          if (r.status !== 304) {
            if (r.etag) etag = r.etag;
            applySnapshot(r.data);
          }
        } catch (err) {
          if (stopped || !polling) return;
          if (err.status === 404) {
            fatal({ code: err.code || "not_found", message: t("element.not_found"), status: 404 });
            return;
          }
          if (err.status === 401 || err.status === 403) {
            fatal({ code: err.code, message: err.message, status: err.status });
            return;
          }
          // Network trouble or a 5xx: keep polling.
        }
        if (!stopped && polling && !probing) timer = setTimeout(poll, POLL_INTERVAL_MS);
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

    // ------------------------------------------------------------ batches

    /** POST /api/jobs/batch {jobs: [{type, input, ...}]} → {batch_id, jobs: [{id, ...}]}. */
    async function submitBatch(jobs) {
      var r = await request("POST", "/api/jobs/batch", { body: { jobs: jobs } });
      return r.data;
    }

    /** GET /api/batches/{id} → {id, size, counts, progress, finished, jobs}. */
    async function getBatch(id) {
      var r = await request("GET", "/api/batches/" + encodeURIComponent(id));
      return r.data;
    }

    /**
     * Follow a batch live (WS /ws/batches/{id}): onBatch(batch) with the aggregate (counts
     * by status, progress, each job's state) at first and after each of its jobs' events,
     * onDone(batch) once every job ended, onState(state), onError({code, message, status}).
     * A dropped socket reconnects; its new snapshot holds the whole batch, so nothing is lost.
     * Returns {close(), batch()}.
     */
    function watchBatch(batchId, options) {
      var opts = options || {};
      var view = null;
      var ws = null;
      var timer = null;
      var retry = 0;
      var stopped = false;

      function emit(name) {
        if (typeof opts[name] === "function") later(opts[name]).apply(null, Array.prototype.slice.call(arguments, 1));
      }

      function recount() {
        var counts = {};
        var total = 0;
        view.jobs.forEach(function (j) {
          var status = j.status || "deleted";
          counts[status] = (counts[status] || 0) + 1;
          total += !j.status || isFinal(j.status) ? 100 : Number(j.progress) || 0;
        });
        view.counts = counts;
        view.progress = view.jobs.length ? Math.round((total / view.jobs.length) * 100) / 100 : 100;
        view.finished = view.jobs.every(function (j) {
          return !j.status || isFinal(j.status);
        });
      }

      function apply(ev) {
        var job = view && view.jobs.find(function (j) {
          return j.id === ev.job_id;
        });
        if (!job) return;
        // an event read before the snapshot (or sent again to fill a gap) is in it already:
        // applied now, it would take the job back to where it stood then
        var seq = Number(ev.seq);
        if (isFinite(seq) && typeof job.seq === "number" && seq <= job.seq) return;
        if (isFinite(seq)) job.seq = seq;
        if (ev.status) job.status = ev.status;
        if (ev.progress != null) job.progress = ev.progress;
        if (ev.status === "completed") job.progress = 100;
        if (ev.kind === "step" && ev.state === "running") job.step = ev.step;
        if (has(ev, "message")) job.message = ev.message;
        if (ev.error) job.error = ev.error;
        recount();
      }

      function stop() {
        stopped = true;
        clearTimeout(timer);
        closeQuietly(ws);
        ws = null;
        emit("onState", "closed");
      }

      function connect() {
        if (stopped) return;
        var pendingError = null;
        var sock = new WebSocket(wsUrl("/ws/batches/" + encodeURIComponent(batchId)));
        ws = sock;
        emit("onState", view ? "reconnecting" : "connecting");
        sock.onmessage = function (msg) {
          var data = ws === sock ? parseMessage(msg) : null;
          if (!data) return;
          if (data.type === "snapshot") {
            retry = 0;
            view = data.batch;
            emit("onState", "live");
          } else if (data.type === "event") {
            apply(data);
          } else if (data.type === "error") {
            pendingError = data.error || null;
            return;
          }
          emit("onBatch", clone(view));
          if (view.finished) {
            emit("onDone", clone(view));
            stop();
          }
        };
        sock.onclose = function (ev) {
          if (ws !== sock || stopped) return;
          ws = null;
          if (ev.code === 1000 && view) {
            view.finished = true;
            emit("onDone", clone(view));
            stop();
          } else if (refusal(ev, pendingError)) {
            stop();
            emit("onError", refusal(ev, pendingError));
          } else {
            timer = setTimeout(connect, backoffDelay(retry));
            retry += 1;
          }
        };
      }

      timer = setTimeout(connect, 0);
      return {
        close: function () {
          if (!stopped) stop();
        },
        batch: function () {
          return clone(view);
        },
      };
    }

    // --------------------------------------------------------------- feed

    /**
     * A feed of many jobs' status and step events (and progress, when asked): the visitor's own (WS /ws), those of a
     * tag (options.tag) or of a browser token's scope.
     * options:
     *   tag              only the jobs with this tag
     *   progress         true: progress events too (each job's at most twice a second)
     *   onSnapshot(jobs) a feed over a tag or a token starts with its jobs, newest first
     *                    (again after each reconnect)
     *   onEvent(event)   {type:"event", kind, job_id, seq, at, status?, progress?, ...}:
     *                    each once, in order per job, also across reconnects
     *   onResync()       events may have been missed (the server said so, or the owner's
     *                    feed came back after a drop): reload whatever lists them
     *   onState(state)   "connecting" | "live" | "reconnecting" | "offline" | "unavailable" | "closed"
     *   onError({code, message, status})  the server refused the feed for good (a bad tag,
     *                    an expired token: code "token_expired"); the feed is closed
     * It reconnects for as long as it is open, a feed over a scope from the position it
     * reached (?since=), so it misses nothing; after 3 failed connects in a row it says
     * "offline" (callers may poll meanwhile) and keeps trying, more slowly.
     */
    function feed(options) {
      var opts = options || {};
      var scoped = !!(opts.tag || token);
      var stopped = false;
      var ws = null;
      var timer = null;
      var retry = 0;
      var failures = 0;
      var everOpened = false;
      var state = null;
      var position = null; // the at of the last event (or the snapshot's position)
      var seen = new Set(); // "job id:seq" of the events passed on, the last FEED_REMEMBER

      function setState(next) {
        if (next === state) return;
        state = next;
        if (typeof opts.onState === "function") later(opts.onState)(next);
      }

      function stop() {
        stopped = true;
        clearTimeout(timer);
        closeQuietly(ws);
        ws = null;
        setState("closed");
      }

      function onEvent(data) {
        var key = data.job_id + ":" + data.seq;
        if (seen.has(key)) return; // a resumed feed's overlap
        seen.add(key);
        if (seen.size > FEED_REMEMBER) seen.delete(seen.values().next().value);
        if (data.at && (!position || data.at > position)) position = data.at;
        if (typeof opts.onEvent === "function") later(opts.onEvent)(data);
      }

      function connect() {
        timer = null;
        if (stopped) return;
        if (typeof WebSocket === "undefined") {
          setState("unavailable");
          return;
        }
        if (state === null) setState("connecting");
        var opened = false;
        var pendingError = null;
        var sock;
        try {
          var query = { tag: opts.tag, since: scoped ? position : null, progress: opts.progress ? 1 : null };
          sock = new WebSocket(wsUrl("/ws", query));
        } catch (_) {
          setState("unavailable");
          return;
        }
        ws = sock;
        sock.onopen = function () {
          if (ws !== sock) return;
          opened = true;
          failures = 0;
          retry = 0;
          setState("live");
          // Back after a drop: whatever happened meanwhile was not sent to us (a feed over
          // a scope resumes from its position instead).
          if (everOpened && !scoped && typeof opts.onResync === "function") later(opts.onResync)();
          everOpened = true;
        };
        sock.onmessage = function (msg) {
          if (ws !== sock) return;
          var data = parseMessage(msg);
          if (!data) return;
          if (data.type === "event") {
            onEvent(data);
          } else if (data.type === "snapshot") {
            if (!position) position = data.position || null;
            if (typeof opts.onSnapshot === "function") later(opts.onSnapshot)(data.jobs || []);
          } else if (data.type === "resync" && typeof opts.onResync === "function") {
            later(opts.onResync)();
          } else if (data.type === "error") {
            pendingError = data.error || null;
          }
        };
        sock.onerror = function () {};
        sock.onclose = function (ev) {
          if (ws !== sock) return;
          ws = null;
          if (stopped) return;
          var err = refusal(ev, pendingError);
          if (err) {
            stop();
            if (typeof opts.onError === "function") later(opts.onError)(err);
            return;
          }
          if (!opened) failures += 1;
          setState(failures >= MAX_CONNECT_FAILURES ? "offline" : "reconnecting");
          timer = setTimeout(connect, backoffDelay(retry, FEED_BACKOFF_MAX_MS));
          retry += 1;
        };
      }

      timer = setTimeout(connect, 0);
      return {
        close: function () {
          if (!stopped) stop();
        },
        state: function () {
          return state;
        },
      };
    }

    /**
     * Act with a browser token (a JWT an app key minted, e.g. the one in a link that
     * `jobcast submit` prints) instead of the cookie: a bearer on HTTP, ?token= on
     * websockets; no session is ever made. null goes back to the cookie.
     */
    function useToken(value) {
      token = value || null;
    }

    return {
      server: base,
      useToken: useToken,
      get token() {
        return token;
      },
      _fetch: rawFetch,
      ensureSession: ensureSession,
      createSession: createSession,
      jobTypes: jobTypes,
      submit: submit,
      getJob: getJob,
      listJobs: listJobs,
      cancel: cancel,
      retry: retry,
      answer: answer,
      pause: pause,
      resume: resume,
      start: start,
      updateDraft: updateDraft,
      watch: watch,
      feed: feed,
      submitBatch: submitBatch,
      getBatch: getBatch,
      watchBatch: watchBatch,
    };
  }

  // ------------------------------------------------------ <job-progress>

  var clients = {};

  /** The client of a server, and of a token when one is given (one per server and token). */
  function clientFor(server, token) {
    var base = String(server || "").replace(/\/+$/, "");
    if (token) return makeClient(base, { token: token });
    if (!clients[base]) clients[base] = base === "" ? jobcast : makeClient(base);
    return clients[base];
  }

  /** A file next to this script (the elements' stylesheets). Imported as an ES module, the
   * script has no currentScript: jobcast.mjs says where it was loaded from. */
  function assetUrl(name) {
    var from = SCRIPT_SRC || global.jobcastModuleUrl || global.location.origin + "/static/jobcast.js";
    try {
      return new URL(name, from).href;
    } catch (_) {
      return "/static/" + name;
    }
  }

  var STATE_TEXT = ["connecting", "live", "reconnecting", "polling"];

  var ELEMENT_HTML =
    '<div class="jp" part="root" data-status="pending" hidden>' +
    '<div class="jp-head"><span class="jp-step" part="step"></span>' +
    '<span class="jp-pct" part="percent">0%</span></div>' +
    '<div class="jp-bar" part="bar" role="progressbar" aria-label="Job progress" ' +
    'aria-valuemin="0" aria-valuemax="100" ' +
    'aria-valuenow="0" aria-valuetext="0%"><div class="jp-fill" part="fill"></div></div>' +
    '<div class="jp-foot"><span class="jp-message" part="message"></span>' +
    '<span class="jp-state" part="state"><span class="jp-dot" aria-hidden="true"></span>' +
    '<span class="jp-state-text"></span></span></div>' +
    "</div>";

  function originOf(client) {
    try {
      return new URL(client.server || "/", global.location.href).origin;
    } catch (_) {
      return global.location.origin;
    }
  }

  /**
   * Why the element cannot follow a job, as {code, status, title, message}: the message
   * says what to fix (the page's credential, jobcast's allowed origins, the job id).
   */
  function explainFailure(client, jobId, err) {
    var status = err.status || 0;
    var here = global.location.origin;
    var there = originOf(client);
    if (status === 0 && err.code === "network_error") {
      var refused = there !== here;
      return {
        code: refused ? "unreachable_or_refused" : "unreachable",
        status: 0,
        title: t("element.unreachable"),
        message: refused
          ? "jobcast at " + there + " did not answer this page: it is down, or it does not allow " +
            "this page's origin. Add " + here + " to JOBCAST_ALLOWED_ORIGINS on the jobcast server."
          : "jobcast at " + there + " did not answer: check that it is running and that the " +
            "element's server attribute points at it.",
      };
    }
    if (status === 401 && client.token) {
      var expired = err.code === "token_expired";
      return {
        code: expired ? "token_expired" : "token_refused",
        status: 401,
        title: expired ? "Access expired" : "Access refused",
        message: expired
          ? "This page's jobcast token expired: the app must mint a new one and give it to the " +
            "element (its token property or attribute)."
          : "jobcast refused this page's token (" + (err.message || "unauthorized") + "): it is " +
            "not valid, or its app key was revoked.",
      };
    }
    if (status === 401) {
      return {
        code: "no_credential",
        status: 401,
        title: t("element.no_credential"),
        message: "This page has no jobcast credential (or it expired): the app must set jobcast's " +
          "session cookie when its user signs in (docs/embedding.md), or add the create-session " +
          "attribute to make an anonymous session.",
      };
    }
    if (status === 403) {
      return {
        code: err.code === "forbidden" || !err.code ? "origin_refused" : err.code,
        status: 403,
        title: t("element.refused"),
        message: "jobcast refused this page (" + (err.message || "forbidden") + "). If the page is on " +
          "another origin, add " + here + " to JOBCAST_ALLOWED_ORIGINS on the jobcast server.",
      };
    }
    if (status === 404) {
      return {
        code: "not_found",
        status: 404,
        title: t("element.not_found"),
        message: client.token
          ? "No job " + jobId + " within this page's token: the token's scope does not name it " +
            "(another user's job, or the wrong id)."
          : "No job " + jobId + " for this page's credential: the id is wrong, the job was " +
            "deleted, or it belongs to another user.",
      };
    }
    return {
      code: err.code || "http_" + status,
      status: status,
      title: t("element.cannot_follow"),
      message: err.message || t("http.other", { status: status }),
    };
  }

  /**
   * The job's first view, fetched without making a session (unless createSession): {job}
   * or {error} (explainFailure). A 5xx or a network error goes on to the watch, which
   * retries, once the server was reached; a server never reached is an error.
   */
  async function openJob(client, jobId, createSession) {
    var path = "/api/jobs/" + encodeURIComponent(jobId);
    for (var tries = 0; tries < 2; tries++) {
      var res;
      try {
        res = await client._fetch("GET", path);
      } catch (_) {
        return { error: explainFailure(client, jobId, { status: 0, code: "network_error" }) };
      }
      if (res.ok) return { job: await readJson(res) };
      if (res.status === 401 && createSession && !client.token && tries === 0) {
        try {
          await client.createSession();
        } catch (err) {
          return { error: explainFailure(client, jobId, err) };
        }
        continue;
      }
      if (res.status >= 500) return { job: null }; // the watch waits for it to recover
      return { error: explainFailure(client, jobId, await toError(res)) };
    }
    return { error: explainFailure(client, jobId, { status: 401 }) };
  }

  function defineElement() {
    if (typeof HTMLElement === "undefined" || !global.customElements || global.customElements.get("job-progress")) {
      return;
    }

    /**
     * <job-progress job-id="…" server="…" token="…">: a compact live view of one job;
     * <job-progress batch-id="…">: of a batch (its jobs by status and overall progress,
     * `job-progress:batch` ({batch}) as it changes, `job-progress:done` ({batch}) at its end).
     * With a token (the attribute, or the `token` property, which keeps it out of the DOM)
     * it calls jobcast as that browser token, from any origin of JOBCAST_ALLOWED_ORIGINS;
     * when the token expires it says so and fires `job-progress:error` (code token_expired):
     * set a new token to go on.
     * Fires `job-progress:event` ({event, job}), `job-progress:state` ({state}),
     * `job-progress:input` ({request, job}: null once answered), `job-progress:stream`
     * ({chunk, text, job}), `job-progress:metadata` ({changed, metadata, job}) and, once,
     * `job-progress:done` ({job, already_ended}: true when the job had ended before the
     * element opened it) or `job-progress:error` ({code, status, title, message}: why it
     * cannot follow the job and what to fix); all bubble and cross shadow roots.
     * It never makes an anonymous session unless it has the `create-session` attribute.
     */
    class JobProgressElement extends HTMLElement {
      static get observedAttributes() {
        return ["job-id", "batch-id", "server", "token", "create-session"];
      }

      constructor() {
        super();
        var root = this.attachShadow({ mode: "open" });
        var link = document.createElement("link");
        link.rel = "stylesheet";
        link.href = assetUrl("job-progress.css");
        var holder = document.createElement("div");
        holder.innerHTML = ELEMENT_HTML;
        var box = holder.firstChild;
        // Shown once styled, so the page never sees it unstyled.
        link.addEventListener("load", function () {
          box.hidden = false;
        });
        link.addEventListener("error", function () {
          box.hidden = false;
        });
        root.appendChild(link);
        root.appendChild(box);
        this._el = {
          box: box,
          step: box.querySelector(".jp-step"),
          pct: box.querySelector(".jp-pct"),
          bar: box.querySelector(".jp-bar"),
          fill: box.querySelector(".jp-fill"),
          message: box.querySelector(".jp-message"),
          stateText: box.querySelector(".jp-state-text"),
        };
        this._job = null;
        this._conn = "connecting";
        this._watcher = null;
        this._eta = new Countdown();
        this._ticker = null;
        this._key = null;
        this._token = null;
      }

      /** The browser token it calls jobcast with (the property wins over the attribute). */
      get token() {
        return this._token || this.getAttribute("token") || null;
      }

      set token(value) {
        this._token = value ? String(value) : null;
        if (this.isConnected) this._start();
      }

      /** The job as last seen (a copy), or null. */
      get job() {
        return clone(this._job);
      }

      connectedCallback() {
        var self = this;
        this._relabel = this._relabel || function () {
          self._el.bar.setAttribute("aria-label", t("element.progress"));
          if (self._job) self._render();
          else if (self._conn === "connecting" && self._watcher) self._renderMessage(t("element.connecting"), "connecting");
        };
        global.addEventListener("jobcast:language", this._relabel);
        this._relabel();
        this._startWhenReady();
      }

      /** Starts once the language's catalogue is in, so every word is in that language. */
      _startWhenReady() {
        var self = this;
        i18n.ready.then(function () {
          if (self.isConnected) self._start();
        });
      }

      disconnectedCallback() {
        global.removeEventListener("jobcast:language", this._relabel);
        this._stop();
        this._key = null;
      }

      attributeChangedCallback() {
        if (this.isConnected) this._startWhenReady();
      }

      _stop() {
        if (this._watcher) this._watcher.close();
        this._watcher = null;
        clearInterval(this._ticker);
        this._ticker = null;
      }

      _start() {
        var id = (this.getAttribute("job-id") || "").trim();
        var batchId = (this.getAttribute("batch-id") || "").trim();
        var server = this.getAttribute("server") || "";
        var key = [server, id, batchId, this.token || ""].join("|");
        if (key === this._key) return;
        this._key = key;
        this._stop();
        this._job = null;
        this._eta.set(null);
        if (!id && !batchId) {
          this._renderMessage(t("element.no_job"), "idle");
          return;
        }
        var self = this;
        var client = clientFor(server, this.token);
        this._conn = "connecting";
        this._renderMessage(t("element.connecting"), "connecting");
        if (!id) {
          this._watchBatch(client, batchId);
          return;
        }
        this._ticker = setInterval(function () {
          self._renderEta();
        }, 1000);
        openJob(client, id, this.hasAttribute("create-session")).then(function (opened) {
          if (self._key !== key) return; // the element moved on meanwhile
          if (opened.error) {
            self._fail(opened.error);
          } else if (opened.job && isFinal(opened.job.status)) {
            self._ended(opened.job, true);
          } else {
            self._watch(client, id, opened.job);
          }
        });
      }

      _watch(client, id, first) {
        var self = this;
        if (first) {
          this._job = first;
          this._render();
        }
        this._watcher = client.watch(id, {
          job: first || undefined,
          noSession: !this.hasAttribute("create-session"),
          onSnapshot: function (job) {
            self._job = job;
            self._eta.set(typeof job.eta_seconds === "number" ? job.eta_seconds : estimateRemaining(job));
            self._render();
          },
          onEvent: function (event, job) {
            self._job = job;
            if (event.kind !== "status" || job.status === "running") self._eta.set(estimateRemaining(job));
            self._render();
            self._fire("job-progress:event", { event: event, job: job });
          },
          onState: function (state) {
            if (state === "closed") return;
            self._conn = state;
            self._render();
            self._fire("job-progress:state", { state: state });
          },
          onDone: function (job) {
            self._ended(job, false);
          },
          onInput: function (request, job) {
            self._fire("job-progress:input", { request: request, job: job });
          },
          onStream: function (chunk, text, job) {
            self._fire("job-progress:stream", { chunk: chunk, text: text, job: job });
          },
          onMetadata: function (changed, metadata, job) {
            self._fire("job-progress:metadata", { changed: changed, metadata: metadata, job: job });
          },
          onError: function (err) {
            self._fail(explainFailure(client, id, err));
          },
        });
      }

      _watchBatch(client, batchId) {
        var self = this;
        this._watcher = client.watchBatch(batchId, {
          onBatch: function (batch) {
            self._renderBatch(batch);
            self._fire("job-progress:batch", { batch: batch });
          },
          onDone: function (batch) {
            self._renderBatch(batch);
            self._fire("job-progress:done", { batch: batch });
          },
          onError: function (err) {
            self._fail({
              code: err.code,
              status: err.status,
              title: err.status === 404 ? "Batch not found." : "Cannot follow the batch",
              message: err.message,
            });
          },
        });
      }

      _renderBatch(batch) {
        var el = this._el;
        var pct = Math.min(100, Math.max(0, Number(batch.progress) || 0));
        var counts = batch.counts || {};
        var ended = (counts.completed || 0) + (counts.failed || 0) + (counts.cancelled || 0);
        el.box.dataset.status = batch.finished ? (counts.failed ? "failed" : "completed") : "running";
        el.box.dataset.conn = "";
        el.bar.setAttribute("aria-valuenow", String(Math.round(pct)));
        el.bar.setAttribute("aria-valuetext", Math.round(pct) + "%");
        el.fill.style.width = pct + "%";
        el.pct.textContent = Math.round(pct) + "%";
        el.step.textContent = ended + " of " + batch.size + " jobs done";
        el.message.textContent = Object.keys(counts).sort().map(function (status) {
          return counts[status] + " " + status;
        }).join(" · ");
        el.stateText.textContent = batch.finished ? "finished" : "live";
      }

      /** The job ended: before the page opened (alreadyEnded) or while it watched. */
      _ended(job, alreadyEnded) {
        this._job = job;
        this._eta.set(null);
        clearInterval(this._ticker);
        this._ticker = null;
        this._render();
        this._fire("job-progress:done", { job: job, already_ended: alreadyEnded });
      }

      /** A failure to reach the job: shown, and told to the page with what to fix. */
      _fail(error) {
        this._stop();
        this._renderMessage(error.title, "error");
        this._el.message.textContent = error.message;
        this._fire("job-progress:error", error);
      }

      _fire(name, detail) {
        this.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true, composed: true }));
      }

      _renderMessage(text, status) {
        var el = this._el;
        el.box.dataset.status = status;
        el.step.textContent = text;
        el.message.textContent = "";
        el.stateText.textContent = status === "connecting" ? t("conn.connecting") : "";
        el.box.dataset.conn = status === "connecting" ? "connecting" : "";
      }

      _render() {
        var job = this._job;
        if (!job) return;
        var el = this._el;
        var status = job.status || "pending";
        var pct = Math.min(100, Math.max(0, Number(job.progress) || 0));
        var rounded = Math.round(pct);
        el.box.dataset.status = status;
        el.box.dataset.conn = isFinal(status) ? "" : this._conn;
        el.bar.setAttribute("aria-valuenow", String(rounded));
        el.bar.setAttribute("aria-valuetext", rounded + "%");
        el.fill.style.width = pct + "%";
        el.pct.textContent = rounded + "%";

        var stepName = null;
        (job.steps || []).forEach(function (s) {
          if (s.name === job.step) stepName = stepTitle(job.type, s);
        });
        var headline;
        if (status === "pending") headline = t(job.attempts > 0 ? "headline.retry_wait" : "headline.start_wait");
        else if (status === "running") headline = stepName || t("status.running");
        else headline = t("element." + status);
        el.step.textContent = headline;

        var message = job.message || "";
        if (status === "failed" && job.error && job.error.message) message = job.error.message;
        if (status === "completed" && job.result && typeof job.result.summary === "string") message = job.result.summary;
        if (status === "waiting" && job.input_request && job.input_request.prompt) message = job.input_request.prompt;
        el.message.textContent = message;
        this._renderEta();
      }

      _renderEta() {
        var job = this._job;
        if (!job) return;
        var el = this._el;
        if (isFinal(job.status)) {
          el.stateText.textContent = t("status." + job.status);
          return;
        }
        var parts = [];
        var eta = describeEta(this._eta.left());
        if (eta && job.status === "running") parts.push(eta);
        if (STATE_TEXT.indexOf(this._conn) !== -1) parts.push(t("conn." + this._conn));
        el.stateText.textContent = parts.join(" · ");
      }
    }

    global.customElements.define("job-progress", JobProgressElement);
    global.customElements.define("job-toasts", toastsElement());
  }

  var TOAST_MS = 8000;
  var MAX_TOASTS = 4;

  /**
   * What a toast says of a job's event: {kind, title, detail, sticky}, or null for none.
   * `started`: a job's start is news too (<job-toasts started>).
   */
  function toastOf(event, job, started) {
    var type = job && job.type;
    var name = (type ? typeTitle(type, type) : t("job.generic")) + " " + String(event.job_id || "").slice(0, 8);
    if (event.kind === "input_required") {
      return { kind: "info", title: t("toasts.input", { name: name }), detail: event.prompt || "", sticky: true };
    }
    if (started && event.kind === "status" && event.status === "running") {
      return { kind: "info", title: t("toast.started", { name: name }), detail: t("toast.started_detail"), sticky: false };
    }
    if (event.kind !== "status" || !isFinal(event.status)) return null;
    var detail = "";
    if (event.status === "failed") detail = (event.error && event.error.message) || (job && job.error && job.error.message) || "";
    if (event.status === "completed" && job && job.result && typeof job.result.summary === "string") detail = job.result.summary;
    return {
      kind: event.status === "completed" ? "success" : event.status === "failed" ? "error" : "info",
      title: t("toast." + event.status, { name: name }),
      detail: detail,
      sticky: false,
    };
  }

  /**
   * <job-toasts server="…" token="…" tag="…">: toasts for the jobs of a feed (a browser
   * token's scope, a tag, or the visitor's own jobs), on any page: one when a job ends
   * (completed, failed, cancelled), a sticky one when a job asks for input, and with the
   * `started` attribute one when a job starts running (once per job). Fires
   * `job-toasts:toast` ({job_id, kind, title, detail}) for each, and `job-toasts:error`
   * ({code, status, message}) when jobcast refuses the feed (an expired token: set a new
   * one, the `token` property or attribute, to go on).
   */
  function toastsElement() {
    return class JobToastsElement extends HTMLElement {
      static get observedAttributes() {
        return ["server", "token", "tag"];
      }

      constructor() {
        super();
        var root = this.attachShadow({ mode: "open" });
        var link = document.createElement("link");
        link.rel = "stylesheet";
        link.href = assetUrl("job-toasts.css");
        this._region = document.createElement("div");
        this._region.className = "jt";
        this._region.setAttribute("role", "region");
        var region = this._region;
        i18n.ready.then(function () {
          region.setAttribute("aria-label", t("toasts.region"));
        });
        this._region.setAttribute("aria-live", "polite");
        root.appendChild(link);
        root.appendChild(this._region);
        this._token = null;
        this._feed = null;
        this._key = null;
        this._jobs = {};
        this._started = new Set(); // jobs whose start was told
      }

      get token() {
        return this._token || this.getAttribute("token") || null;
      }

      set token(value) {
        this._token = value ? String(value) : null;
        if (this.isConnected) this._start();
      }

      connectedCallback() {
        this._start();
      }

      disconnectedCallback() {
        if (this._feed) this._feed.close();
        this._feed = null;
        this._key = null;
      }

      attributeChangedCallback() {
        if (this.isConnected) this._start();
      }

      _start() {
        var server = this.getAttribute("server") || "";
        var tag = this.getAttribute("tag") || null;
        var key = [server, tag || "", this.token || ""].join("|");
        if (key === this._key) return;
        this._key = key;
        if (this._feed) this._feed.close();
        var self = this;
        var client = clientFor(server, this.token);
        this._feed = client.feed({
          tag: tag,
          onSnapshot: function (jobs) {
            jobs.forEach(function (job) {
              self._jobs[job.id] = job;
            });
          },
          onEvent: function (event) {
            var started = self.hasAttribute("started");
            if (!toastOf(event, null, started)) return;
            if (event.kind === "status" && event.status === "running") {
              if (self._started.has(event.job_id)) return; // a retry's start is no news
              self._started.add(event.job_id);
            }
            // the job as it ended (its type, result or error), for what the toast says
            client.getJob(event.job_id).then(
              function (job) {
                self._jobs[event.job_id] = job;
                self._toast(event, job);
              },
              function () {
                self._toast(event, self._jobs[event.job_id] || null);
              }
            );
          },
          onError: function (err) {
            var expired = err.code === "token_expired";
            self.show({
              kind: "error",
              title: expired ? t("toasts.expired") : t("toasts.stopped"),
              detail: expired ? t("toasts.expired_detail") : err.message,
              sticky: true,
            });
            self.dispatchEvent(new CustomEvent("job-toasts:error", { detail: err, bubbles: true, composed: true }));
          },
        });
      }

      _toast(event, job) {
        var toast = toastOf(event, job, this.hasAttribute("started"));
        if (!toast) return;
        this.show(toast);
        var detail = { job_id: event.job_id, kind: toast.kind, title: toast.title, detail: toast.detail };
        this.dispatchEvent(new CustomEvent("job-toasts:toast", { detail: detail, bubbles: true, composed: true }));
      }

      /** Show a toast: {kind: "success"|"error"|"info", title, detail?, sticky?}. */
      show(options) {
        var node = document.createElement("div");
        node.className = "jt-toast jt-" + (options.kind || "info");
        node.setAttribute("part", "toast");
        node.setAttribute("role", options.kind === "error" ? "alert" : "status");
        var body = document.createElement("div");
        body.className = "jt-body";
        var title = document.createElement("strong");
        title.className = "jt-title";
        title.setAttribute("part", "title");
        title.textContent = options.title;
        body.appendChild(title);
        if (options.detail) {
          var detail = document.createElement("span");
          detail.className = "jt-detail";
          detail.setAttribute("part", "detail");
          detail.textContent = options.detail;
          body.appendChild(detail);
        }
        var close = document.createElement("button");
        close.type = "button";
        close.className = "jt-close";
        close.setAttribute("part", "close");
        close.setAttribute("aria-label", t("toast.dismiss"));
        node.appendChild(body);
        node.appendChild(close);
        var region = this._region;
        var timer = null;
        function dismiss() {
          clearTimeout(timer);
          node.remove();
        }
        function arm() {
          clearTimeout(timer);
          if (!options.sticky) timer = setTimeout(dismiss, TOAST_MS);
        }
        close.addEventListener("click", dismiss);
        node.addEventListener("mouseenter", function () {
          clearTimeout(timer);
        });
        node.addEventListener("mouseleave", arm);
        node._dismiss = dismiss;
        region.appendChild(node);
        while (region.children.length > MAX_TOASTS) region.firstElementChild._dismiss();
        arm();
        return node;
      }
    };
  }

  var jobcast = makeClient("");
  jobcast.client = makeClient;
  jobcast.ApiError = ApiError;
  jobcast.FINAL_STATUSES = FINAL_STATUSES.slice();
  jobcast.isFinal = isFinal;
  jobcast.estimateRemaining = estimateRemaining;
  jobcast.describeEta = describeEta;
  jobcast.Countdown = Countdown;
  jobcast.i18n = i18n;
  jobcast.t = t;
  global.jobcast = jobcast;
  useLanguage(chooseLanguage());

  defineElement();
})(window);
