// TetherAgent against the real @ag-ui/client 1.0.0: connectAgent() and runAgent() put every
// stream through the client's own enforceEvents and verifyEvents, and each observable is
// checked again here on its own with verifyEvents.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastValueFrom, from, toArray } from 'rxjs';
import { verifyEvents } from '@ag-ui/client';
import { TetherAgent } from '../src/agui.js';
import { startHub, publish, hubMissing, IN_CI } from '../test-support/hub.js';
import { startExample, exampleMissing, INTRO } from '../test-support/example.js';
import { startProxy } from '../test-support/proxy.js';
import { waitFor } from '../test-support/util.js';

const missingHub = hubMissing();
const skipHub = missingHub && !IN_CI ? missingHub : false;
const missingExample = exampleMissing();
const skipExample = missingExample && !IN_CI ? missingExample : false;

const WORDS = 'one two three four five six seven eight nine ten eleven twelve '.split(/(?<= )/).filter(Boolean);

/** A Storage stand-in: what a page's sessionStorage keeps across a reload. */
function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

/** Records every event the agent applied, one list per observable (`onRunInitialized`). */
function recorder() {
  const rec = { observables: [] };
  rec.subscriber = {
    onRunInitialized: () => {
      rec.observables.push([]);
    },
    onEvent: ({ event }) => {
      rec.observables.at(-1).push(event);
    },
  };
  rec.all = () => rec.observables.flat();
  return rec;
}

async function verified(events) {
  return lastValueFrom(from(events).pipe(verifyEvents(), toArray()));
}

function textOf(agent, id) {
  return agent.messages.find((m) => m.id === id)?.content;
}

/** The deltas of `messageId` as the observable carried them (a prelude's catch-up included). */
function deltas(events, id) {
  return events.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT' && e.messageId === id).map((e) => e.delta);
}

const run = (thread) => ({ type: 'RUN_STARTED', threadId: thread, runId: 'r1' });
const finished = (thread) => ({ type: 'RUN_FINISHED', threadId: thread, runId: 'r1' });
const start = { type: 'TEXT_MESSAGE_START', messageId: 'm1', role: 'assistant' };
const content = (delta) => ({ type: 'TEXT_MESSAGE_CONTENT', messageId: 'm1', delta });
const end = { type: 'TEXT_MESSAGE_END', messageId: 'm1' };

/** A fetch whose `n`th call waits for `open()`: holds a reconnect while the test publishes. */
function gatedFetch(n) {
  let calls = 0;
  let open;
  const gate = new Promise((r) => (open = r));
  return {
    fetch: async (url, init) => {
      if (++calls === n) await gate;
      return fetch(url, init);
    },
    calls: () => calls,
    open: () => open(),
  };
}

async function hubAndProxy(t, args = []) {
  assert.ok(!missingHub, missingHub);
  const hub = await startHub(args);
  const proxy = await startProxy(hub.port);
  t.after(async () => {
    await proxy.close();
    await hub.stop();
  });
  return { hub, proxy };
}

test('connect(): a run read halfway, the connection cut, continues with no gap and passes verifyEvents', { skip: skipHub, timeout: 30_000 }, async (t) => {
  const { hub, proxy } = await hubAndProxy(t);
  const thread = 'agent-cut';
  await publish(hub.url, thread, [run(thread), start, ...WORDS.slice(0, 3).map(content)]);
  const agent = new TetherAgent({ url: proxy.url, threadId: thread, storage: memoryStorage(), random: () => 0 });
  const rec = recorder();
  const done = agent.connectAgent(undefined, rec.subscriber);
  await waitFor(() => deltas(rec.all(), 'm1').length >= 1, 10_000, 'the prelude');
  for (const w of WORDS.slice(3, 6)) {
    await publish(hub.url, thread, [content(w)]);
  }
  await waitFor(() => deltas(rec.all(), 'm1').join('') === WORDS.slice(0, 6).join(''), 10_000, 'six words');
  const idBeforeCut = agent.lastEventId;
  proxy.cutAll();
  await publish(hub.url, thread, WORDS.slice(6).map(content));
  await publish(hub.url, thread, [end, finished(thread)]);
  await done;

  assert.equal(rec.observables.length, 1, 'an exact resume stays in one observable');
  const events = rec.observables[0];
  await verified(events);
  assert.equal(deltas(events, 'm1').join(''), WORDS.join(''), 'no token lost or repeated');
  assert.equal(textOf(agent, 'm1'), WORDS.join(''));
  assert.equal(events.filter((e) => e.type === 'RUN_STARTED').length, 1);
  const gets = proxy.requests.filter((q) => q.method === 'GET');
  assert.equal(gets.length, 2);
  assert.match(gets[0].path, /[?&]prelude=always/);
  assert.doesNotMatch(gets[1].path, /prelude/, 'an exact resume asks for no prelude');
  assert.equal(gets[1].headers['last-event-id'], idBeforeCut);
  assert.deepEqual(await agent.getCapabilities(), { transport: { streaming: true, resumable: true } });
});

test('connect(): after the history was evicted, the resync ends the observable and a fresh one passes on its own', { skip: skipHub, timeout: 30_000 }, async (t) => {
  const { hub, proxy } = await hubAndProxy(t, ['--ring-events', '4']);
  const thread = 'agent-resync';
  await publish(hub.url, thread, [run(thread), start, content(WORDS[0])]);
  const gate = gatedFetch(2);
  const states = [];
  const agent = new TetherAgent({
    url: proxy.url,
    threadId: thread,
    storage: memoryStorage(),
    random: () => 0,
    fetch: gate.fetch,
    onConnection: (c) => states.push(c.state),
  });
  const rec = recorder();
  const done = agent.connectAgent(undefined, rec.subscriber);
  await publish(hub.url, thread, [content(WORDS[1])]);
  await waitFor(() => deltas(rec.all(), 'm1').join('') === WORDS.slice(0, 2).join(''), 10_000, 'two words');
  proxy.cutAll();
  await waitFor(() => gate.calls() === 2, 10_000, 'the reconnect');
  // Eight events while the reconnect waits: the ring of four no longer holds the client's id.
  for (const w of WORDS.slice(2, 10)) await publish(hub.url, thread, [content(w)]);
  gate.open();
  await waitFor(() => rec.observables.length === 2, 10_000, 'a fresh observable');
  await publish(hub.url, thread, [...WORDS.slice(10).map(content), end, finished(thread)]);
  await done;

  assert.equal(rec.observables.length, 2);
  const [before, after] = rec.observables;
  await verified(before);
  await verified(after);
  assert.equal(before.filter((e) => e.type === 'RUN_STARTED').length, 1, 'the prelude after the resync is not in the first');
  assert.ok(!before.some((e) => e.type === 'RUN_FINISHED'));
  assert.equal(after[0].type, 'RUN_STARTED', 'the fresh observable starts from the prelude');
  assert.equal(textOf(agent, 'm1'), WORDS.join(''), 'the snapshot and the live tail make the whole text');
  assert.ok(states.includes('resynced'));
  const gets = proxy.requests.filter((q) => q.method === 'GET');
  assert.equal(gets.length, 3);
  assert.doesNotMatch(gets[1].path, /prelude/);
  assert.ok(gets[1].headers['last-event-id']);
  assert.match(gets[2].path, /[?&]prelude=always/, 'the fresh connect starts from the prelude');
});

test('connect(): a reload (a new TetherAgent with the stored id) reattaches mid-run', { skip: skipHub, timeout: 30_000 }, async (t) => {
  const { hub, proxy } = await hubAndProxy(t);
  const thread = 'agent-reload';
  const storage = memoryStorage();
  await publish(hub.url, thread, [run(thread), start, content(WORDS[0])]);
  const first = new TetherAgent({ url: proxy.url, threadId: thread, storage });
  const rec1 = recorder();
  const gone = first.connectAgent(undefined, rec1.subscriber);
  await publish(hub.url, thread, [content(WORDS[1])]);
  await waitFor(() => deltas(rec1.all(), 'm1').join('') === WORDS.slice(0, 2).join(''), 10_000, 'two words');
  const stored = first.lastEventId;
  assert.ok(stored, 'the last id is kept');
  await first.detachActiveRun(); // the page goes away
  await gone;
  await publish(hub.url, thread, WORDS.slice(2, 8).map(content));

  const second = new TetherAgent({ url: proxy.url, threadId: thread, storage });
  assert.equal(second.lastEventId, stored, 'the reloaded page finds the id in storage');
  const rec2 = recorder();
  const done = second.connectAgent(undefined, rec2.subscriber);
  await waitFor(() => deltas(rec2.all(), 'm1').length >= 1, 10_000, 'the prelude');
  await publish(hub.url, thread, [...WORDS.slice(8).map(content), end, finished(thread)]);
  await done;

  await verified(rec2.observables[0]);
  assert.equal(rec2.observables.length, 1);
  assert.equal(textOf(second, 'm1'), WORDS.join(''));
  const gets = proxy.requests.filter((q) => q.method === 'GET');
  assert.equal(gets.length, 2);
  assert.match(gets[1].path, /[?&]prelude=always/);
  assert.equal(gets[1].headers['last-event-id'], stored);
});

test('run(): posts to the run route; a cut mid-run resumes in the same run, which passes verifyEvents', { skip: skipExample, timeout: 30_000 }, async (t) => {
  assert.ok(!missingExample, missingExample);
  const example = await startExample(['--token-delay-ms', '20', '--approval-secs', '60']);
  const proxy = await startProxy(example.port);
  t.after(async () => {
    await proxy.close();
    await example.stop();
  });
  proxy.cutAfter(/"delta":"cache "\}\n\n/);
  const agent = new TetherAgent({ url: proxy.url, threadId: 'agent-run', token: example.token, storage: memoryStorage(), random: () => 0 });
  const rec = recorder();
  const result = await agent.runAgent(undefined, rec.subscriber);

  assert.equal(proxy.patternCuts, 1);
  assert.equal(rec.observables.length, 1);
  const events = rec.observables[0];
  await verified(events);
  const intro = events.find((e) => e.type === 'TEXT_MESSAGE_START').messageId;
  assert.equal(deltas(events, intro).join(''), INTRO, 'no token lost or repeated');
  assert.equal(events.at(-1).type, 'RUN_FINISHED');
  assert.equal(agent.pendingInterrupts.length, 1, 'the run ends asking for approval');
  assert.ok(agent.pendingInterrupts[0].expiresAt);
  assert.ok(result.newMessages.some((m) => m.id === intro));
  const [post, get, ...more] = proxy.requests;
  assert.equal(post.method, 'POST');
  assert.match(post.path, /^\/api\/agui\/run/);
  assert.equal(get.method, 'GET');
  assert.match(get.path, /^\/api\/sse\/session\/agent-run\?/);
  assert.doesNotMatch(get.path, /prelude/);
  assert.ok(get.headers['last-event-id']);
  assert.equal(more.length, 0);
});

/** A response whose body is `text`, then a cut (`cut`) or a stream that stays open. */
function sseResponse(text, { cut = false } = {}) {
  let sent = false;
  const body = new ReadableStream({
    pull(controller) {
      // Erroring at once would discard what is queued: the cut comes on the next read.
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode(text));
      } else if (cut) {
        controller.error(new TypeError('terminated'));
      } else {
        return new Promise(() => {}); // open until cancelled
      }
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

const frame = (event, id) => `${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(event)}\n\n`;

test('runAgent(): a resync in the middle of a run ends its observable and continues through a fresh connect()', { timeout: 30_000 }, async () => {
  const thread = 'agent-run-resync';
  const requests = [];
  const responses = [
    // The run's own response, cut after two words.
    () =>
      sseResponse(
        'retry: 100\n\n' +
          frame(run(thread), 'e1-1') +
          frame(start, 'e1-2') +
          frame(content(WORDS[0]), 'e1-3') +
          frame(content(WORDS[1]), 'e1-4'),
        { cut: true },
      ),
    // The resume found the history gone: a resync inside a prelude (no ids), then an id-only frame.
    () =>
      sseResponse(
        frame(run(thread)) +
          frame({ type: 'MESSAGES_SNAPSHOT', messages: [] }) +
          frame({ type: 'CUSTOM', name: 'tether.resync', value: { reason: 'evicted', lastEventId: 'e1-4', resumeFrom: 'e1-9' } }) +
          frame(start) +
          frame(content(WORDS.slice(0, 4).join(''))) +
          'id: e1-8\n\n' +
          frame(content(WORDS[4]), 'e1-9'),
      ),
    // The fresh connect(): its prelude, then the rest of the run.
    () =>
      sseResponse(
        frame(run(thread)) +
          frame({ type: 'MESSAGES_SNAPSHOT', messages: [] }) +
          frame(start) +
          frame(content(WORDS.slice(0, 5).join(''))) +
          'id: e1-9\n\n' +
          WORDS.slice(5).map((w, i) => frame(content(w), `e1-${10 + i}`)).join('') +
          frame(end, 'e1-30') +
          frame(finished(thread), 'e1-31'),
      ),
  ];
  const agent = new TetherAgent({
    url: 'http://tether.invalid',
    threadId: thread,
    storage: memoryStorage(),
    random: () => 0,
    fetch: async (url, init) => {
      requests.push({ url: String(url), method: init.method, lastEventId: new Headers(init.headers).get('last-event-id') });
      const next = responses.shift();
      if (!next) throw new Error('no more responses');
      return next();
    },
  });
  const rec = recorder();
  await agent.runAgent(undefined, rec.subscriber);

  assert.equal(rec.observables.length, 2, 'the run, then a fresh connect');
  await verified(rec.observables[0]);
  await verified(rec.observables[1]);
  assert.deepEqual(deltas(rec.observables[0], 'm1'), WORDS.slice(0, 2), 'the resync prelude never reached the run');
  assert.equal(textOf(agent, 'm1'), WORDS.join(''));
  assert.deepEqual(
    requests.map((q) => [q.method, new URL(q.url).pathname, new URL(q.url).searchParams.get('prelude'), q.lastEventId]),
    [
      ['POST', '/api/agui/run', null, null],
      ['GET', `/api/sse/session/${thread}`, null, 'e1-4'],
      ['GET', `/api/sse/session/${thread}`, 'always', 'e1-4'],
    ],
  );
});
