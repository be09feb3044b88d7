/*
 * The input fields of a job type, built from its JSON schema (GET /api/job-types):
 * numbers, integers, strings, enums (nullable or not) and booleans get a field
 * each, named after the property; a type whose input has other shapes gets one
 * JSON box instead. The first field is shown, the others sit under "More options".
 * A property named upload_ids (a list of upload ids) becomes a file picker: the chosen
 * files are sent to POST /api/uploads when the form is submitted, and their ids used.
 */

import { plainInput, typeOf } from "./fields.js";
import { humanize } from "./format.js";

function enumOf(schema) {
  if (Array.isArray(schema.enum)) return { values: schema.enum, nullable: false };
  const variants = schema.anyOf || schema.oneOf;
  if (!Array.isArray(variants)) return null;
  const withEnum = variants.find((v) => Array.isArray(v.enum));
  if (!withEnum) return null;
  const nullable = variants.some((v) => v.type === "null");
  return { values: withEnum.enum, nullable };
}

function kindOf(schema, name) {
  if (name === "upload_ids") return "files";
  if (enumOf(schema)) return "enum";
  const type = typeOf(schema);
  if (type === "number" || type === "integer" || type === "boolean" || type === "string") return type;
  const variants = schema.anyOf || schema.oneOf;
  if (Array.isArray(variants)) {
    const plain = variants.filter((v) => v.type !== "null");
    if (plain.length === 1) return kindOf(plain[0]);
  }
  return null;
}

/** Send files to POST /api/uploads; their upload ids, in order. */
async function uploadFiles(files) {
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const response = await fetch("/api/uploads", {
    method: "POST",
    body: form,
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : "the upload failed";
    throw new Error("Upload: " + message);
  }
  return body.uploads.map((u) => u.id);
}

export class InputForm {
  /** `prefix` keeps ids apart when a page holds two forms (the draft editor: "draft-"). */
  constructor(container, prefix) {
    this.container = container;
    this.prefix = prefix || "";
    this.fields = [];
    this.json = null;
  }

  /** Build the fields for one job type's input schema. */
  render(schema) {
    this.container.textContent = "";
    this.fields = [];
    this.json = null;
    const props = (schema && schema.properties) || {};
    const names = Object.keys(props);
    const required = new Set((schema && schema.required) || []);
    if (names.some((n) => !kindOf(props[n], n))) {
      this.renderJson(schema);
      return;
    }
    let more = null;
    names.forEach((name, index) => {
      const field = this.field(name, props[name], required.has(name));
      this.fields.push(field);
      if (index === 0 || names.length <= 2) {
        this.container.appendChild(field.wrap);
        return;
      }
      if (!more) {
        more = document.createElement("details");
        more.className = "more-options";
        const summary = document.createElement("summary");
        summary.textContent = "More options";
        more.appendChild(summary);
        const inner = document.createElement("div");
        inner.className = "more-options-body";
        more.appendChild(inner);
        this.container.appendChild(more);
      }
      more.lastChild.appendChild(field.wrap);
    });
  }

  field(name, schema, isRequired) {
    const kind = kindOf(schema, name);
    const id = this.prefix + "input-" + name;
    const wrap = document.createElement("div");
    wrap.className = kind === "boolean" ? "field field-check" : "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    // A title the schema generator made from the name reads worse than the name itself.
    const generated = String(name).split("_").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
    label.textContent = schema.title && schema.title !== generated ? schema.title : humanize(name);
    if (kind === "number" && /duration|seconds|_s$/i.test(name)) {
      const unit = document.createElement("span");
      unit.className = "unit";
      unit.textContent = " (seconds)";
      label.appendChild(unit);
    }
    let input;
    if (kind === "files") {
      input = document.createElement("input");
      input.type = "file";
      input.multiple = true;
      input.accept = ".csv,text/csv,text/plain";
      label.textContent = "CSV files";
    } else if (kind === "enum") {
      const { values, nullable } = enumOf(schema);
      input = document.createElement("select");
      if (nullable || !isRequired) {
        const none = document.createElement("option");
        none.value = "";
        none.textContent = "None";
        input.appendChild(none);
      }
      for (const value of values) {
        const opt = document.createElement("option");
        opt.value = String(value);
        opt.textContent = String(value);
        input.appendChild(opt);
      }
      if (schema.default != null) input.value = String(schema.default);
    } else {
      input = plainInput(kind, schema);
      if (kind === "string" && schema.format === "uri") input.type = "url";
      if (kind !== "boolean" && schema.default != null) input.value = String(schema.default);
    }
    input.id = id;
    input.name = name;
    if (isRequired) input.required = true;
    const description =
      kind === "files" ? "Up to 5 CSV files (UTF-8), profiled column by column." : schema.description;
    if (description) {
      const hint = document.createElement("p");
      hint.className = "hint";
      hint.id = id + "-hint";
      hint.textContent = description;
      input.setAttribute("aria-describedby", hint.id);
      if (kind === "boolean") wrap.append(input, label, hint);
      else wrap.append(label, input, hint);
    } else if (kind === "boolean") {
      wrap.append(input, label);
    } else {
      wrap.append(label, input);
    }
    return { name, kind, input, wrap, required: isRequired };
  }

  renderJson(schema) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = this.prefix + "input-json";
    label.textContent = "Input (JSON)";
    const area = document.createElement("textarea");
    area.id = this.prefix + "input-json";
    area.name = "input";
    area.rows = 5;
    area.spellcheck = false;
    const example = {};
    for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
      if (prop.default !== undefined) example[name] = prop.default;
    }
    area.value = JSON.stringify(example, null, 2);
    wrap.append(label, area);
    this.container.appendChild(wrap);
    this.json = area;
  }

  /** Put values into the fields (a draft's input). */
  fill(values) {
    if (this.json) {
      this.json.value = JSON.stringify(values || {}, null, 2);
      return;
    }
    for (const f of this.fields) {
      if (!values || !(f.name in values) || f.kind === "files") continue;
      const v = values[f.name];
      if (f.kind === "boolean") f.input.checked = v === true;
      else f.input.value = v == null ? "" : String(v);
    }
  }

  /** The input object (files uploaded first), or throws an Error naming the field at fault. */
  async value() {
    for (const f of this.fields) f.input.removeAttribute("aria-invalid");
    if (this.json) {
      let parsed;
      try {
        parsed = JSON.parse(this.json.value || "{}");
      } catch (_) {
        this.json.setAttribute("aria-invalid", "true");
        throw new Error("The input is not valid JSON.");
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("The input must be a JSON object.");
      }
      return parsed;
    }
    const input = {};
    for (const f of this.fields) {
      const el = f.input;
      if (f.kind === "files") {
        if (!el.files || el.files.length === 0) {
          this.markInvalid(f.name);
          throw new Error("Choose at least one CSV file.");
        }
        input[f.name] = await uploadFiles(el.files);
        continue;
      }
      if (f.kind === "boolean") {
        input[f.name] = el.checked;
        continue;
      }
      const raw = el.value.trim();
      if (raw === "") {
        if (f.required) {
          this.markInvalid(f.name);
          throw new Error("Enter a value for " + humanize(f.name).toLowerCase() + ".");
        }
        continue;
      }
      if (f.kind === "number" || f.kind === "integer") {
        const n = Number(raw);
        if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n))) {
          this.markInvalid(f.name);
          throw new Error(humanize(f.name) + " must be " + (f.kind === "integer" ? "a whole number." : "a number."));
        }
        input[f.name] = n;
      } else {
        input[f.name] = raw;
      }
    }
    return input;
  }

  /** Flag the fields a 422 names (details: [{field: "input.duration", ...}]). */
  markInvalid(name) {
    const key = String(name).replace(/^input\./, "");
    const field = this.fields.find((f) => f.name === key);
    if (!field) return;
    field.input.setAttribute("aria-invalid", "true");
    const more = field.wrap.closest("details");
    if (more) more.open = true;
    field.input.focus();
  }
}
