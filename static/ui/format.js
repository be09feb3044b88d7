/* Small formatting helpers shared by the pages: ids, durations, ages, server time. */

export function shortId(id) {
  const s = String(id || "");
  return s.length > 8 ? s.slice(0, 8) : s;
}

export function clampProgress(value) {
  const p = Number(value);
  if (!Number.isFinite(p)) return 0;
  return Math.min(100, Math.max(0, p));
}

/*
 * Words and numbers go through jobcast.js's catalogue (window.jobcast.i18n) where the
 * page loads it (the job page and the operator console both do), English otherwise.
 */
const english = {
  "unit.ms": "{n} ms", "unit.s": "{n} s", "unit.min": "{n} min",
  "ago.now": "just now", "ago.s": "{n} s ago", "ago.min": "{n} min ago", "ago.h": "{n} h ago", "ago.d": "{n} d ago",
};

function i18n() {
  return window.jobcast && window.jobcast.i18n;
}

/** The catalogue's text for `key` (English where the page has no catalogue). */
export function t(key, vars) {
  const catalogue = i18n();
  if (catalogue) return catalogue.t(key, vars);
  return (english[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (vars && name in vars ? String(vars[name]) : whole));
}

/** 850 ms · 3.2 s · 42 s · 2 min 5 s · 1 h 3 min */
export function formatDuration(ms) {
  const catalogue = i18n();
  if (catalogue) return catalogue.duration(ms);
  if (ms == null || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 60) return Math.round(s) + " s";
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const rest = total % 60;
  if (h) return h + " h " + m + " min";
  return rest ? m + " min " + rest + " s" : m + " min";
}

/** Seconds as a wait: "12 s", "4 min", "2.5 h". */
export function formatWait(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  if (seconds < 60) return t("unit.s", { n: Math.round(seconds) });
  if (seconds < 3600) return t("unit.min", { n: Math.round(seconds / 60) });
  const h = seconds / 3600;
  const catalogue = i18n();
  const hours = h < 10 ? (catalogue ? catalogue.number(h, { maximumFractionDigits: 1, minimumFractionDigits: 1 }) : h.toFixed(1)) : Math.round(h);
  return hours + " h";
}

/** "just now", "12 s ago", "2 min ago", "3 h ago", "4 d ago". */
export function formatAgo(ms) {
  if (ms == null || !Number.isFinite(ms)) return "";
  const s = Math.max(0, ms / 1000);
  if (s < 5) return t("ago.now");
  if (s < 60) return t("ago.s", { n: Math.floor(s) });
  if (s < 3600) return t("ago.min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("ago.h", { n: Math.floor(s / 3600) });
  return t("ago.d", { n: Math.floor(s / 86400) });
}

export function elapsedMs(from, to) {
  const a = Date.parse(from);
  const b = Date.parse(to);
  return Number.isFinite(a) && Number.isFinite(b) && b >= a ? b - a : null;
}

/**
 * The server's clock, as seen from here: elapsed times compare server timestamps
 * with "now", and the visitor's clock may be off. Each live event's `at` bounds
 * the offset (it was stamped before we got it); the smallest lag seen wins.
 */
export class ServerClock {
  constructor() {
    this.offsetMs = null;
  }

  observe(at) {
    const t = Date.parse(at);
    if (!Number.isFinite(t)) return;
    const lag = Date.now() - t;
    if (this.offsetMs == null || lag < this.offsetMs) this.offsetMs = lag;
  }

  now() {
    return Date.now() - (this.offsetMs == null ? 0 : this.offsetMs);
  }

  since(at) {
    const t = Date.parse(at);
    return Number.isFinite(t) ? Math.max(0, this.now() - t) : null;
  }
}

/** Job type title: the catalogue's for the page's language, else the type's own, else its name. */
export function typeTitle(types, type) {
  const info = (types || []).find((x) => x.type === type);
  const own = info ? info.title || info.type : type;
  const catalogue = i18n();
  return catalogue ? catalogue.typeTitle(type, own) : own || "Job";
}

/** A step's title in the page's language (see typeTitle). */
export function stepTitle(type, step) {
  const catalogue = i18n();
  return catalogue ? catalogue.stepTitle(type, step) : step.title || step.name;
}

/** A property name as a label: "fail_step" → "Fail step". */
export function humanize(name) {
  const s = String(name).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const LABEL_CHARS = 60;

/** The input field that labels a type's jobs: the one it names, else its first required text. */
function labelField(info) {
  if (!info) return null;
  if (info.label_field) return info.label_field;
  const schema = info.input_schema || {};
  const props = schema.properties || {};
  return (schema.required || []).find((name) => props[name] && props[name].type === "string") || null;
}

/**
 * What tells a job apart from others of its type: the API's label (a file's name, which
 * the input alone cannot give), else from its input (see labelField); a web address as
 * its host and path ("example.com/blog"). "" when there is none.
 */
export function jobLabel(types, job) {
  const info = (types || []).find((x) => x.type === job.type);
  const input = job && job.input && typeof job.input === "object" ? job.input : {};
  const field = labelField(info);
  const value = job && job.label ? job.label : field ? input[field] : null;
  if (typeof value !== "string" && typeof value !== "number") return "";
  let text = String(value).trim();
  if (/^https?:\/\//i.test(text)) {
    try {
      const url = new URL(text);
      text = url.host + url.pathname.replace(/\/$/, "");
    } catch (_) {
      // not a URL after all: shown as given
    }
  }
  return text.length > LABEL_CHARS ? text.slice(0, LABEL_CHARS - 1) + "…" : text;
}
