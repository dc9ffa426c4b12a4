// The parser against the WHATWG HTML rules for interpreting an event stream, including the
// spec's own examples.

import test from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../src/index.js';

/** Parses `input` (a string, bytes, or an array of chunks) and records everything. */
function parse(input, lastEventId) {
  const out = [];
  const p = new SseParser({
    lastEventId,
    onEvent: (e) => out.push(['event', e.type, e.data, e.lastEventId]),
    onLastEventId: (id) => out.push(['id', id]),
    onRetry: (ms) => out.push(['retry', ms]),
    onComment: (c) => out.push(['comment', c]),
  });
  for (const chunk of Array.isArray(input) ? input : [input]) p.feed(chunk);
  p.end();
  return { out, events: out.filter((r) => r[0] === 'event').map((r) => r.slice(1)), parser: p };
}

test('spec example: data lines join with LF', () => {
  const { events } = parse('data: YHOO\ndata: +2\ndata: 10\n\n');
  assert.deepEqual(events, [['message', 'YHOO\n+2\n10', '']]);
});

test('spec example: comments, ids, a bare id resets, one space stripped', () => {
  const { events } = parse(
    ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n',
  );
  assert.deepEqual(events, [
    ['message', 'first event', '1'],
    ['message', 'second event', ''],
    ['message', ' third event', ''],
  ]);
});

test('spec example: empty data, and an unterminated event is discarded', () => {
  const { events } = parse('data\n\ndata\ndata\n\ndata:');
  assert.deepEqual(events, [
    ['message', '', ''],
    ['message', '\n', ''],
  ]);
});

test('spec example: the space after the colon is optional', () => {
  const { events } = parse('data:test\n\ndata: test\n\n');
  assert.deepEqual(events, [
    ['message', 'test', ''],
    ['message', 'test', ''],
  ]);
});

test('LF, CR and CRLF all end lines, mixed in one stream', () => {
  const { events } = parse('data: a\r\ndata: b\rdata: c\n\revent: x\r\ndata: d\r\r\n');
  assert.deepEqual(events, [
    ['message', 'a\nb\nc', ''],
    ['x', 'd', ''],
  ]);
});

test('a CRLF split between chunks is one line end', () => {
  const { events } = parse(['data: a\r', '\n', 'data: b\r', '\n\r', '\n']);
  assert.deepEqual(events, [['message', 'a\nb', '']]);
});

test('a leading BOM is stripped, once', () => {
  assert.deepEqual(parse('\uFEFFdata: a\n\n').events, [['message', 'a', '']]);
  // A second BOM is part of the field name, which is then unknown.
  assert.deepEqual(parse('\uFEFF\uFEFFdata: a\n\n').events, []);
  // As bytes too, split inside the BOM.
  const bytes = new TextEncoder().encode('\uFEFFdata: é\n\n');
  assert.deepEqual(parse([bytes.slice(0, 1), bytes.slice(1, 2), bytes.slice(2)]).events, [
    ['message', 'é', ''],
  ]);
  // A BOM later in the stream is not stripped.
  assert.deepEqual(parse('data: a\n\n\uFEFFdata: b\n\n').events, [['message', 'a', '']]);
});

test('UTF-8 split anywhere decodes the same', () => {
  const bytes = new TextEncoder().encode('data: héllo 🌍\n\n');
  const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
  assert.deepEqual(parse(chunks).events, [['message', 'héllo 🌍', '']]);
});

test('retry takes ASCII digits only', () => {
  const { out } = parse('retry: 1500\nretry: 10a\nretry: -1\nretry:  100\nretry:\nretry: 1.5\nretry:0\n\n');
  assert.deepEqual(
    out.filter((r) => r[0] === 'retry'),
    [
      ['retry', 1500],
      ['retry', 0],
    ],
  );
});

test('an id containing NUL is ignored', () => {
  const { events } = parse('id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n');
  assert.deepEqual(events, [
    ['message', 'a', '1'],
    ['message', 'b', '1'],
  ]);
});

test('the id is committed at the blank line, not at the id line', () => {
  const seen = [];
  const p = new SseParser({ lastEventId: 'e-1', onLastEventId: (id) => seen.push(id) });
  p.feed('id: e-2\ndata: x\n');
  assert.equal(p.lastEventId, 'e-1');
  assert.deepEqual(seen, []);
  p.end(); // the connection is cut before the blank line
  assert.equal(p.lastEventId, 'e-1');
  assert.deepEqual(seen, []);
});

test('an id-only frame advances the last event id without an event', () => {
  const { out, parser } = parse('id: e-7\n\n', 'e-1');
  assert.deepEqual(out, [['id', 'e-7']]);
  assert.equal(parser.lastEventId, 'e-7');
});

test('the last event id carries over to events without an id line', () => {
  const { events } = parse('data: a\n\nid: 5\ndata: b\n\ndata: c\n\n', 's-4');
  assert.deepEqual(events, [
    ['message', 'a', 's-4'],
    ['message', 'b', '5'],
    ['message', 'c', '5'],
  ]);
});

test('the id is committed before its event is delivered', () => {
  const order = [];
  const p = new SseParser({
    onLastEventId: (id) => order.push(`id ${id}`),
    onEvent: (e) => order.push(`event ${e.data}`),
  });
  p.feed('id: 9\ndata: x\n\n');
  assert.deepEqual(order, ['id 9', 'event x']);
});

test('event type resets after each dispatch, also for frames without data', () => {
  const { events } = parse('event: a\n\ndata: 1\n\nevent: b\ndata: 2\n\ndata: 3\n\n');
  assert.deepEqual(events, [
    ['message', '1', ''],
    ['b', '2', ''],
    ['message', '3', ''],
  ]);
});

test('fields without a colon, unknown fields, and case', () => {
  const { events } = parse('data\nfoo: bar\nData: no\nevent\ndata: x\n\n');
  assert.deepEqual(events, [['message', '\nx', '']]);
});

test('comments are reported, with one leading space removed', () => {
  const { out } = parse(': keepalive\n:no space\n:  two\n: tether.drain {"retryMs":5}\n\n');
  assert.deepEqual(out, [
    ['comment', 'keepalive'],
    ['comment', 'no space'],
    ['comment', ' two'],
    ['comment', 'tether.drain {"retryMs":5}'],
  ]);
});

test('a field value may contain colons', () => {
  assert.deepEqual(parse('data: a: b:c\n\n').events, [['message', 'a: b:c', '']]);
});
