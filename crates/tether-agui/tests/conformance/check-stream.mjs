#!/usr/bin/env node
// Feeds raw SSE response bodies through the official AG-UI 1.0 client.
//
// Usage:
//   node check-stream.mjs [--chunk-size N] [--status N] [--content-type T] [--quiet] FILE...
//
// Each FILE holds one response body, byte for byte as a server sent it. The
// body is checked twice:
//
// 1. As `HttpAgent.runAgent()` of @ag-ui/client sees it: the agent's fetch is
//    replaced by one that answers (by default 200 `text/event-stream`) with
//    the file's bytes, so the whole run pipeline executes unchanged: the
//    HTTP status check (runHttpRequest), the SSE parser and
//    the transport's frame check (transformHttpEventStream), the always-on
//    CompatibilityBoundary middleware, enforceEvents (schema validation and
//    stripping), transformChunks, verifyEvents and the default reducer.
// 2. Through the same exported stages composed by hand, to name the stage that
//    rejected the body: transport (status, SSE parsing, the frame check),
//    compatibility, enforceEvents, transformChunks or verifyEvents. A body
//    only the HttpAgent run rejects is reported as rejected after
//    verifyEvents.
//
// Prints `PASS <file>` or `FAIL <file>: [stage] <error>` for each file. After
// a PASS comes an indented `events:` line listing what the agent's subscribers
// received; after either, one indented `warn:` line per warning the client
// printed (stripped or dropped material). Exits 1 if any file fails, 2 on
// usage errors.
//
// --chunk-size N    deliver the body in reads of N bytes (default: one read).
// --status N        answer with this HTTP status (default 200; 204 sends no body).
// --content-type T  answer with this content type (default text/event-stream).
// --quiet           omit the indented lines.

import { readFileSync } from "node:fs";
import {
  HttpAgent,
  CompatibilityBoundary,
  enforceEvents,
  transformChunks,
  verifyEvents,
  transformHttpEventStream,
  runHttpRequest,
} from "@ag-ui/client";
import { lastValueFrom, toArray, catchError, throwError } from "rxjs";

const USAGE =
  "usage: node check-stream.mjs [--chunk-size N] [--status N] [--content-type T] [--quiet] FILE...";
const args = process.argv.slice(2);
let chunkSize = 0;
let status = 200;
let contentType = "text/event-stream";
let quiet = false;
const files = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--chunk-size") chunkSize = Number.parseInt(args[++i], 10);
  else if (arg === "--status") status = Number.parseInt(args[++i], 10);
  else if (arg === "--content-type") contentType = args[++i];
  else if (arg === "--quiet") quiet = true;
  else if (arg === "--help" || arg === "-h") {
    console.log(USAGE);
    process.exit(0);
  } else files.push(arg);
}
if (
  files.length === 0 ||
  Number.isNaN(chunkSize) ||
  chunkSize < 0 ||
  Number.isNaN(status) ||
  status < 200 ||
  status > 599
) {
  console.error(USAGE);
  process.exit(2);
}

function chunksOf(bytes) {
  if (chunkSize === 0 || chunkSize >= bytes.length) return bytes.length ? [bytes] : [];
  const chunks = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    chunks.push(bytes.subarray(offset, offset + chunkSize));
  }
  return chunks;
}

const HEADERS = { "content-type": contentType, "cache-control": "no-cache" };

function responseFor(bytes) {
  if ([204, 205, 304].includes(status)) return new Response(null, { status, headers: HEADERS });
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunksOf(bytes)) controller.enqueue(chunk);
      controller.close();
    },
  });
  return new Response(body, { status, headers: HEADERS });
}

// The client reports stripped or dropped material through console.warn and a
// failed run through console.error; both are captured per file.
async function capturingConsole(work) {
  const warnings = [];
  const { warn, error } = console;
  console.warn = (...parts) => warnings.push(parts.map(String).join(" "));
  console.error = () => {};
  try {
    return { outcome: await work(), warnings };
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

// One line per error: zod errors carry their issues as JSON in the message.
function describe(err) {
  if (err && Array.isArray(err.issues)) {
    return err.issues
      .map((issue) => `/${issue.path.join("/")}: ${issue.message}`)
      .join("; ");
  }
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, " ");
}

async function runAsHttpAgent(bytes) {
  const agent = new HttpAgent({
    url: "http://tether.invalid/agent",
    threadId: "conformance-thread",
    fetch: async () => responseFor(bytes),
  });
  const delivered = [];
  try {
    await agent.runAgent(
      { runId: "conformance-run" },
      { onEvent: ({ event }) => void delivered.push(event.type) },
    );
    return { ok: true, delivered };
  } catch (err) {
    return { ok: false, error: describe(err), delivered };
  }
}

function tagStage(stage) {
  return catchError((err) => {
    if (err && typeof err === "object" && err.stage === undefined) {
      try {
        err.stage = stage;
      } catch {
        // A frozen error keeps its message; the stage stays unknown.
      }
    }
    return throwError(() => err);
  });
}

async function runStages(bytes) {
  // runHttpRequest is the HttpAgent's own fetch wrapper; it turns the
  // response into the HEADERS and DATA events the transport parses.
  const http$ = runHttpRequest(async () => responseFor(bytes));
  const input = {
    threadId: "conformance-thread",
    runId: "conformance-run",
    messages: [],
    tools: [],
    context: [],
  };
  const transport$ = transformHttpEventStream(http$).pipe(tagStage("transport"));
  const boundary$ = new CompatibilityBoundary()
    .run(input, { run: () => transport$ })
    .pipe(tagStage("compatibility"));
  const verified$ = boundary$.pipe(
    enforceEvents(),
    tagStage("enforceEvents"),
    transformChunks(),
    tagStage("transformChunks"),
    verifyEvents(),
    tagStage("verifyEvents"),
    toArray(),
  );
  try {
    const events = await lastValueFrom(verified$);
    return { ok: true, delivered: events.map((event) => event.type) };
  } catch (err) {
    return { ok: false, stage: err?.stage ?? "unknown", error: describe(err) };
  }
}

let failures = 0;
for (const file of files) {
  let bytes;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (err) {
    console.log(`FAIL ${file}: [read] ${err.message}`);
    failures++;
    continue;
  }
  const agentRun = await capturingConsole(() => runAsHttpAgent(bytes));
  const stageRun = await capturingConsole(() => runStages(bytes));
  const agent = agentRun.outcome;
  const stages = stageRun.outcome;

  if (agent.ok && stages.ok) {
    console.log(`PASS ${file}`);
  } else if (!agent.ok && !stages.ok) {
    console.log(`FAIL ${file}: [${stages.stage}] ${agent.error}`);
    failures++;
  } else if (!agent.ok) {
    console.log(`FAIL ${file}: [HttpAgent after verifyEvents] ${agent.error}`);
    failures++;
  } else {
    console.log(
      `FAIL ${file}: [${stages.stage}] the stages rejected what HttpAgent accepted: ${stages.error}`,
    );
    failures++;
  }
  if (!quiet) {
    if (agent.ok) {
      const types = agent.delivered;
      console.log(`  events: ${types.length}${types.length ? ` (${types.join(", ")})` : ""}`);
    }
    for (const warning of agentRun.warnings) console.log(`  warn: ${warning}`);
  }
}

process.exit(failures === 0 ? 0 : 1);
