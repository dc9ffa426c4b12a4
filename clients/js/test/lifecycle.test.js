// Page lifecycle in a simulated page: online/offline, the back/forward cache, a hidden page,
// and the per-tab clientId in sessionStorage. (This file sets page globals, so it runs in a
// process of its own, as every test file does.)

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startFake, stream } from '../test-support/fake.js';
import { record, waitFor, sleep } from '../test-support/util.js';

const win = new EventTarget();
const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
const nav = { onLine: true };
const storage = new Map();

let TetherEventSource;

before(async () => {
  Object.defineProperty(globalThis, 'window', { value: win, configurable: true });
  Object.defineProperty(globalThis, 'document', { value: doc, configurable: true });
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true });
  Object.defineProperty(globalThis, 'sessionStorage', {
    value: { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, String(v)) },
    configurable: true,
  });
  ({ TetherEventSource } = await import('../src/index.js'));
});

function pageEvent(type, props = {}) {
  return Object.assign(new Event(type), props);
}

test('offline pauses retries; online reconnects at once', async (t) => {
  const fake = await startFake((req, res, n) => {
    if (n === 0) {
      res.writeHead(500);
      res.end();
    } else {
      stream(res, 'data: back\n\n');
    }
  });
  const es = new TetherEventSource(`${fake.url}/s`, { random: () => 0.999, maxRetryMs: 30_000 });
  t.after(() => {
    es.close();
    return fake.close();
  });
  const rec = record(es);
  await waitFor(() => rec.of('reconnecting').length === 1, 10_000, 'a retry');
  nav.onLine = false;
  win.dispatchEvent(pageEvent('offline'));
  await sleep(1500); // longer than the scheduled delay (999 ms)
  assert.equal(fake.requests.length, 1, 'no retry while offline');
  nav.onLine = true;
  win.dispatchEvent(pageEvent('online'));
  await waitFor(() => rec.messages.length === 1, 10_000, 'the event');
  assert.equal(rec.of('reconnecting')[1].cause, 'online');
  assert.equal(rec.of('reconnecting')[1].delay, 0);
});

test('the back/forward cache: pagehide closes the connection, pageshow resumes', async (t) => {
  const fake = await startFake((req, res, n) => {
    stream(res, `id: ${n + 1}\ndata: e${n + 1}\n\n`);
  });
  const es = new TetherEventSource(`${fake.url}/s`);
  t.after(() => {
    es.close();
    return fake.close();
  });
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the first event');
  win.dispatchEvent(pageEvent('pagehide', { persisted: true }));
  await waitFor(() => fake.requests.length === 1 && fake.active() === 0, 5000, 'the request to end');
  assert.equal(es.readyState, TetherEventSource.CONNECTING);
  await sleep(300);
  assert.equal(fake.requests.length, 1);
  win.dispatchEvent(pageEvent('pageshow', { persisted: true }));
  await waitFor(() => rec.messages.length === 2, 10_000, 'the second event');
  assert.equal(fake.requests[1].headers['last-event-id'], '1');
});

test('a hidden page keeps streaming', async (t) => {
  let res0;
  const fake = await startFake((req, res) => {
    stream(res, 'data: a\n\n');
    res0 = res;
  });
  const es = new TetherEventSource(`${fake.url}/s`);
  t.after(() => {
    es.close();
    return fake.close();
  });
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the first event');
  doc.visibilityState = 'hidden';
  doc.dispatchEvent(pageEvent('visibilitychange'));
  res0.write('data: b\n\n');
  await waitFor(() => rec.messages.length === 2, 10_000, 'an event while hidden');
  doc.visibilityState = 'visible';
  doc.dispatchEvent(pageEvent('visibilitychange'));
  assert.equal(fake.requests.length, 1);
  assert.equal(es.readyState, TetherEventSource.OPEN);
});

test('the default clientId is kept per tab in sessionStorage', () => {
  storage.clear();
  const a = new TetherEventSource('http://127.0.0.1:9/s');
  const b = new TetherEventSource('http://127.0.0.1:9/s');
  a.close();
  b.close();
  assert.ok(a.clientId);
  assert.equal(b.clientId, a.clientId);
  assert.equal(storage.get('tether-client:clientId'), a.clientId);
});
