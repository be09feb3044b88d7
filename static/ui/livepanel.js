/*
 * What a running job writes beside its progress: streamed output (one panel per
 * stream, appended as `stream` events arrive, and on a reconnect resumed from the
 * job view's `streams` without a gap or a repeat: jobcast.watch hands each piece of
 * text once), live metadata (a key/value list), and the parts of steps added at
 * run time: their counters ("3 / 10"), their own error, their place under their parent.
 */

import { t } from "./format.js";

function $(id) {
  return document.getElementById(id);
}

function shown(value) {
  if (value == null) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return t(value ? "value.yes" : "value.no");
  const json = JSON.stringify(value);
  return json.length > 200 ? json.slice(0, 199) + "…" : json;
}

export class LivePanel {
  constructor() {
    this.el = {
      streams: $("job-streams"),
      streamList: $("stream-list"),
      metadata: $("job-metadata"),
      metaList: $("metadata-list"),
      steps: $("steps"),
    };
    this.jobId = null;
    this.panels = new Map(); // stream name → {text node holder, length}
  }

  /** A job shown afresh, or a full state of it: streams and metadata as they stand. */
  reset(job) {
    if (!job || job.id !== this.jobId) {
      this.jobId = job ? job.id : null;
      this.panels.clear();
      this.el.streamList.textContent = "";
    }
    if (!job) {
      this.el.streams.hidden = true;
      this.el.metadata.hidden = true;
      return;
    }
    const streams = job.streams || {};
    for (const [name, text] of Object.entries(streams)) {
      const panel = this.panel(name);
      // A snapshot holds the whole text: show it when it is ahead of what is shown.
      if (String(text).length > panel.length) {
        panel.pre.textContent = String(text);
        panel.length = String(text).length;
      }
    }
    this.el.streams.hidden = this.panels.size === 0;
    this.metadata(job.metadata || {});
    this.steps(job);
  }

  /** New text of one stream (from jobcast.watch's onStream): appended, never repeated. */
  append(chunk, fullText) {
    const panel = this.panel(chunk.name);
    if (chunk.offset === panel.length) {
      panel.pre.appendChild(document.createTextNode(chunk.text));
      panel.length += chunk.text.length;
    } else if (fullText.length > panel.length) {
      panel.pre.textContent = fullText;
      panel.length = fullText.length;
    }
    this.el.streams.hidden = false;
    const box = panel.pre;
    // Follow the end unless the reader scrolled up.
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 40) box.scrollTop = box.scrollHeight;
  }

  panel(name) {
    let panel = this.panels.get(name);
    if (panel) return panel;
    const section = document.createElement("section");
    section.className = "stream";
    section.dataset.stream = name;
    const head = document.createElement("h4");
    head.className = "stream-name";
    head.textContent = name;
    const pre = document.createElement("pre");
    pre.className = "stream-text";
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", t("job.stream", { name }));
    pre.setAttribute("aria-live", "off");
    section.append(head, pre);
    this.el.streamList.appendChild(section);
    panel = { pre, length: 0 };
    this.panels.set(name, panel);
    return panel;
  }

  metadata(values) {
    const keys = Object.keys(values || {});
    this.el.metadata.hidden = keys.length === 0;
    const list = this.el.metaList;
    list.textContent = "";
    for (const key of keys.slice(0, 50)) {
      const row = document.createElement("div");
      row.dataset.key = key;
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = shown(values[key]);
      row.append(dt, dd);
      list.appendChild(row);
    }
  }

  /** Counters, errors and nesting of steps added at run time (the job panel draws the rest). */
  steps(job) {
    const byName = new Map((job.steps || []).map((s) => [s.name, s]));
    const asking = job.status === "waiting" && job.input_request ? job.input_request.step : null;
    for (const li of this.el.steps.children) {
      const step = byName.get(li.dataset.step);
      if (!step) continue;
      // The step that asks is not working: it waits for a person.
      if (step.name === asking) {
        li.dataset.asking = "true";
        li.querySelector(".step-state").textContent = t("input.title");
      } else {
        delete li.dataset.asking;
      }
      if (step.parent) li.dataset.parent = step.parent;
      else delete li.dataset.parent;
      const detail = li.querySelector(".step-detail");
      let counters = li.querySelector(".step-counters");
      const c = step.counters;
      const text = c && c.done != null ? c.done + (c.total != null ? " / " + c.total : "") : "";
      if (text && !counters) {
        counters = document.createElement("span");
        counters.className = "step-counters";
        detail.appendChild(counters);
      }
      if (counters) counters.textContent = text;
      let error = li.querySelector(".step-error");
      const message = step.status === "failed" && step.error ? step.error.message || step.error.type : "";
      if (message && !error) {
        error = document.createElement("span");
        error.className = "step-error";
        li.querySelector(".step-body").appendChild(error);
      }
      if (error) error.textContent = message;
      let skipped = li.querySelector(".step-skipped");
      const resumed = job.resumed && Array.isArray(job.resumed.skipped) && job.resumed.skipped.includes(step.name);
      if (resumed && !skipped) {
        skipped = document.createElement("span");
        skipped.className = "step-skipped";
        skipped.textContent = t("step.from_checkpoint");
        detail.appendChild(skipped);
      } else if (!resumed && skipped) {
        skipped.remove();
      }
    }
  }
}
