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

/** 850 ms · 3.2 s · 42 s · 2 min 5 s · 1 h 3 min */
export function formatDuration(ms) {
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
  if (seconds < 60) return Math.round(seconds) + " s";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  const h = seconds / 3600;
  return (h < 10 ? h.toFixed(1) : Math.round(h)) + " h";
}

/** "just now", "12 s ago", "2 min ago", "3 h ago", "4 d ago". */
export function formatAgo(ms) {
  if (ms == null || !Number.isFinite(ms)) return "";
  const s = Math.max(0, ms / 1000);
  if (s < 5) return "just now";
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
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

/** Job type title from the list of job types, else the type name. */
export function typeTitle(types, type) {
  const info = (types || []).find((t) => t.type === type);
  return info ? info.title || info.type : type || "Job";
}

/** A property name as a label: "fail_step" → "Fail step". */
export function humanize(name) {
  const s = String(name).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}
