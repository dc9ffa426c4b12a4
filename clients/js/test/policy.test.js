// The reconnect policy, options and EventSource compatibility, against a small fake server
// for the answers the hub does not give on demand.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TetherEventSource, parseRetryAfter } from '../src/index.js';
import { startFake, stream } from '../test-support/fake.js';
import { record, waitFor, sleep } from '../test-support/util.js';

async function withFake(t, handler) {
  const fake = await startFake(handler);
  const sources = [];
  t.after(async () => {
    for (const s of sources) s.close();
    await fake.close();
  });
  const open = (options = {}, path = '/stream') => {
    const s = new TetherEventSource(fake.url + path, options);
    sources.push(s);
    return s;
  };
  return { fake, open };
}

test('503 with Retry-After: waits that long, then streams', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    if (n === 0) {
      res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'application/json' });
      res.end('{"error":"draining"}');
    } else {
      stream(res, 'id: 1\ndata: ok\n\n');
    }
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the event');
  const [r] = rec.of('reconnecting');
  assert.equal(r.cause, 'status');
  assert.ok(r.delay >= 1000, `delay ${r.delay}`);
  assert.equal(rec.of('error')[0].status, 503);
  assert.ok(fake.requests[1].at - fake.requests[0].at >= 950, 'Retry-After honoured');
});

test('204 stops for good', async (t) => {
  const { fake, open } = await withFake(t, (req, res) => {
    res.writeHead(204);
    res.end();
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.of('close').length === 1, 10_000, 'close');
  assert.equal(rec.of('close')[0].reason, 'stopped');
  assert.equal(es.readyState, TetherEventSource.CLOSED);
  await sleep(1200);
  assert.equal(fake.requests.length, 1);
  assert.equal(rec.of('reconnecting').length, 0);
});

test('400, 403, 404, 409 and 410 stop; 408, 429, 500 and 502 are retried', async (t) => {
  let status = 0;
  const { fake, open } = await withFake(t, (req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end('{}');
  });
  for (const s of [400, 403, 404, 409, 410]) {
    status = s;
    const before = fake.requests.length;
    const es = open();
    const rec = record(es);
    await waitFor(() => rec.of('close').length === 1, 10_000, `close after ${s}`);
    assert.equal(rec.of('close')[0].reason, 'fatal');
    assert.equal(rec.of('error')[0].status, s);
    assert.equal(rec.of('reconnecting').length, 0);
    assert.equal(fake.requests.length - before, 1);
  }
  for (const s of [408, 429, 500, 502]) {
    status = s;
    const es = open();
    const rec = record(es);
    await waitFor(() => rec.of('reconnecting').length === 1, 10_000, `retry after ${s}`);
    assert.equal(rec.of('error')[0].status, s);
    assert.equal(es.readyState, TetherEventSource.CONNECTING);
    es.close();
  }
});

test('a clean close with retry: comes back after the hint with Last-Event-ID', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    if (n === 0) {
      stream(res, 'retry: 700\n\nid: 1\ndata: one\n\n');
      res.end();
    } else {
      stream(res, 'id: 2\ndata: two\n\n');
    }
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.messages.length === 2, 10_000, 'both events');
  const [r] = rec.of('reconnecting');
  assert.equal(r.cause, 'closed');
  assert.equal(r.delay, 700);
  assert.equal(fake.requests[1].headers['last-event-id'], '1');
  assert.ok(fake.requests[1].at - fake.requests[0].at >= 650);
  assert.deepEqual(rec.messages, ['one', 'two']);
});

test('a server that stops writing: the watchdog aborts the request, then reconnects', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    stream(res, `id: ${n + 1}\ndata: e${n + 1}\n\n`);
    // ...and nothing more, with the socket left open.
  });
  const es = open({ heartbeatTimeout: 800 });
  const rec = record(es);
  await waitFor(() => rec.messages.length >= 2, 10_000, 'the second connection');
  es.close();
  const [r] = rec.of('reconnecting');
  assert.equal(r.cause, 'watchdog');
  assert.ok(r.at - rec.of('open')[0].at >= 700, 'not before the timeout');
  assert.equal(fake.requests[1].headers['last-event-id'], '1');
  assert.equal(fake.requests[1].active, 1, 'the stalled request was aborted before the next one');
});

test('comments reset the watchdog', async (t) => {
  let timer;
  t.after(() => clearInterval(timer));
  const { fake, open } = await withFake(t, (req, res) => {
    stream(res, ': hi\n\n');
    timer = setInterval(() => res.write(': keepalive\n\n'), 200);
  });
  const es = open({ heartbeatTimeout: 1000 });
  const rec = record(es);
  await sleep(2500);
  assert.equal(rec.of('reconnecting').length, 0);
  assert.equal(fake.requests.length, 1);
  assert.equal(es.readyState, TetherEventSource.OPEN);
});

test('a server that accepts and closes at once cannot make the client spin', async (t) => {
  const { fake, open } = await withFake(t, (req, res) => {
    stream(res, 'retry: 20\n\n');
    res.end();
  });
  const es = open();
  const rec = record(es);
  await sleep(3000);
  es.close();
  const n = fake.requests.length;
  assert.ok(n >= 2 && n <= 8, `${n} requests in 3 s`);
  const delays = rec.of('reconnecting').map((r) => r.delay);
  assert.equal(delays[0], 20, 'the first reconnect takes the hint');
  assert.ok(delays.slice(1).every((d) => d >= 500), `later ones back off: ${delays}`);
});

test('the backoff doubles up to maxRetryMs and starts again after a healthy stream', async (t) => {
  let fail = true;
  let current = null;
  const { open } = await withFake(t, (req, res) => {
    if (fail) {
      res.writeHead(500);
      res.end();
    } else {
      stream(res, ': ok\n\n');
      current = res;
    }
  });
  const es = open({ random: () => 0.999, maxRetryMs: 2000, healthyAfterMs: 300 });
  const rec = record(es);
  await waitFor(() => rec.of('reconnecting').length >= 3, 15_000, 'three retries');
  fail = false;
  await waitFor(() => rec.of('open').length === 1, 15_000, 'open');
  await sleep(700); // longer than healthyAfterMs
  current.socket.destroy(); // a cut after a healthy stream
  await waitFor(() => rec.of('reconnecting').length >= 4, 15_000, 'the retry after the cut');
  assert.deepEqual(
    rec.of('reconnecting').map((r) => [r.attempt, r.delay, r.cause]),
    [
      [1, 999, 'status'],
      [2, 1998, 'status'],
      [3, 1998, 'status'],
      [1, 999, 'network'],
    ],
  );
});

test('token, headers and clientId on every attempt; the seeded id is kept', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    stream(res, n === 0 ? 'retry: 50\n\n: no ids here\n\n' : 'data: x\n\n');
    if (n === 0) res.end();
  });
  let calls = 0;
  const es = open({
    lastEventId: 'seed-9',
    token: async () => `tok${++calls}`,
    headers: () => ({ 'X-Attempt': String(calls) }),
    clientId: 'tab-7',
  });
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the event');
  const [a, b] = fake.requests;
  assert.equal(a.headers.authorization, 'Bearer tok1');
  assert.equal(b.headers.authorization, 'Bearer tok2');
  assert.equal(a.headers['x-attempt'], '0');
  assert.equal(b.headers['x-attempt'], '1');
  assert.equal(a.headers.accept, 'text/event-stream');
  assert.equal(a.headers['last-event-id'], 'seed-9');
  assert.equal(b.headers['last-event-id'], 'seed-9', 'kept across a reconnect that saw no new id');
  assert.equal(a.url.searchParams.get('clientId'), 'tab-7');
  assert.equal(b.url.searchParams.get('clientId'), 'tab-7');
  assert.equal(es.lastEventId, 'seed-9');
});

test('tokenInQuery sends the token as a query parameter; the default clientId is stable', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    stream(res, 'retry: 30\n\n');
    if (n === 0) res.end();
  });
  const es = open({ token: 'abc', tokenInQuery: true });
  await waitFor(() => fake.requests.length === 2, 10_000, 'two requests');
  es.close();
  const [a, b] = fake.requests;
  assert.equal(a.url.searchParams.get('token'), 'abc');
  assert.equal(a.headers.authorization, undefined);
  const id = a.url.searchParams.get('clientId');
  assert.match(id, /^[0-9a-f]{24}$/);
  assert.equal(b.url.searchParams.get('clientId'), id);
  assert.equal(es.clientId, id);
  const none = open({ clientId: null });
  await waitFor(() => fake.requests.length === 3, 10_000, 'a third request');
  none.close();
  assert.equal(fake.requests[2].url.searchParams.has('clientId'), false);
});

test('401: onAuthError, then one retry; a second 401 in a row is fatal', async (t) => {
  let valid = 'fresh';
  const { fake, open } = await withFake(t, (req, res) => {
    if (req.headers.authorization !== `Bearer ${valid}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer' });
      res.end();
    } else {
      stream(res, 'data: in\n\n');
    }
  });
  let token = 'stale';
  let refreshed = 0;
  const es = open({
    token: () => token,
    onAuthError: async ({ status }) => {
      assert.equal(status, 401);
      refreshed++;
      token = 'fresh';
    },
  });
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the event');
  assert.equal(refreshed, 1);
  assert.equal(fake.requests.length, 2);
  es.close();

  valid = 'never';
  const es2 = open({ token: 'x', onAuthError: () => {} });
  const rec2 = record(es2);
  await waitFor(() => rec2.of('close').length === 1, 10_000, 'close');
  assert.equal(rec2.of('close')[0].reason, 'fatal');
  assert.equal(fake.requests.length, 4);
});

test('close() during a reconnect delay cancels it for good', async (t) => {
  const { fake, open } = await withFake(t, (req, res) => {
    res.writeHead(500);
    res.end();
  });
  const es = open({ random: () => 0.999 });
  const rec = record(es);
  await waitFor(() => rec.of('reconnecting').length === 1, 10_000, 'a retry to be scheduled');
  es.close();
  assert.equal(es.readyState, TetherEventSource.CLOSED);
  assert.equal(rec.of('close')[0].reason, 'closed');
  await sleep(1500);
  assert.equal(fake.requests.length, 1);
  es.close(); // twice is fine
  assert.equal(rec.of('close').length, 1);
});

test('EventSource compatibility: handlers, named events, readyState, lastEventId, origin', async (t) => {
  const { fake, open } = await withFake(t, (req, res) => {
    stream(res, 'event: progress\nid: p-1\ndata: {"pct":10}\n\ndata: plain\n\n');
    setTimeout(() => res.end(), 100);
  });
  const es = open();
  assert.equal(es.readyState, TetherEventSource.CONNECTING);
  assert.equal(es.url, `${fake.url}/stream`);
  const seen = [];
  es.onopen = () => seen.push(['open', es.readyState]);
  es.onmessage = (e) => seen.push(['message', e.data, e.lastEventId, e.origin, es.lastEventId]);
  es.onerror = () => seen.push(['error', es.readyState]);
  es.addEventListener('progress', (e) => seen.push(['progress', e.data, e.lastEventId]));
  await waitFor(() => seen.some((s) => s[0] === 'error'), 10_000, 'the end of the stream');
  es.close();
  assert.deepEqual(seen, [
    ['open', TetherEventSource.OPEN],
    ['progress', '{"pct":10}', 'p-1'],
    ['message', 'plain', 'p-1', fake.url, 'p-1'],
    ['error', TetherEventSource.CONNECTING],
  ]);
  assert.equal(es.OPEN, 1);
});

test('signals as comments: superseded stops, drain reconnects after its hint', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    if (req.url.startsWith('/superseded')) {
      stream(res, 'data: a\n\n: tether.superseded {}\n\nretry: 30000\n\n');
      res.end();
    } else if (n < 3) {
      stream(res, 'retry: 5000\n\n: tether.drain {"retryMs":300}\n\n');
      res.end();
    } else {
      stream(res, 'data: back\n\n');
    }
  });
  const s = open({}, '/superseded');
  const recS = record(s);
  await waitFor(() => recS.of('close').length === 1, 10_000, 'close');
  assert.equal(recS.of('superseded').length, 1);
  assert.equal(recS.of('close')[0].reason, 'superseded');

  const d = open({}, '/drain');
  const recD = record(d);
  await waitFor(() => recD.of('reconnecting').length === 1, 10_000, 'the drain');
  assert.equal(recD.of('reconnecting')[0].cause, 'drain');
  assert.equal(recD.of('reconnecting')[0].delay, 300);
  await sleep(1000);
  assert.equal(recS.of('reconnecting').length, 0);
  assert.ok(fake.requests.filter((r) => r.url.pathname === '/superseded').length === 1);
});

test('a tether data signal is not a message; other CUSTOM events are', async (t) => {
  const resync = { type: 'CUSTOM', name: 'tether.resync', value: { reason: 'evicted', lastEventId: null, resumeFrom: 'e-3' } };
  const other = { type: 'CUSTOM', name: 'tether.approval.requested', value: { id: 'a1' } };
  const { open } = await withFake(t, (req, res) => {
    stream(res, `data: ${JSON.stringify(resync)}\n\nid: e-2\n\ndata: ${JSON.stringify(other)}\n\n`);
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the message');
  assert.equal(rec.of('resync').length, 1);
  assert.equal(rec.of('resync')[0].resumeFrom, 'e-3');
  assert.deepEqual(rec.messages, [other]);
  assert.equal(es.lastEventId, 'e-2');
});

test('a response that is not text/event-stream is fatal', async (t) => {
  const { open } = await withFake(t, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<html>');
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.of('close').length === 1, 10_000, 'close');
  assert.equal(rec.of('close')[0].reason, 'fatal');
});

test('a network error is retried', async (t) => {
  const { fake, open } = await withFake(t, (req, res, n) => {
    if (n === 0) req.socket.destroy();
    else stream(res, 'data: up\n\n');
  });
  const es = open();
  const rec = record(es);
  await waitFor(() => rec.messages.length === 1, 10_000, 'the event');
  assert.equal(rec.of('reconnecting')[0].cause, 'network');
  assert.equal(fake.requests.length, 2);
});

test('Retry-After as seconds or a date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  const d = parseRetryAfter(new Date(Date.now() + 5000).toUTCString());
  assert.ok(d > 3000 && d <= 5000, String(d));
});
