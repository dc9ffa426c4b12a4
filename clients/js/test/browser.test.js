// TetherEventSource in headless Chromium, against tether serve behind the cutting proxy, on
// another origin (so CORS preflights for Authorization and Last-Event-ID are exercised).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub, publish, hubMissing, IN_CI } from '../test-support/hub.js';
import { startProxy } from '../test-support/proxy.js';
import { sleep, waitFor } from '../test-support/util.js';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const missingHub = hubMissing();
const skip = missingHub
  ? (IN_CI ? false : missingHub)
  : !CHROMIUM && (IN_CI ? false : 'no chromium found (set CHROMIUM to its path)');

/** Serves the page, its script and the package's modules; resolves the posted result. */
async function pageServer() {
  let deliver;
  const result = new Promise((r) => (deliver = r));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><script type="module" src="/page.js"></script>');
    } else if (url.pathname === '/page.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(readFileSync(path.join(PACKAGE_DIR, 'test-support/browser-page.js')));
    } else if (/^\/src\/[a-z]+\.js$/.test(url.pathname)) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(readFileSync(path.join(PACKAGE_DIR, url.pathname)));
    } else if (url.pathname === '/result' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        res.end();
        deliver(JSON.parse(body));
      });
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${server.address().port}`, result };
}

test('in Chromium: a cut inside a frame resumes before it, across origins', { skip, timeout: 90_000 }, async (t) => {
  assert.ok(!missingHub, missingHub);
  const page = await pageServer();
  const hub = await startHub(['--cors-origin', page.origin]);
  const proxy = await startProxy(hub.port);
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tether-chromium-'));
  let chromium;
  t.after(async () => {
    if (chromium && chromium.exitCode === null && chromium.signalCode === null) {
      const gone = new Promise((r) => chromium.once('exit', r));
      process.kill(-chromium.pid, 'SIGKILL'); // its whole process group: renderers too
      await gone;
    }
    page.server.close();
    await proxy.close();
    await hub.stop();
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });

  // Events 1 and 2 before the page connects; 3, 4 and 5 each in a write of its own after it
  // read them, so the cut lands inside the frame of event 3 (and not inside a chunk holding
  // frames the browser would never have seen).
  const ids = await publish(hub.url, 'browser', [{ n: 1 }, { n: 2 }]);
  const epoch = ids[0].split('-')[0];
  for (const seq of [3, 4, 5]) ids.push(`${epoch}-${seq}`);
  proxy.cutAfter(new RegExp(`id: ${ids[2]}\n`));
  const url = `${page.origin}/?api=${encodeURIComponent(proxy.url)}&last=${ids[4]}`;
  chromium = spawn(
    CHROMIUM,
    ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`, url],
    { stdio: 'ignore', detached: true },
  );
  const reap = () => process.kill(-chromium.pid, 'SIGKILL');
  process.once('exit', reap);
  chromium.once('exit', () => process.removeListener('exit', reap));
  const exited = new Promise((_, reject) =>
    chromium.once('exit', (code, signal) => reject(new Error(`chromium exited (${code ?? signal})`))),
  );
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('no result from the page within 60 s')), 60_000).unref(),
  );
  await Promise.race([waitFor(() => proxy.sawResponse(new RegExp(`id: ${ids[1]}\n`)), 60_000, 'the page to connect'), exited]);
  await sleep(300);
  for (const n of [3, 4, 5]) {
    assert.deepEqual(await publish(hub.url, 'browser', [{ n }]), [ids[n - 1]]);
    await sleep(100);
  }
  const r = await Promise.race([page.result, exited, timeout]);
  assert.equal(r.error, undefined, r.error);
  assert.match(r.userAgent, /Chrome/);
  assert.equal(proxy.patternCuts, 1);
  assert.deepEqual(
    r.messages,
    [1, 2, 3, 4, 5].map((n, i) => [n, ids[i]]),
  );
  assert.equal(r.reconnecting.length, 1);
  assert.equal(r.reconnecting[0].lastEventIdNow, ids[1]);
  assert.equal(r.opens, 2);
  assert.equal(r.readyState, 2);
  const gets = proxy.requests.filter((q) => q.method === 'GET');
  assert.equal(gets.length, 2);
  assert.equal(gets[1].headers['last-event-id'], ids[1]);
  assert.equal(gets[0].headers.authorization, 'Bearer tok-1');
  assert.ok(r.clientId && r.clientId === r.storedClientId, 'the clientId is kept in sessionStorage');
  assert.ok(gets.every((q) => q.path.includes(`clientId=${r.clientId}`)));
});
