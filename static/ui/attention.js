/*
 * Getting the visitor's attention while the tab is in the background: the
 * watched job's progress in the document title, and a desktop notification when
 * a job ends (once the visitor allowed them with the "Enable notifications" button).
 */

import { clampProgress, t } from "./format.js";

// the statuses the title names in a word (the catalogue's title.<status>); others show the progress
const TITLE_MARK = new Set(["completed", "failed", "cancelled", "waiting", "paused", "draft"]);

export class Attention {
  /** name(job): the job's name for the title (its type's title). */
  constructor({ button, baseTitle, name }) {
    this.button = button;
    this.name = name || ((job) => job.type);
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
    if (!job) {
      document.title = this.baseTitle;
      return;
    }
    // the job first: "Demo · 42% · jobcast", in every tab, hidden or not
    const mark = TITLE_MARK.has(job.status) ? t("title." + job.status) : Math.floor(clampProgress(job.progress)) + "%";
    const title = [this.name(job), mark, this.baseTitle].join(" · ");
    if (document.title !== title) document.title = title;
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
