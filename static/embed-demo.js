/*
 * The embedding demo's own glue (not needed by <job-progress>): follow the job
 * named by ?job= (or the batch named by ?batch=), or start a demo job on click, and
 * log the element's events.
 */
(function () {
  "use strict";

  var progress = document.getElementById("progress");
  var start = document.getElementById("start");
  var note = document.getElementById("note");
  var log = document.getElementById("log");

  function addLog(text) {
    var li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 12) log.removeChild(log.lastChild);
  }

  progress.addEventListener("job-progress:state", function (ev) {
    addLog("state: " + ev.detail.state);
  });
  progress.addEventListener("job-progress:event", function (ev) {
    var e = ev.detail.event;
    if (e.kind === "progress") return; // many of them: the bar shows those
    addLog(e.kind + " #" + e.seq + ": " + (e.status || (e.step + " " + e.state)));
  });
  progress.addEventListener("job-progress:done", function (ev) {
    var job = ev.detail.job;
    if (ev.detail.batch) {
      addLog("done: batch of " + ev.detail.batch.size);
      note.textContent = "Batch finished.";
    } else {
      addLog("done: " + job.status);
      note.textContent = "Job " + job.status + ".";
    }
    start.disabled = false;
  });

  var params = new URLSearchParams(window.location.search);
  var fromUrl = params.get("job");
  var batch = params.get("batch");
  if (batch) {
    progress.setAttribute("batch-id", batch);
    note.textContent = "Following batch " + batch.slice(0, 8) + ".";
  } else if (fromUrl) {
    progress.setAttribute("job-id", fromUrl);
    note.textContent = "Following job " + fromUrl.slice(0, 8) + ".";
  } else {
    note.textContent = "No job yet: start one, or open this page with ?job=<id>.";
  }

  start.addEventListener("click", async function () {
    start.disabled = true;
    note.textContent = "Starting…";
    try {
      await window.jobcast.ensureSession();
      var created = await window.jobcast.submit("demo", { duration: 5 });
      progress.setAttribute("job-id", created.id);
      note.textContent = "Following job " + created.id.slice(0, 8) + ".";
      var url = new URL(window.location.href);
      url.searchParams.set("job", created.id);
      window.history.replaceState(null, "", url.pathname + url.search);
    } catch (err) {
      note.textContent = err.message || "Could not start a job.";
      start.disabled = false;
    }
  });
})();
