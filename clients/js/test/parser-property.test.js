// Property: any chunking of a stream gives the same events, ids, retries and comments, and
// they are the ones a simple model of the WHATWG rules expects. Streams and chunkings come
// from a seeded generator; a failure names its seed (rerun with PROPERTY_SEED=<seed>).

import test from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../src/index.js';

/** mulberry32: small, fast, good enough to pick test inputs. */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
}

const CHARS = ['a', 'b', 'z', '0', '7', ' ', ':', '-', '{', '"', 'é', '€', '🌍', '\0', '\uFEFF', '\t'];

function text(r, max) {
  let s = '';
  const n = r.int(max);
  for (let i = 0; i < n; i++) s += r.pick(CHARS);
  return s;
}

/** A random stream and what a reader that follows the rules must report for it. */
function generate(r) {
  const lines = [];
  const expected = [];
  const m = { data: null, type: '', idBuffer: '', lastEventId: '' };
  const eol = () => r.pick(['\n', '\r', '\r\n']);
  const valueOf = (raw) => (raw.startsWith(' ') ? raw.slice(1) : raw);
  const field = (name, raw) => {
    lines.push(`${name}:${raw}`);
    return valueOf(raw);
  };
  const frames = 1 + r.int(12);
  for (let f = 0; f < frames; f++) {
    const n = r.int(6);
    for (let i = 0; i < n; i++) {
      const kind = r.int(9);
      if (kind <= 2) {
        const v = field('data', (r.chance(0.7) ? ' ' : '') + text(r, 12));
        m.data = m.data === null ? v : `${m.data}\n${v}`;
      } else if (kind === 3) {
        lines.push('data'); // no colon: empty value
        m.data = m.data === null ? '' : `${m.data}\n`;
      } else if (kind === 4) {
        const v = field('id', (r.chance(0.8) ? ' ' : '') + text(r, 8));
        if (!v.includes('\0')) m.idBuffer = v;
      } else if (kind === 5) {
        m.type = field('event', ' ' + text(r, 5).replaceAll('\0', ''));
      } else if (kind === 6) {
        const raw = r.chance(0.6) ? ` ${r.int(100000)}` : ` ${r.pick(['', '1x', '-3', ' 5', '2.5', 'abc'])}`;
        const v = field('retry', raw);
        if (/^[0-9]+$/.test(v)) expected.push(['retry', Number(v)]);
      } else if (kind === 7) {
        const c = text(r, 10);
        lines.push(`:${c}`);
        expected.push(['comment', valueOf(c)]);
      } else {
        field(r.pick(['foo', 'Data', 'ID', 'retry ', 'x']), ' ' + text(r, 4)); // ignored
      }
    }
    const last = f === frames - 1 && r.chance(0.3);
    if (last) break; // the stream ends inside a frame: it must be discarded
    lines.push('');
    if (m.idBuffer !== m.lastEventId) {
      m.lastEventId = m.idBuffer;
      expected.push(['id', m.lastEventId]);
    }
    if (m.data !== null) expected.push(['event', m.type || 'message', m.data, m.lastEventId]);
    m.data = null;
    m.type = '';
  }
  let body = '';
  let prev = '';
  for (const l of lines) {
    let e = eol();
    // CR then an empty line ended by LF would read as one CRLF: the empty line would vanish.
    if (prev === '\r' && l === '' && e === '\n') e = '\r';
    body += l + e;
    prev = e;
  }
  return { body: (r.chance(0.3) ? '\uFEFF' : '') + body, expected };
}

function run(chunks) {
  const out = [];
  const p = new SseParser({
    onEvent: (e) => out.push(['event', e.type, e.data, e.lastEventId]),
    onLastEventId: (id) => out.push(['id', id]),
    onRetry: (ms) => out.push(['retry', ms]),
    onComment: (c) => out.push(['comment', c]),
  });
  for (const c of chunks) p.feed(c);
  p.end();
  return out;
}

function chunkBytes(r, bytes) {
  const chunks = [];
  let i = 0;
  while (i < bytes.length) {
    const n = r.chance(0.3) ? 1 : 1 + r.int(Math.max(1, Math.min(40, bytes.length - i)));
    chunks.push(bytes.slice(i, i + n));
    i += n;
  }
  return chunks;
}

function chunkText(r, s) {
  const chunks = [];
  let i = 0;
  while (i < s.length) {
    const n = 1 + r.int(20);
    chunks.push(s.slice(i, i + n));
    i += n;
  }
  return chunks;
}

const CASES = Number(process.env.PROPERTY_CASES ?? 400);
const BASE_SEED = Number(process.env.PROPERTY_SEED ?? 0x7e7e);

test(`any chunking gives the model's events (${CASES} seeded cases)`, () => {
  for (let k = 0; k < CASES; k++) {
    const seed = BASE_SEED + k;
    const r = rng(seed);
    const { body, expected } = generate(r);
    const bytes = new TextEncoder().encode(body);
    const whole = run([bytes]);
    assert.deepEqual(whole, expected, `seed ${seed}: whole stream differs from the model`);
    for (let j = 0; j < 4; j++) {
      assert.deepEqual(run(chunkBytes(r, bytes)), expected, `seed ${seed}: byte chunking ${j}`);
    }
    assert.deepEqual(run(chunkText(r, body)), expected, `seed ${seed}: text chunking`);
    // Every single byte on its own: splits every CRLF and every multi-byte character.
    if (k % 10 === 0) {
      assert.deepEqual(run(Array.from(bytes, (b) => Uint8Array.of(b))), expected, `seed ${seed}: bytewise`);
    }
  }
});
