// The AG-UI example's page in headless Chromium (Debian's chromium driven by playwright-core),
// through a proxy that cuts its connection: the whole answer arrives token by token with no
// gap or repeat, an approval card appears, is approved and the run goes on, and a reload in the
// middle of a run reattaches.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IN_CI } from '../test-support/hub.js';
import { startExample, exampleMissing, INTRO } from '../test-support/example.js';
import { startProxy } from '../test-support/proxy.js';

const CHROMIUM = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
const missing = exampleMissing() || (!CHROMIUM && 'no chromium found (set CHROMIUM to its path)');
const skip = missing && !IN_CI ? missing : false;

const REPLY = 'Done: the build cache is gone and 4.2 GB are free again.';
const tokens = (text) => text.split(/(?<= )/);

/** Chromium with a fresh profile; closed (its whole process tree) when the test ends. */
async function browser(t) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tether-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  return context;
}

async function demo(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.tetherDemo)));
}

test('in Chromium: the example page through a cutting proxy gets every token once, approves, reloads mid-run', { skip, timeout: 120_000 }, async (t) => {
  assert.ok(!missing, missing);
  const example = await startExample(['--token-delay-ms', '120', '--approval-secs', '60']);
  const proxy = await startProxy(example.port);
  t.after(async () => {
    await proxy.close();
    await example.stop();
  });
  const context = await browser(t);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const origin = `${proxy.url}/?token=${example.token}`;

  // 1. A run whose response is cut in the middle of the message.
  proxy.cutAfter(/"delta":"cache "\}\n\n/);
  await page.goto(origin);
  await page.click('#start');
  const card = page.locator('.approval');
  await card.waitFor({ timeout: 30_000 });
  assert.equal(proxy.patternCuts, 1, 'the run was cut');
  let seen = await demo(page);
  assert.deepEqual(seen.deltas, tokens(INTRO), 'every token once, in order');
  assert.ok(seen.states.includes('reconnecting'));
  assert.match(await card.locator('.until').textContent(), /deadline \d{4}-\d\d-\d\dT/, 'the card shows its deadline');
  const requests = proxy.requests.filter((q) => q.path.startsWith('/api/'));
  assert.equal(requests[0].method, 'POST');
  assert.match(requests[0].path, /^\/api\/agui\/run/);
  assert.equal(requests[1].method, 'GET');
  assert.doesNotMatch(requests[1].path, /prelude/, 'the resume inside the run has no prelude');
  assert.ok(requests[1].headers['last-event-id']);
  assert.equal(requests[0].headers.authorization, `Bearer ${example.token}`);

  // 2. Approved: the agent goes on in a run of its own, which the attached page sees.
  await card.locator('.approve').click();
  await page.waitForFunction((reply) => document.querySelector('#chat').textContent.includes(reply), REPLY, {
    timeout: 30_000,
  });
  seen = await demo(page);
  assert.deepEqual(seen.decisions, [200]);
  assert.equal(seen.deltas.join(''), INTRO + REPLY, 'the reply after the approval, no token lost or repeated');
  assert.match(await page.locator('#chat').textContent(), /deleted \/tmp\/build-cache/);
  assert.equal(await page.locator('.approval').count(), 0);

  // 3. A fresh thread, reloaded in the middle of its message: the page reattaches.
  await page.evaluate(() => sessionStorage.removeItem('tether-demo:thread'));
  await page.reload();
  await page.click('#start');
  await page.waitForFunction(() => window.tetherDemo.deltas.length >= 4, null, { timeout: 30_000 });
  const thread = await page.locator('#thread').textContent();
  const before = proxy.requests.length;
  await page.reload();
  await page.locator('.approval').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('#thread').textContent(), thread, 'the same thread after the reload');
  const texts = await page.locator('.msg.assistant .text').allTextContents();
  assert.deepEqual(texts, [INTRO], 'the whole message once, snapshot and live tail together');
  const reattach = proxy.requests.slice(before).find((q) => q.path.startsWith(`/api/sse/session/${thread}`));
  assert.ok(reattach, 'the reloaded page reattached');
  assert.match(reattach.path, /[?&]prelude=always/);
  assert.ok(reattach.headers['last-event-id'], 'with the last id the page had stored');
  assert.deepEqual(errors, []);
});
