/*
 * Getting the visitor's attention while the tab is in the background: the
 * watched job's progress in the document title, and a desktop notification when
 * a job ends (once the visitor allowed them with the "Enable notifications" button).
 */

import { clampProgress } from "./format.js";

const TITLE_MARK = {
  completed: "done",
  failed: "failed",
  cancelled: "cancelled",
  waiting: "needs input",
  paused: "paused",
  draft: "draft",
};

export class Attention {
  constructor({ button, baseTitle }) {
    this.button = button;
    this.baseTitle = baseTitle || document.title;
    this.job = null;
    document.addEventListener("visibilitychange", () => this.renderTitle());
    if (button) {
      button.addEventListener("click", () => this.askPermission());
      this.renderButton();
    }
  }

  static supported() {
    return typeof window.Notification === "function";
  }

  renderButton() {
    if (!this.button) return;
    this.button.hidden = !(Attention.supported() && window.Notification.permission === "default");
  }

  async askPermission() {
    if (!Attention.supported()) return;
    try {
      await window.Notification.requestPermission();
    } catch (_) {
      /* an old browser's callback form: nothing to await */
    }
    this.renderButton();
  }

  /** The job whose progress the title shows while the tab is hidden (null: none). */
  setJob(job) {
    this.job = job;
    this.renderTitle();
  }

  renderTitle() {
    const job = this.job;
    if (!document.hidden || !job) {
      document.title = this.baseTitle;
      return;
    }
    const mark = TITLE_MARK[job.status] || Math.round(clampProgress(job.progress)) + "%";
    document.title = "[" + mark + "] " + this.baseTitle;
  }

  /** A desktop notification for a job that ended, when the tab is hidden and it is allowed. */
  notify({ title, body, href, tag }) {
    if (!document.hidden || !Attention.supported() || window.Notification.permission !== "granted") return;
    try {
      const note = new window.Notification(title, { body: body || "", tag: tag || undefined });
      note.onclick = () => {
        window.focus();
        if (href) window.location.assign(href);
        note.close();
      };
    } catch (_) {
      /* some browsers only allow notifications from a service worker */
    }
  }
}
