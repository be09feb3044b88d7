/*
 * Toasts in the page's aria-live region: short notes that go away by themselves,
 * stay while hovered or focused, and close with their ✕ or Escape.
 */

import { t } from "./format.js";

// long enough to reach a toast with Tab from anywhere on the page before it goes
const TOAST_MS = 20000;
const MAX_TOASTS = 4;

export class Toasts {
  /** options: onFocusLost(), called when a toast holding focus goes. */
  constructor(region, options) {
    this.region = region;
    this.options = options || {};
    this.shown = new Set();
    document.addEventListener("keydown", (ev) => this.onKeydown(ev));
  }

  /** True the first time a key is seen: one toast per (job, outcome), whoever reports it first. */
  once(key) {
    if (this.shown.has(key)) return false;
    this.shown.add(key);
    return true;
  }

  /**
   * show({kind: "success"|"error"|"info", title, detail?, href?, linkLabel?, jobId?, sticky?})
   * A sticky toast stays until closed (or dismiss() is called): a question waits for a person.
   * Returns the toast element.
   */
  show(options) {
    const node = document.createElement("div");
    node.className = "toast toast-" + (options.kind || "info");
    node.setAttribute("role", options.kind === "error" ? "alert" : "status");
    if (options.jobId) node.dataset.jobId = options.jobId;

    const body = document.createElement("div");
    body.className = "toast-body";
    const title = document.createElement("strong");
    title.className = "toast-title";
    title.textContent = options.title;
    body.appendChild(title);
    if (options.detail) {
      const detail = document.createElement("span");
      detail.className = "toast-detail";
      detail.textContent = options.detail;
      body.appendChild(detail);
    }
    node.appendChild(body);

    if (options.href) {
      const link = document.createElement("a");
      link.className = "toast-link";
      link.href = options.href;
      link.textContent = options.linkLabel || t("toast.view");
      if (options.jobId) link.dataset.jobLink = options.jobId;
      node.appendChild(link);
    }

    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", t("toast.dismiss"));
    node.appendChild(close);

    let timer = null;
    const dismiss = () => {
      clearTimeout(timer);
      const hadFocus = node.contains(document.activeElement);
      node.remove();
      if (hadFocus && this.options.onFocusLost) this.options.onFocusLost();
    };
    const arm = () => {
      clearTimeout(timer);
      if (options.sticky) return;
      timer = setTimeout(dismiss, options.timeoutMs || TOAST_MS);
    };
    close.addEventListener("click", dismiss);
    node.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) dismiss();
    });
    node.addEventListener("mouseenter", () => clearTimeout(timer));
    node.addEventListener("mouseleave", arm);
    node.addEventListener("focusin", () => clearTimeout(timer));
    node.addEventListener("focusout", (ev) => {
      if (!node.contains(ev.relatedTarget)) arm();
    });
    node.dismiss = dismiss;

    this.region.appendChild(node);
    while (this.region.children.length > MAX_TOASTS) this.region.firstElementChild.dismiss();
    arm();
    return node;
  }

  /** Escape closes the toast holding focus, else the newest one (unless a dialog is open). */
  onKeydown(ev) {
    if (ev.key !== "Escape" || ev.defaultPrevented) return;
    const focused = document.activeElement && document.activeElement.closest(".toast");
    if (focused && this.region.contains(focused)) {
      focused.dismiss();
      return;
    }
    if (document.querySelector("dialog[open]")) return;
    const newest = this.region.lastElementChild;
    if (newest) newest.dismiss();
  }
}
