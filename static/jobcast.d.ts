/**
 * Types of jobcast's browser client (jobcast.mjs, the ES module; jobcast.js, the classic
 * script that sets window.jobcast) and of its elements, <job-progress> and <job-toasts>.
 * Hand-written: keep it beside the module's URL in your project, e.g.
 *
 *   // jobcast-module.d.ts
 *   declare module "https://jobs.example.com/static/jobcast.mjs" {
 *     export * from "./jobcast";
 *     export { default } from "./jobcast";
 *   }
 */

export type JobStatus =
  | "pending" | "running" | "waiting" | "paused" | "draft" | "completed" | "failed" | "cancelled";
export type FinalStatus = "completed" | "failed" | "cancelled";
export type StepState = "waiting" | "running" | "completed" | "failed" | "cancelled";
export type EventKind =
  | "status" | "step" | "progress" | "input_required" | "input" | "resumed" | "metadata" | "stream";

export interface JobError {
  type?: string;
  message: string;
  [key: string]: unknown;
}

export interface Step {
  name: string;
  title: string;
  weight: number;
  status: StepState;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  attempts?: number;
  estimate_s?: number | null;
  parent?: string | null;
  share?: number | null;
  counters?: Record<string, number> | null;
  metadata?: Record<string, unknown> | null;
  error?: JobError | null;
}

export interface InputRequest {
  step: string;
  prompt: string;
  schema: Record<string, unknown>;
  expires_at: string | null;
  on_timeout: "fail" | "default" | string;
}

/** A job as GET /api/jobs/{id} answers it (and a websocket's snapshot). */
export interface Job {
  id: string;
  type: string;
  status: JobStatus;
  progress: number;
  step: string | null;
  message: string | null;
  steps: Step[];
  attempts: number;
  seq: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  result?: unknown;
  error?: JobError | null;
  eta_seconds?: number | null;
  input_request?: InputRequest | null;
  metadata?: Record<string, unknown>;
  streams?: Record<string, string> | null;
  subject?: string | null;
  tenant?: string | null;
  tags?: string[];
  /** What tells it apart from others of its type: its site, the name of the file it reads. */
  label?: string | null;
  [key: string]: unknown;
}

/** One event of a job, as websockets send it. */
export interface JobEvent {
  type: "event";
  kind: EventKind;
  job_id: string;
  seq: number;
  at: string;
  status?: JobStatus;
  progress?: number;
  step?: string;
  state?: StepState;
  message?: string | null;
  error?: JobError;
  result?: unknown;
  attempt?: number;
  [key: string]: unknown;
}

export interface StreamChunk {
  name: string;
  offset: number;
  text: string;
}

/** Why a call or a watch failed: the API's error code, and the HTTP status (0: network). */
export declare class ApiError extends Error {
  readonly name: "ApiError";
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(status: number, code: string, message: string, details?: unknown);
}

export interface WatchError {
  code: string; // "not_found", "unauthenticated", "token_expired", ...
  message: string;
  status: number;
}

export type WatchState = "connecting" | "live" | "reconnecting" | "polling" | "closed";
export type FeedState = "connecting" | "live" | "reconnecting" | "offline" | "unavailable" | "closed";

export interface WatchOptions {
  /** The last seq already known (default 0). */
  after?: number;
  /** A job already fetched: seeds the state. */
  job?: Job;
  /** Another server than the client's. */
  server?: string;
  /** A 401 while polling is an error, never a new anonymous session. */
  noSession?: boolean;
  onSnapshot?(job: Job): void;
  onEvent?(event: JobEvent, job: Job): void;
  onState?(state: WatchState): void;
  onDone?(job: Job): void;
  onError?(error: WatchError): void;
  onInput?(request: InputRequest | null, job: Job): void;
  onStream?(chunk: StreamChunk, text: string, job: Job): void;
  onMetadata?(changed: Record<string, unknown>, metadata: Record<string, unknown>, job: Job): void;
}

export interface Watcher {
  close(): void;
  job(): Job | null;
  state(): WatchState | null;
}

export interface FeedOptions {
  /** Only the jobs with this tag. */
  tag?: string;
  /** Progress events too (each job's at most twice a second), for a live list. */
  progress?: boolean;
  onSnapshot?(jobs: Job[]): void;
  onEvent?(event: JobEvent): void;
  onResync?(): void;
  onState?(state: FeedState): void;
  onError?(error: WatchError): void;
}

export interface Feed {
  close(): void;
  state(): FeedState | null;
}

export interface BatchJob {
  id: string;
  type: string | null;
  status: JobStatus | null; // null: deleted
  progress: number;
  step: string | null;
  message: string | null;
  error: JobError | null;
  seq: number | null; // its last event's: one at or below it is counted already
}

export interface Batch {
  id: string;
  size: number;
  counts: Partial<Record<JobStatus | "deleted", number>>;
  progress: number;
  finished: boolean;
  jobs: BatchJob[];
}

export interface WatchBatchOptions {
  onBatch?(batch: Batch): void;
  onDone?(batch: Batch): void;
  onState?(state: "connecting" | "live" | "reconnecting" | "closed"): void;
  onError?(error: WatchError): void;
}

export interface Submitted {
  id: string;
  status: JobStatus;
  status_url: string;
  ws_url: string;
  estimated_seconds?: number | null;
}

export interface SubmitExtra {
  priority?: number;
  delay_seconds?: number;
  idempotency_key?: string;
  max_attempts?: number;
  timeout_seconds?: number;
  callback_url?: string;
  tags?: string[];
  metadata?: Record<string, unknown>;
  draft?: boolean;
  /** Concurrency keys: at most `limit` jobs holding `key` run at once. */
  concurrency?: { key: string; limit: number }[];
  /** A throttle: at most `limit` starts of `key` per `period_s` seconds. */
  throttle?: { key: string; limit: number; period_s: number };
  [key: string]: unknown;
}

export interface BatchJobSpec extends SubmitExtra {
  type: string;
  input?: Record<string, unknown>;
}

export interface BatchSubmitted {
  batch_id: string;
  status_url: string;
  ws_url: string;
  jobs: Submitted[];
}

export interface JobType {
  type: string;
  title: string;
  steps: { name: string; title: string; weight: number }[];
  input_schema: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ClientOptions {
  /** A browser token minted by the app's backend: a bearer on HTTP, ?token= on websockets. */
  token?: string;
}

/** The API bound to one server: "" (this origin), a path prefix, or an origin. */
export interface Client {
  readonly server: string;
  readonly token: string | null;
  /** Act with a browser token from now on (null: back to the session cookie). */
  useToken(value: string | null): void;
  ensureSession(): Promise<boolean>;
  createSession(): Promise<{ token: string }>;
  jobTypes(): Promise<JobType[]>;
  submit(type: string, input?: Record<string, unknown>, extra?: SubmitExtra): Promise<Submitted>;
  getJob(id: string): Promise<Job>;
  listJobs(filters?: { status?: JobStatus; type?: string; limit?: number }): Promise<Job[]>;
  cancel(id: string): Promise<{ id: string; status: "cancelled" }>;
  retry(id: string): Promise<Submitted>;
  answer(id: string, value: unknown, step?: string): Promise<unknown>;
  pause(id: string): Promise<unknown>;
  resume(id: string): Promise<unknown>;
  start(id: string): Promise<unknown>;
  updateDraft(id: string, input: Record<string, unknown>): Promise<Job>;
  watch(jobId: string, options?: WatchOptions): Watcher;
  feed(options?: FeedOptions): Feed;
  submitBatch(jobs: BatchJobSpec[]): Promise<BatchSubmitted>;
  getBatch(id: string): Promise<Batch>;
  watchBatch(batchId: string, options?: WatchBatchOptions): { close(): void; batch(): Batch | null };
}

export declare class Countdown {
  seconds: number | null;
  set(seconds: number | null): void;
  left(): number | null;
}

export interface Jobcast extends Client {
  client(server?: string, options?: ClientOptions): Client;
  ApiError: typeof ApiError;
  FINAL_STATUSES: FinalStatus[];
  isFinal(status: string): status is FinalStatus;
  estimateRemaining(job: Job, nowMs?: number): number | null;
  describeEta(seconds: number | null): string;
  Countdown: typeof Countdown;
}

declare const jobcast: Jobcast;
export default jobcast;

export declare const client: Jobcast["client"];
export declare const FINAL_STATUSES: FinalStatus[];
export declare const isFinal: Jobcast["isFinal"];
export declare const estimateRemaining: Jobcast["estimateRemaining"];
export declare const describeEta: Jobcast["describeEta"];
export declare const ensureSession: Client["ensureSession"];
export declare const createSession: Client["createSession"];
export declare const jobTypes: Client["jobTypes"];
export declare const submit: Client["submit"];
export declare const getJob: Client["getJob"];
export declare const listJobs: Client["listJobs"];
export declare const cancel: Client["cancel"];
export declare const retry: Client["retry"];
export declare const answer: Client["answer"];
export declare const pause: Client["pause"];
export declare const resume: Client["resume"];
export declare const start: Client["start"];
export declare const updateDraft: Client["updateDraft"];
export declare const watch: Client["watch"];
export declare const feed: Client["feed"];
export declare const submitBatch: Client["submitBatch"];
export declare const getBatch: Client["getBatch"];
export declare const watchBatch: Client["watchBatch"];

/** Why an element cannot follow its job, and what to fix. */
export interface ElementError {
  code: string; // "not_found", "no_credential", "token_expired", "token_refused", "origin_refused", ...
  status: number;
  title: string;
  message: string;
}

/** <job-progress job-id="…" | batch-id="…" server="…" token="…" create-session>. */
export interface JobProgressElement extends HTMLElement {
  /** The browser token it calls with (the property keeps it out of the DOM). */
  token: string | null;
  /** The job as last seen. */
  readonly job: Job | null;
}

export interface JobProgressEventMap {
  "job-progress:event": CustomEvent<{ event: JobEvent; job: Job }>;
  "job-progress:state": CustomEvent<{ state: WatchState }>;
  "job-progress:input": CustomEvent<{ request: InputRequest | null; job: Job }>;
  "job-progress:stream": CustomEvent<{ chunk: StreamChunk; text: string; job: Job }>;
  "job-progress:metadata": CustomEvent<{
    changed: Record<string, unknown>;
    metadata: Record<string, unknown>;
    job: Job;
  }>;
  "job-progress:batch": CustomEvent<{ batch: Batch }>;
  "job-progress:done": CustomEvent<{ job?: Job; already_ended?: boolean; batch?: Batch }>;
  "job-progress:error": CustomEvent<ElementError>;
}

export interface ToastOptions {
  kind?: "success" | "error" | "info";
  title: string;
  detail?: string;
  sticky?: boolean;
}

/** <job-toasts server="…" token="…" tag="…" started>: toasts for the jobs of a feed
 * (with `started`, one when a job starts running too). */
export interface JobToastsElement extends HTMLElement {
  token: string | null;
  show(options: ToastOptions): HTMLElement;
}

export interface JobToastsEventMap {
  "job-toasts:toast": CustomEvent<{
    job_id: string;
    kind: "success" | "error" | "info";
    title: string;
    detail: string;
  }>;
  "job-toasts:error": CustomEvent<WatchError>;
}

declare global {
  interface Window {
    /** Set by the classic script, jobcast.js. */
    jobcast: Jobcast;
  }
  interface HTMLElementTagNameMap {
    "job-progress": JobProgressElement;
    "job-toasts": JobToastsElement;
  }
  interface HTMLElementEventMap extends JobProgressEventMap, JobToastsEventMap {}
}
