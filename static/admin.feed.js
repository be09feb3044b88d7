/*
 * admin.feed.js: the admin feed (/ws/admin) for the operator console. It opens with the
 * token, hands each message on, and when the socket drops it says so (the page polls
 * meanwhile) and reconnects after a pause with ?since=<cursor>, so that no status
 * change is missed.
 */

import { t } from "./ui/format.js";

const RETRY_MS = 3000;

export function openAdminFeed({ token, onMessage, onLive }) {
  let ws = null;
  let cursor = null;
  let timer = null;
  let closed = false;
  let live = false;

  function setLive(value) {
    live = value;
    const label = document.getElementById("feed-state");
    if (label) label.textContent = t(live ? "admin.feed.live" : "admin.feed.polling");
    document.documentElement.dataset.feed = live ? "live" : "polling";
    onLive(live);
  }

  function connect() {
    const url = new URL("/ws/admin", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    if (cursor) url.searchParams.set("since", cursor);
    const socket = new WebSocket(url);
    ws = socket;
    socket.addEventListener("message", (ev) => {
      if (closed || ws !== socket) return;
      let message;
      try {
        message = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (message.cursor) cursor = message.cursor;
      if (!live) setLive(true);
      onMessage(message);
    });
    socket.addEventListener("close", () => {
      if (closed || ws !== socket) return;
      setLive(false);
      timer = setTimeout(connect, RETRY_MS);
    });
  }

  connect();
  return {
    get live() {
      return live;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      live = false;
      if (ws) ws.close();
    },
  };
}
