/*
 * What the two forms built from a JSON schema share (inputform.js: a job type's input;
 * answerform.js: a waiting job's answer): the type a schema names, and the <input> of
 * a plain value: a checkbox, a number with its bounds, a line of text.
 */

/** The type a schema names; of a nullable one (["string", "null"]), the other type. */
export function typeOf(schema) {
  return Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
}

/** The <input> of a "boolean" (checked when its default is true), a "number" or
 *  "integer" (step and bounds from the schema), or else a string (its maxLength). */
export function plainInput(kind, schema) {
  const input = document.createElement("input");
  if (kind === "boolean") {
    input.type = "checkbox";
    input.checked = schema.default === true;
  } else if (kind === "number" || kind === "integer") {
    input.type = "number";
    input.inputMode = kind === "integer" ? "numeric" : "decimal";
    input.step = kind === "integer" ? "1" : "any";
    if (schema.minimum != null) input.min = String(schema.minimum);
    if (schema.maximum != null) input.max = String(schema.maximum);
  } else {
    input.type = "text";
    if (schema.maxLength != null) input.maxLength = schema.maxLength;
  }
  return input;
}
