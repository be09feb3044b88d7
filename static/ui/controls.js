/*
 * The job's own controls beside Cancel and Retry: Pause and Resume (POST /pause,
 * /resume), and for a draft an edit form of its input (PATCH /api/jobs/{id}) and
 * Start (POST /start). A "pause requested" note shows while a running job goes on to
 * its next step boundary.
 */

import { t } from "./format.js";
import { InputForm } from "./inputform.js";

function $(id) {
  return document.getElementById(id);
}

export class JobControls {
  /** options: api (window.jobcast), onError(message), onChanged(job or null), onFocusLost(). */
  constructor(options) {
    this.options = options;
    this.el = {
      pause: $("pause-button"),
      resume: $("resume-button"),
      note: $("pause-note"),
      draft: $("job-draft"),
      draftForm: $("draft-form"),
      draftStart: $("draft-start"),
      draftSave: $("draft-save"),
      draftError: $("draft-error"),
    };
    this.form = new InputForm($("draft-fields"), "draft-");
    this.types = [];
    this.job = null;
    this.draftKey = null;
    this.busy = false;
    this.el.pause.addEventListener("click", () => this.act("pause"));
    this.el.resume.addEventListener("click", () => this.act("resume"));
    this.el.draftForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.saveDraft(ev.submitter && ev.submitter.value === "start");
    });
  }

  setTypes(types) {
    this.types = types || [];
    this.draftKey = null;
    if (this.job) this.render(this.job);
  }

  render(job) {
    this.job = job;
    const el = this.el;
    const status = job ? job.status : null;
    el.pause.hidden = !(status === "running" || status === "pending") || !!(job && job.pause_requested);
    el.resume.hidden = !(status === "paused" || (status === "running" && job.pause_requested));
    el.note.hidden = !(status === "running" && job.pause_requested);
    el.pause.disabled = el.resume.disabled = this.busy;
    el.draft.hidden = status !== "draft";
    // A stub of a job just made has no input yet: fill again once the server's view has it.
    const key = job ? job.id + (job.input ? ":input" : "") : null;
    if (status === "draft" && this.draftKey !== key) {
      const info = this.types.find((t) => t.type === job.type);
      this.form.render(info ? info.input_schema : null, job.type);
      this.form.fill(job.input || {});
      this.draftKey = key;
      this.showDraftError("");
    }
    if (status !== "draft") this.draftKey = null;
  }

  async act(verb) {
    if (!this.job || this.busy) return;
    this.busy = true;
    this.render(this.job);
    try {
      await this.options.api[verb](this.job.id);
    } catch (err) {
      this.options.onError(err.status === 409
        ? t(verb === "pause" ? "action.pause_refused" : "action.resume_refused")
        : err.message || t("error.request"));
    } finally {
      this.busy = false;
      if (this.job) this.render(this.job);
      this.refocus(verb === "pause" ? this.el.resume : this.el.pause);
    }
  }

  /** Focus that sat on a button now hidden goes to its counterpart, else to the job. */
  refocus(next) {
    const active = document.activeElement;
    if (active && active !== document.body && !active.hidden && !active.disabled) return;
    if (next && !next.hidden) next.focus();
    else if (this.options.onFocusLost) this.options.onFocusLost();
  }

  showDraftError(message) {
    this.el.draftError.textContent = message;
    this.el.draftError.hidden = !message;
  }

  async saveDraft(start) {
    const job = this.job;
    if (!job || job.status !== "draft" || this.busy) return;
    this.showDraftError("");
    let input;
    try {
      input = await this.form.value();
    } catch (err) {
      this.showDraftError(err.message);
      return;
    }
    this.busy = true;
    this.el.draftStart.disabled = this.el.draftSave.disabled = true;
    try {
      const saved = await this.options.api.updateDraft(job.id, input);
      if (start) await this.options.api.start(job.id);
      this.options.onChanged(start ? null : saved);
      if (!start) this.showDraftError("");
      else this.refocus(null);
    } catch (err) {
      const details = err && err.details && Array.isArray(err.details.details) ? err.details.details : [];
      for (const d of details) this.form.markInvalid(d.field);
      this.showDraftError(err.status === 409 ? t("draft.gone") : err.message || t("draft.failed"));
    } finally {
      this.busy = false;
      this.el.draftStart.disabled = this.el.draftSave.disabled = false;
    }
  }
}
