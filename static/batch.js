/*
 * batch.js: the page of a batch (`/batches/{id}`): <job-progress batch-id> shows its
 * progress and counts live; the table below lists its jobs as they stand, each linking
 * to its own page. Uses the visitor's session cookie, as the home page does.
 */
(function () {
  "use strict";

  var match = window.location.pathname.match(/^\/batches\/([^/]+)\/?$/);
  var batchId = match ? decodeURIComponent(match[1]) : "";
  var progress = document.getElementById("batch-progress");
  var rows = document.getElementById("batch-jobs");
  document.getElementById("batch-id").textContent = batchId.slice(0, 8);
  document.title = "Batch " + batchId.slice(0, 8) + " · jobcast";

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function render(batch) {
    var body = document.createDocumentFragment();
    batch.jobs.forEach(function (job) {
      var row = document.createElement("tr");
      row.dataset.status = job.status || "deleted";
      var link = document.createElement("a");
      link.href = "/jobs/" + encodeURIComponent(job.id);
      link.textContent = (job.type || "job") + " " + job.id.slice(0, 8);
      cell(row, "").appendChild(link);
      var badge = document.createElement("span");
      badge.className = "badge";
      badge.dataset.status = job.status || "deleted";
      badge.textContent = job.status || "deleted";
      cell(row, "").appendChild(badge);
      cell(row, Math.round(job.status === "completed" ? 100 : job.progress || 0) + "%");
      cell(row, job.status === "failed" && job.error ? job.error.message || "" : job.step || "");
      body.appendChild(row);
    });
    rows.replaceChildren(body);
  }

  progress.addEventListener("job-progress:batch", function (ev) {
    render(ev.detail.batch);
  });
  progress.addEventListener("job-progress:done", function (ev) {
    if (ev.detail.batch) render(ev.detail.batch);
  });
  if (batchId) progress.setAttribute("batch-id", batchId);
})();
