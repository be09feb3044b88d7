/*
 * The input fields of a job type, built from its JSON schema (GET /api/job-types):
 * numbers, integers, strings, enums (nullable or not) and booleans get a field
 * each, named after the property; a type whose input has other shapes gets one
 * JSON box instead. The first field is shown, the others sit under "More options".
 * A property named upload_ids (a list of upload ids) becomes a file picker: the chosen
 * files are sent to POST /api/uploads when the form is submitted, and their ids used.
 *
 * Labels, hints and choices may come from the catalogue, per job type:
 * type.<type>.field.<name>, type.<type>.field.<name>.hint and
 * type.<type>.field.<name>.option.<value>, over the schema's title, description and values.
 */

import { plainInput, typeOf } from "./fields.js";
import { humanize, t } from "./format.js";

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
    const message = body && body.error ? body.error.message : t("upload.failed");
    throw new Error(t("upload.error", { reason: message }));
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

  /** Build the fields for one job type's input schema (`type` names it, for its words). */
  render(schema, type) {
    this.type = type || null;
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
        summary.textContent = t("form.more");
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
    label.textContent = this.fieldText(name, "", schema.title && schema.title !== generated ? schema.title : humanize(name));
    if (kind === "number" && /duration|seconds|_s$/i.test(name)) {
      const unit = document.createElement("span");
      unit.className = "unit";
      unit.textContent = " " + t("form.seconds");
      label.appendChild(unit);
    }
    let input;
    if (kind === "files") {
      input = document.createElement("input");
      input.type = "file";
      input.multiple = true;
      input.accept = ".csv,text/csv,text/plain";
      label.textContent = t("upload.label");
    } else if (kind === "enum") {
      const { values, nullable } = enumOf(schema);
      input = document.createElement("select");
      if (nullable || !isRequired) {
        const none = document.createElement("option");
        none.value = "";
        none.textContent = t("value.none_choice");
        input.appendChild(none);
      }
      for (const value of values) {
        const opt = document.createElement("option");
        opt.value = String(value);
        opt.textContent = this.fieldText(name, "option." + value, String(value));
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
      kind === "files" ? t("upload.hint") : this.fieldText(name, "hint", schema.description);
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
    return { name, kind, input, wrap, required: isRequired, label: label.firstChild.textContent };
  }

  /** The catalogue's label ("") or hint ("hint") for this type's field, else the schema's own. */
  fieldText(name, what, own) {
    const catalogue = window.jobcast && window.jobcast.i18n;
    const key = "type." + this.type + ".field." + name + (what ? "." + what : "");
    return (this.type && catalogue && catalogue.maybe(key)) || own;
  }

  renderJson(schema) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = this.prefix + "input-json";
    label.textContent = t("form.json");
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
        throw new Error(t("form.bad_json"));
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error(t("form.not_object"));
      }
      return parsed;
    }
    const input = {};
    for (const f of this.fields) {
      const el = f.input;
      if (f.kind === "files") {
        if (!el.files || el.files.length === 0) {
          this.markInvalid(f.name);
          throw new Error(t("upload.none"));
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
          throw new Error(t("form.required", { field: f.label }));
        }
        continue;
      }
      if (f.kind === "number" || f.kind === "integer") {
        const n = Number(raw);
        if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n))) {
          this.markInvalid(f.name);
          throw new Error(t(f.kind === "integer" ? "form.integer" : "form.number", { field: f.label }));
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
