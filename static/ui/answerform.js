/*
 * The form for a waiting job's question, built from the JSON schema of its answer
 * (the job view's input_request): yes/no, text, choices (a select), numbers, and
 * arrays of choices (a checkbox each, such as 40 restaurants to pick from). It sends
 * POST /api/jobs/{id}/input; a 422 marks the fields its details name
 * ("answer.picks"), a 409 says the question was answered already or is gone.
 */

import { plainInput, typeOf } from "./fields.js";
import { humanize, t } from "./format.js";

/** The choices of a schema: enum values, or oneOf/anyOf of consts (with titles). */
function choicesOf(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => ({ value: v, label: String(v) }));
  const variants = schema.oneOf || schema.anyOf;
  if (Array.isArray(variants) && variants.length && variants.every((v) => v && "const" in v)) {
    return variants.map((v) => ({ value: v.const, label: v.title || String(v.const) }));
  }
  return null;
}

function kindOf(schema) {
  if (choicesOf(schema)) return "choice";
  const type = typeOf(schema);
  if (type === "array") return choicesOf(schema.items) ? "choices" : "lines";
  if (["boolean", "string", "number", "integer"].includes(type)) return type;
  return "json";
}

export class AnswerForm {
  /** options: onAnswer(jobId, answer, step) → Promise (rejects with the API's error). */
  constructor(options) {
    this.options = options;
    this.box = document.getElementById("job-input");
    this.prompt = document.getElementById("input-prompt");
    this.expires = document.getElementById("input-expires");
    this.form = document.getElementById("input-form");
    this.fieldsBox = document.getElementById("input-answer-fields");
    this.error = document.getElementById("input-error");
    this.submit = document.getElementById("input-submit");
    this.key = null; // job id and step of the form shown
    this.fields = [];
    this.jobId = null;
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
  }

  /** Show the form while the job waits; hide it otherwise. */
  render(job) {
    const request = job && job.status === "waiting" ? job.input_request : null;
    // the question answered (here or anywhere) takes the focus it held with it: it goes on
    const hadFocus = !request && !this.box.hidden && this.box.contains(document.activeElement);
    this.box.hidden = !request;
    if (hadFocus && this.options.onFocusLost) this.options.onFocusLost();
    if (!request) {
      this.key = null;
      return;
    }
    const key = job.id + ":" + request.step;
    if (key === this.key) return; // keep what the person typed
    this.key = key;
    this.jobId = job.id;
    this.step = request.step;
    this.prompt.textContent = request.prompt || t("input.default_prompt");
    this.expires.hidden = !request.expires_at;
    if (request.expires_at) {
      const then = window.jobcast.i18n.date(request.expires_at);
      this.expires.textContent = t(request.on_timeout === "default" ? "input.expires_default" : "input.expires_fail", { at: then });
    }
    this.build(request.schema || {});
    this.showError("");
  }

  build(schema) {
    this.fieldsBox.textContent = "";
    this.fields = [];
    const props = schema.type === "object" || schema.properties ? schema.properties || {} : null;
    if (!props) {
      this.fields.push(this.field("", schema, true));
    } else {
      const required = new Set(schema.required || []);
      // Stored schemas lose their key order (jsonb): required fields come first.
      const names = Object.keys(props).sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
      for (const name of names) this.fields.push(this.field(name, props[name], required.has(name)));
    }
    for (const f of this.fields) this.fieldsBox.appendChild(f.wrap);
  }

  field(name, schema, required) {
    const kind = kindOf(schema);
    const id = "answer-" + (name || "value");
    const wrap = document.createElement(kind === "choices" ? "fieldset" : "div");
    wrap.className = "field" + (kind === "boolean" ? " field-check" : "") + (kind === "choices" ? " field-choices" : "");
    wrap.dataset.field = name;
    const label = document.createElement(kind === "choices" ? "legend" : "label");
    label.textContent = schema.title || (name ? humanize(name) : t("input.answer"));
    if (kind !== "choices") label.htmlFor = id;
    const note = document.createElement("p");
    note.className = "field-error";
    note.id = id + "-error";
    note.hidden = true;
    let input = null;
    const boxes = [];
    if (kind === "choices") {
      const list = document.createElement("div");
      list.className = "choice-list";
      const chosen = new Set((schema.default || []).map((v) => JSON.stringify(v)));
      choicesOf(schema.items).forEach((choice, i) => {
        const item = document.createElement("label");
        item.className = "choice";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = name;
        box.id = id + "-" + i;
        box.value = JSON.stringify(choice.value);
        box.checked = chosen.has(box.value);
        const text = document.createElement("span");
        text.textContent = choice.label;
        item.append(box, text);
        list.appendChild(item);
        boxes.push(box);
      });
      const tools = document.createElement("p");
      tools.className = "choice-tools";
      const count = document.createElement("span");
      count.className = "choice-count";
      const all = document.createElement("button");
      all.type = "button";
      all.className = "button button-ghost button-small";
      all.textContent = t("input.select_all");
      const none = all.cloneNode();
      none.textContent = t("input.clear");
      const recount = () => {
        count.textContent = t("input.selected", { n: boxes.filter((b) => b.checked).length, of: boxes.length });
      };
      all.addEventListener("click", () => { boxes.forEach((b) => (b.checked = true)); recount(); });
      none.addEventListener("click", () => { boxes.forEach((b) => (b.checked = false)); recount(); });
      list.addEventListener("change", recount);
      recount();
      tools.append(count, all, none);
      wrap.append(label, tools, list, note);
    } else {
      if (kind === "choice") {
        input = document.createElement("select");
        if (!required) input.appendChild(new Option("—", ""));
        choicesOf(schema).forEach((c, i) => input.appendChild(new Option(c.label, String(i))));
        if (schema.default !== undefined) {
          const at = choicesOf(schema).findIndex((c) => JSON.stringify(c.value) === JSON.stringify(schema.default));
          if (at !== -1) input.value = String(at);
        }
      } else if (kind === "lines" || kind === "json" || (kind === "string" && (schema.maxLength || 0) > 200)) {
        input = document.createElement("textarea");
        input.rows = kind === "json" ? 4 : 3;
        if (kind === "json") input.spellcheck = false;
      } else {
        input = plainInput(kind, schema);
      }
      if (kind !== "boolean" && kind !== "choice" && schema.default !== undefined && schema.default !== null) {
        input.value = kind === "json" ? JSON.stringify(schema.default) : kind === "lines" ? schema.default.join("\n") : String(schema.default);
      }
      input.id = id;
      input.name = name || "answer";
      input.setAttribute("aria-describedby", note.id);
      if (kind === "boolean") wrap.append(input, label, note);
      else wrap.append(label, input, note);
    }
    if (schema.description) {
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.textContent = schema.description;
      wrap.insertBefore(hint, note);
    }
    return { name, kind, schema, required, input, boxes, wrap, note };
  }

  /** The answer the fields hold; throws an Error naming the field at fault. */
  value() {
    const read = (f) => {
      if (f.kind === "choices") {
        const picked = f.boxes.filter((b) => b.checked).map((b) => JSON.parse(b.value));
        const least = Number(f.schema.minItems) || 0;
        if (picked.length < least) throw this.fieldError(f, t("input.at_least", { count: least }));
        if (f.schema.maxItems != null && picked.length > f.schema.maxItems) {
          throw this.fieldError(f, t("input.at_most", { count: f.schema.maxItems }));
        }
        return picked;
      }
      if (f.kind === "boolean") return f.input.checked;
      const raw = f.input.value.trim();
      if (f.kind === "choice") return raw === "" ? undefined : choicesOf(f.schema)[Number(raw)].value;
      if (raw === "") return f.kind === "string" && f.required ? "" : undefined;
      if (f.kind === "number" || f.kind === "integer") {
        const n = Number(raw);
        if (!Number.isFinite(n)) throw this.fieldError(f, t("input.number"));
        return n;
      }
      if (f.kind === "lines") return raw.split("\n").map((l) => l.trim()).filter(Boolean);
      if (f.kind === "json") {
        try {
          return JSON.parse(raw);
        } catch (_) {
          throw this.fieldError(f, t("input.json"));
        }
      }
      return raw;
    };
    if (this.fields.length === 1 && this.fields[0].name === "") return read(this.fields[0]);
    const answer = {};
    for (const f of this.fields) {
      const v = read(f);
      if (v !== undefined) answer[f.name] = v;
    }
    return answer;
  }

  fieldError(field, message) {
    this.markField(field.name, message);
    return new Error((field.name ? humanize(field.name) + ": " : "") + message);
  }

  markField(name, message) {
    const field = this.fields.find((f) => f.name === name) || (this.fields.length === 1 ? this.fields[0] : null);
    if (!field) return false;
    field.wrap.classList.add("invalid");
    field.note.textContent = message;
    field.note.hidden = false;
    (field.input || field.boxes[0] || field.wrap).setAttribute("aria-invalid", "true");
    return true;
  }

  clearMarks() {
    for (const f of this.fields) {
      f.wrap.classList.remove("invalid");
      f.note.hidden = true;
      f.note.textContent = "";
      (f.input || f.boxes[0] || f.wrap).removeAttribute("aria-invalid");
    }
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  async send() {
    if (!this.jobId || this.busy) return;
    this.clearMarks();
    this.showError("");
    let answer;
    try {
      answer = this.value();
    } catch (err) {
      this.showError(err.message);
      return;
    }
    this.busy = true;
    this.submit.disabled = true;
    this.submit.textContent = t("input.sending");
    try {
      await this.options.onAnswer(this.jobId, answer, this.step);
      this.box.hidden = true;
    } catch (err) {
      const details = err && err.details && Array.isArray(err.details.details) ? err.details.details : [];
      let marked = 0;
      for (const d of details) {
        const name = String(d.field || "").replace(/^answer\.?/, "").split(".")[0];
        if (this.markField(name, d.message || t("input.invalid"))) marked += 1;
      }
      if (err && err.status === 409) this.showError(t("input.gone"));
      else this.showError(marked ? t("input.check") : (err && err.message) || t("input.failed"));
    } finally {
      this.busy = false;
      this.submit.disabled = false;
      this.submit.textContent = t("input.send");
    }
  }
}
