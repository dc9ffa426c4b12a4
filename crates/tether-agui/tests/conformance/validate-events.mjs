#!/usr/bin/env node
// Validates AG-UI events against the official 1.0 zod schemas of @ag-ui/core.
//
// Usage:
//   node validate-events.mjs [--strict] [--coverage] [--client] [--invalid]
//                            [--schema NAME] [FILE...]
//
// Each FILE (or stdin when no FILE is given, or FILE is "-") holds JSON Lines:
// one JSON value per line; blank lines are skipped. Every line is parsed with
// the schema (default `EventSchema`, the discriminated union of every event)
// and reported as
//   OK   <file>:<line> <TYPE>
//   ERR  <file>:<line> <TYPE>: <path>: <message>; ...
//
// --strict    also fail a line when the client's enforcement stage would strip
//             material from it (unknown properties, unrecognised union
//             members). The 1.0 schemas are loose objects, so such lines parse,
//             but the client drops that material with a warning.
// --coverage  fail unless every 1.0 event type occurs at least once.
// --client    judge each event as the client's per-event stages do instead of
//             by the bare schema: the always-on CompatibilityBoundary (which
//             turns the legacy nulls into absent fields) and then
//             enforceEvents (which strips unknown material, drops unknown
//             event types with a warning, and validates the rest). Sequence
//             rules are not applied; check-stream.mjs does that.
// --invalid   expect every line to be rejected: a rejected line is reported
//             `OK ... rejected: <why>`, an accepted one `ERR ... accepted`.
// --schema    validate against another schema exported by @ag-ui/core/schemas,
//             e.g. RunAgentInputSchema or MessageSchema.
//
// Exit status: 0 when every line is OK, 1 otherwise, 2 on usage errors.

import { readFileSync } from "node:fs";
import { EventType } from "@ag-ui/core";
import * as schemas from "@ag-ui/core/schemas";
import { CompatibilityBoundary, enforceEvents, enforceOutgoingInput } from "@ag-ui/client";
import { lastValueFrom, of, toArray } from "rxjs";

const args = process.argv.slice(2);
let strict = false;
let coverage = false;
let client = false;
let expectInvalid = false;
let schemaName = "EventSchema";
const files = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--strict") strict = true;
  else if (arg === "--coverage") coverage = true;
  else if (arg === "--client") client = true;
  else if (arg === "--invalid") expectInvalid = true;
  else if (arg === "--schema") schemaName = args[++i];
  else if (arg === "--help" || arg === "-h") {
    console.log(
      "usage: node validate-events.mjs [--strict] [--coverage] [--client] [--invalid] [--schema NAME] [FILE...]",
    );
    process.exit(0);
  } else files.push(arg);
}
if (files.length === 0) files.push("-");

const schema = schemas[schemaName];
if (!schema || typeof schema.safeParse !== "function") {
  console.error(`unknown schema '${schemaName}' (see the exports of @ag-ui/core/schemas)`);
  process.exit(2);
}
const isEventSchema = schema === schemas.EventSchema;
if (client && !isEventSchema) {
  console.error("--client judges events only; it cannot be combined with --schema");
  process.exit(2);
}

function formatIssues(error) {
  return error.issues
    .map((issue) => `/${issue.path.join("/")}: ${issue.message}`)
    .join("; ");
}

// The client's enforcement stage reports every removal through console.warn;
// capture those lines instead of letting them reach the terminal.
async function strippedMaterial(value) {
  const warnings = [];
  const original = console.warn;
  console.warn = (...parts) => warnings.push(parts.map(String).join(" "));
  try {
    if (isEventSchema) {
      await lastValueFrom(of(value).pipe(enforceEvents(), toArray()));
    } else if (schema === schemas.RunAgentInputSchema) {
      enforceOutgoingInput(value);
    }
  } catch {
    // A schema failure is reported by safeParse already.
  } finally {
    console.warn = original;
  }
  return warnings;
}

// What the client's per-event stages make of one event: the events that come
// out (none when an unknown type is dropped) and the warnings printed.
async function throughClient(value) {
  const warnings = [];
  const original = console.warn;
  console.warn = (...parts) => warnings.push(parts.map(String).join(" "));
  try {
    const input = { threadId: "t", runId: "r", messages: [], tools: [], context: [] };
    const events = await lastValueFrom(
      new CompatibilityBoundary()
        .run(input, { run: () => of(value) })
        .pipe(enforceEvents(), toArray()),
    );
    return { ok: true, events, warnings };
  } catch (err) {
    const message = Array.isArray(err?.issues) ? formatIssues(err) : String(err?.message ?? err);
    return { ok: false, error: message.replace(/\s*\n\s*/g, " "), warnings };
  } finally {
    console.warn = original;
  }
}

const seenTypes = new Set();
let ok = 0;
let failed = 0;

// Every verdict goes through here, so --invalid can turn it around.
function report(where, label, accepted, detail) {
  if (expectInvalid) {
    if (accepted) {
      console.log(`ERR  ${where} ${label}: accepted${detail ? ` ${detail}` : ""}`);
      failed++;
    } else {
      console.log(`OK   ${where} ${label}: rejected: ${detail}`);
      ok++;
    }
  } else if (accepted) {
    console.log(`OK   ${where} ${label}${detail ? ` ${detail}` : ""}`);
    ok++;
  } else {
    console.log(`ERR  ${where} ${label}: ${detail}`);
    failed++;
  }
}

for (const file of files) {
  const text = file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  const name = file === "-" ? "<stdin>" : file;
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    if (line.trim() === "") continue;
    const where = `${name}:${index + 1}`;
    let value;
    try {
      value = JSON.parse(line);
    } catch (err) {
      report(where, "-", false, `not JSON: ${err.message}`);
      continue;
    }
    const label =
      value && typeof value === "object" && typeof value.type === "string"
        ? value.type
        : value && typeof value === "object" && typeof value.role === "string"
          ? value.role
          : "-";
    if (client) {
      const outcome = await throughClient(value);
      const notes = outcome.warnings.length > 0 ? ` (warnings: ${outcome.warnings.join(" | ")})` : "";
      if (!outcome.ok) {
        report(where, label, false, `${outcome.error}${notes}`);
      } else if (strict && outcome.warnings.length > 0) {
        report(where, label, false, `the client would change or drop material${notes}`);
      } else {
        for (const event of outcome.events) seenTypes.add(event.type);
        const dropped = outcome.events.length === 0 ? "(dropped)" : "";
        report(where, label, true, `${dropped}${notes}`.trim());
      }
      continue;
    }
    const result = schema.safeParse(value);
    if (!result.success) {
      report(where, label, false, formatIssues(result.error));
      continue;
    }
    if (isEventSchema) seenTypes.add(value.type);
    const warnings = await strippedMaterial(value);
    if (warnings.length > 0 && strict) {
      report(where, label, false, `the client would strip material: ${warnings.join(" | ")}`);
      continue;
    }
    report(where, label, true, warnings.length > 0 ? `(warnings: ${warnings.join(" | ")})` : "");
  }
}

if (coverage && isEventSchema) {
  const missing = Object.values(EventType).filter((type) => !seenTypes.has(type));
  if (missing.length > 0) {
    console.log(`ERR  coverage: no example of ${missing.join(", ")}`);
    failed++;
  } else {
    console.log(`OK   coverage: all ${Object.values(EventType).length} event types present`);
  }
}

console.log(`${ok} ok, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
