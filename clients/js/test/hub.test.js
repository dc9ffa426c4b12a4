// TetherEventSource against a real `tether serve --dev`, over real sockets, through a proxy
// that cuts connections where a reconnecting client is most likely to lose or repeat an event.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TetherEventSource } from '../src/index.js';
import { startHub, publish, hubMissing, IN_CI } from '../test-support/hub.js';
import { startProxy } from '../test-support/proxy.js';
import { record, waitFor, sleep } from '../test-support/util.js';

const missing = hubMissing();
if (missing && IN_CI) {
  test('the tether binary is there (CI=true)', () => assert.fail(missing));
}

/** A hub with `args` and a proxy in front; closes them and `sources` after the test. */
async function setup(t, args = []) {
  const hub = await startHub(args);
  const proxy = await startProxy(hub.port);
  const sources = [];
  t.after(async () => {
    for (const s of sources) s.close();
    await proxy.close();
    await hub.stop();
  });
  const open = (session, options = {}) => {
    const s = new TetherEventSource(`${proxy.url}/api/sse/session/${session}`, options);
    sources.push(s);
    return s;
  };
  return { hub, proxy, open };
}

const nums = (rec) => rec.messages.map((m) => m.n);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('against tether serve', { skip: missing || false }, () => {
  test('a cut after the id line, before the blank line: the id does not advance, the event comes once', async (t) => {
    const { hub, proxy, open } = await setup(t);
    const ids = await publish(hub.url, 'cut-id', range(1, 5).map((n) => ({ n })));
    proxy.cutAfter(new RegExp(`id: ${ids[2]}\n`)); // inside the frame of event 3
    const es = open('cut-id');
    const rec = record(es);
    await waitFor(() => es.lastEventId === ids[4], 15_000, 'the last event');
    assert.equal(proxy.patternCuts, 1);
    const reconnecting = rec.of('reconnecting');
    assert.equal(reconnecting.length, 1);
    assert.equal(reconnecting[0].lastEventIdNow, ids[1], 'the id of the cut frame must not be committed');
    assert.equal(proxy.requests.length, 2);
    assert.equal(proxy.requests[0].headers['last-event-id'], undefined);
    assert.equal(proxy.requests[1].headers['last-event-id'], ids[1]);
    assert.deepEqual(nums(rec), [1, 2, 3, 4, 5]);
    assert.deepEqual(
      rec.of('message').map((m) => m.lastEventId),
      ids,
    );
  });

  test('an id-only frame, then a cut: the reconnect resumes after it without a second resync', async (t) => {
    const { hub, proxy, open } = await setup(t, ['--ring-events', '5']);
    const ids = await publish(hub.url, 'id-only', range(1, 7).map((n) => ({ n })));
    // The ring keeps 3..7: a fresh connect gets the resync, `id: <2>` alone, then 3..7.
    proxy.cutAfter(new RegExp(`\nid: ${ids[1]}\n\n`));
    const es = open('id-only');
    const rec = record(es);
    await waitFor(() => es.lastEventId === ids[6], 15_000, 'the last event');
    assert.equal(proxy.patternCuts, 1);
    assert.equal(rec.of('reconnecting')[0].lastEventIdNow, ids[1]);
    assert.equal(proxy.requests[1].headers['last-event-id'], ids[1]);
    assert.equal(rec.of('resync').length, 1, 'one resync, on the first connection only');
    assert.deepEqual(nums(rec), [3, 4, 5, 6, 7]);
  });

  test('a resync: the event says why and where the stream continues, then the events follow', async (t) => {
    const { hub, proxy, open } = await setup(t, ['--ring-events', '5']);
    const ids = await publish(hub.url, 'resync', range(1, 7).map((n) => ({ n })));

    // An id from another incarnation of the session.
    const es = open('resync', { lastEventId: 'deadbeef0000-3' });
    const rec = record(es);
    await waitFor(() => es.lastEventId === ids[6], 15_000, 'the last event');
    const [resync, ...more] = rec.of('resync');
    assert.equal(more.length, 0);
    assert.equal(resync.reason, 'epoch');
    assert.equal(resync.lastEventId, 'deadbeef0000-3');
    assert.equal(resync.resumeFrom, ids[2]);
    assert.ok(rec.log.indexOf(resync) < rec.log.findIndex((e) => e.type === 'message'));
    assert.deepEqual(nums(rec), [3, 4, 5, 6, 7], 'the signal is not a message');
    assert.equal(proxy.requests[0].headers['last-event-id'], 'deadbeef0000-3');
    es.close();

    // No id, and the oldest events are gone.
    const fresh = open('resync');
    const rec2 = record(fresh);
    await waitFor(() => fresh.lastEventId === ids[6], 15_000, 'the last event');
    assert.equal(rec2.of('resync')[0].reason, 'evicted');
    assert.equal(rec2.of('resync')[0].lastEventId, null);
    assert.deepEqual(nums(rec2), [3, 4, 5, 6, 7]);
  });

  test('a server that stops writing but keeps the socket open: the watchdog reconnects', async (t) => {
    const { hub, proxy, open } = await setup(t, ['--keepalive-secs', '1']);
    const ids = await publish(hub.url, 'stall', [{ n: 1 }]);
    const es = open('stall', { heartbeatTimeout: 2500 });
    const rec = record(es);
    await waitFor(() => es.lastEventId === ids[0], 10_000, 'the first event');
    // Heartbeats every second keep it alive well past the timeout.
    await sleep(3000);
    assert.equal(rec.of('reconnecting').length, 0, 'heartbeat comments reset the watchdog');
    proxy.holdOpen();
    await waitFor(() => rec.of('reconnecting').length > 0, 15_000, 'the watchdog');
    assert.equal(rec.of('reconnecting')[0].cause, 'watchdog');
    await waitFor(() => rec.of('open').length === 2, 15_000, 'the second open');
    const [id2] = await publish(hub.url, 'stall', [{ n: 2 }]);
    await waitFor(() => es.lastEventId === id2, 10_000, 'the second event');
    assert.deepEqual(nums(rec), [1, 2]);
    assert.equal(proxy.requests[1].headers['last-event-id'], ids[0]);
    assert.equal(proxy.maxOpen, 1, 'the stalled request is aborted before the next one');
  });

  test('two instances with one clientId: the older ends superseded, the newer streams on', async (t) => {
    const { hub, proxy, open } = await setup(t);
    const [id1] = await publish(hub.url, 'tabs', [{ n: 1 }]);
    const a = open('tabs', { clientId: 'tab-1' });
    const recA = record(a);
    await waitFor(() => a.lastEventId === id1, 10_000, 'A to catch up');
    const b = open('tabs', { clientId: 'tab-1', lastEventId: id1 });
    const recB = record(b);
    await waitFor(() => recA.of('close').length === 1, 10_000, 'A to close');
    assert.equal(recA.of('superseded').length, 1);
    assert.equal(recA.of('close')[0].reason, 'superseded');
    assert.equal(a.readyState, TetherEventSource.CLOSED);
    const [id2] = await publish(hub.url, 'tabs', [{ n: 2 }]);
    await waitFor(() => b.lastEventId === id2, 10_000, 'B to get event 2');
    await sleep(1000);
    assert.deepEqual(nums(recA), [1]);
    assert.deepEqual(nums(recB), [2]);
    assert.equal(b.readyState, TetherEventSource.OPEN);
    assert.equal(proxy.requests.length, 2, 'A does not come back');
    assert.ok(proxy.requests.every((r) => r.path.includes('clientId=tab-1')));
  });

  test('an instance superseded by another tab that comes back gets 204 and stops', async (t) => {
    const { proxy, open } = await setup(t);
    const a = open('tabs2', { clientId: 'tab-a' });
    const recA = record(a);
    await waitFor(() => a.readyState === TetherEventSource.OPEN, 10_000, 'A to open');
    const b = open('tabs2', { clientId: 'tab-b' });
    await waitFor(() => recA.of('close').length === 1, 10_000, 'A to be superseded');
    // A page reload of tab A within the grace period: the hub answers 204.
    const again = open('tabs2', { clientId: 'tab-a' });
    const recAgain = record(again);
    await waitFor(() => recAgain.of('close').length === 1, 10_000, 'the reload to stop');
    assert.equal(recAgain.of('close')[0].reason, 'stopped');
    // (An earlier error without a status is possible: Node's fetch may first pick a pooled
    // socket the proxy has just closed, and that attempt is retried.)
    assert.equal(recAgain.of('error').at(-1).status, 204, JSON.stringify(recAgain.log));
    const requests = proxy.requests.length;
    await sleep(800);
    assert.equal(proxy.requests.length, requests, 'no request after the 204');
    assert.equal(b.readyState, TetherEventSource.OPEN, 'B keeps the session');
  });

  test('a drain: the stream ends cleanly and the client comes back after the retry hint', async (t) => {
    const { proxy, open, hub } = await setup(t, ['--drain-secs', '3']);
    const es = open('drain');
    const rec = record(es);
    await waitFor(() => es.readyState === TetherEventSource.OPEN, 10_000, 'open');
    hub.drain();
    await waitFor(() => rec.of('reconnecting').length > 0, 10_000, 'the drain');
    const first = rec.of('reconnecting')[0];
    assert.equal(first.cause, 'drain');
    assert.ok(first.delay >= 0 && first.delay <= 3000, `delay ${first.delay} within the drain window`);
    const closedAt = first.at;
    await waitFor(() => proxy.requests.length >= 2, 10_000, 'the reconnect');
    assert.ok(
      proxy.requests[1].at - closedAt >= first.delay - 50,
      `came back after ${proxy.requests[1].at - closedAt} ms, hint ${first.delay} ms`,
    );
  });

  test('400 events with a cut every 250 ms: every event exactly once, in order', async (t) => {
    const { hub, proxy, open } = await setup(t);
    proxy.slice = 48; // small writes, so cuts land inside frames
    const es = open('storm', { maxRetryMs: 1000 });
    const rec = record(es);
    const cutter = setInterval(() => proxy.cutAll(), 250);
    t.after(() => clearInterval(cutter));
    for (let i = 0; i < 400; i += 10) {
      await publish(hub.url, 'storm', range(i, i + 9).map((n) => ({ n, pad: 'x'.repeat(n % 50) })));
      await sleep(40);
    }
    await waitFor(() => rec.messages.length >= 400, 60_000, 'all 400 events');
    clearInterval(cutter);
    await sleep(300);
    assert.deepEqual(nums(rec), range(0, 399));
    assert.ok(rec.of('reconnecting').length >= 3, `reconnects: ${rec.of('reconnecting').length}`);
    assert.equal(rec.of('resync').length, 0);
    assert.ok(proxy.maxOpen <= 1, `at most one request at a time (saw ${proxy.maxOpen})`);
  });
});
