/*
 * jobcast.js as an ES module: the same client and the same <job-progress> and <job-toasts>
 * elements, for pages on any origin that import it (no build step):
 *
 *   import jobcast, { client } from "https://jobs.example.com/static/jobcast.mjs";
 *   const api = client("https://jobs.example.com", { token });   // a browser token
 *   api.watch(jobId, { onEvent(event, job) {}, onDone(job) {} });
 *
 * Importing it defines the elements. Types: jobcast.d.ts, next to it.
 */
import "./jobcast.base.js";
import "./jobcast.js";

const jobcast = window.jobcast;

export default jobcast;
export const {
  client,
  ApiError,
  FINAL_STATUSES,
  isFinal,
  estimateRemaining,
  describeEta,
  Countdown,
  ensureSession,
  createSession,
  jobTypes,
  submit,
  getJob,
  listJobs,
  cancel,
  retry,
  answer,
  pause,
  resume,
  start,
  updateDraft,
  watch,
  feed,
  submitBatch,
  getBatch,
  watchBatch,
} = jobcast;
