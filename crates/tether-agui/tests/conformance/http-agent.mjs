#!/usr/bin/env node
// Drives tether's durable AG-UI run route with HttpAgent of @ag-ui/client 1.0.0.
//
// Usage: node http-agent.mjs BASE_URL
//
// The server's agent streams a message, proposes a tool call and asks for
// approval, which ends its first run with an `interrupt` outcome. The script
// then answers the interrupt with `resume[]` in a second run and checks that
// the agent continued; it checks that a second concurrent run on a thread is
// refused with 409; and that an interrupt answered `cancelled` after its
// deadline lets the thread continue. Prints one JSON line; exits 1 on failure.

import { HttpAgent } from "@ag-ui/client";

const base = process.argv[2];
if (!base) {
  console.error("usage: node http-agent.mjs BASE_URL");
  process.exit(2);
}
const url = `${base}/api/agui/run`;
const report = { ok: false, steps: [] };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function collect(agent, options, extra = {}) {
  const types = [];
  return agent
    .runAgent(options, { onEvent: ({ event }) => void types.push(event.type), ...extra })
    .then((result) => ({ types, result }));
}

function lastAssistantText(agent) {
  const texts = agent.messages.filter((m) => m.role === "assistant" && typeof m.content === "string");
  return texts.length ? texts[texts.length - 1].content : "";
}

async function interruptRoundTrip() {
  const agent = new HttpAgent({ url, threadId: "node-thread-1" });
  agent.addMessage({ id: "user-1", role: "user", content: "Please delete /tmp/x" });

  const first = await collect(agent, { runId: "node-run-1" });
  check(first.types[0] === "RUN_STARTED", `first run starts with ${first.types[0]}`);
  check(first.types.at(-1) === "RUN_FINISHED", `first run ends with ${first.types.at(-1)}`);
  check(agent.pendingInterrupts.length === 1, `pending interrupts: ${agent.pendingInterrupts.length}`);
  const interrupt = agent.pendingInterrupts[0];
  check(interrupt.toolCallId === "tool-1", `interrupt toolCallId ${interrupt.toolCallId}`);
  check(
    typeof interrupt.expiresAt === "string" && !Number.isNaN(Date.parse(interrupt.expiresAt)),
    `interrupt expiresAt ${interrupt.expiresAt}`,
  );
  const streamed = agent.messages.find((m) => m.role === "assistant" && m.toolCalls?.length);
  check(streamed?.content === "I can delete /tmp/x for you.", `streamed text: ${streamed?.content}`);
  report.steps.push({ run: 1, types: first.types, interrupt });

  const second = await collect(agent, {
    runId: "node-run-2",
    resume: [{ interruptId: interrupt.id, status: "resolved", payload: { approved: true } }],
  });
  check(second.types[0] === "RUN_STARTED", `second run starts with ${second.types[0]}`);
  check(second.types.includes("TOOL_CALL_RESULT"), "second run carries the tool result");
  check(agent.pendingInterrupts.length === 0, "no interrupt pending after the resume");
  const text = lastAssistantText(agent);
  check(text === "Approved: deleted /tmp/x.", `the agent continued with: ${text}`);
  report.steps.push({ run: 2, types: second.types, text });
}

async function concurrentRunIsRefused() {
  const a = new HttpAgent({ url, threadId: "node-thread-2" });
  const b = new HttpAgent({ url, threadId: "node-thread-2" });
  const first = collect(a, { runId: "node-run-a", forwardedProps: { tokenDelayMs: 150 } });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const second = await collect(b, { runId: "node-run-b" }).then(
    () => "resolved",
    (err) => String(err?.message ?? err),
  );
  check(second.includes("409"), `the concurrent run was answered: ${second}`);
  const done = await first;
  check(done.types.at(-1) === "RUN_FINISHED", "the first run still finished");
  // Leave the thread's agent without an answer: its approval is cancelled below.
  const cancel = await collect(a, {
    runId: "node-run-c",
    resume: [{ interruptId: a.pendingInterrupts[0].id, status: "cancelled" }],
  });
  check(lastAssistantText(a) === "Cancelled: kept /tmp/x.", `after cancel: ${lastAssistantText(a)}`);
  report.steps.push({ concurrent: second, cancel: cancel.types });
}

async function cancelledAfterDeadlineContinues() {
  const agent = new HttpAgent({ url, threadId: "node-thread-3" });
  await collect(agent, { runId: "node-run-x", forwardedProps: { approvalTimeoutMs: 300 } });
  check(agent.pendingInterrupts.length === 1, "an interrupt is pending");
  await new Promise((resolve) => setTimeout(resolve, 800));
  const interrupt = agent.pendingInterrupts[0];
  // The client itself refuses `resolved` for an expired interrupt.
  const refused = await collect(agent, {
    runId: "node-run-y",
    resume: [{ interruptId: interrupt.id, status: "resolved", payload: { approved: true } }],
  }).then(
    () => "resolved",
    (err) => String(err?.message ?? err),
  );
  check(refused.includes("expired"), `a late resolved answer: ${refused}`);
  const late = await collect(agent, {
    runId: "node-run-z",
    resume: [{ interruptId: interrupt.id, status: "cancelled" }],
  });
  check(late.types.at(-1) === "RUN_FINISHED", "the thread continued");
  const text = lastAssistantText(agent);
  check(text === "The approval timed out; nothing was deleted.", `after expiry: ${text}`);
  report.steps.push({ expired: refused, late: late.types, text });
}

try {
  await interruptRoundTrip();
  await concurrentRunIsRefused();
  await cancelledAfterDeadlineContinues();
  report.ok = true;
} catch (err) {
  report.error = String(err?.stack ?? err);
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
