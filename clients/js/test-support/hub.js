// Starts `tether serve --dev` on 127.0.0.1:0 for a test and stops it afterwards.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The hub binary: `TETHER_BIN` (relative to clients/js), default ../../target/debug/tether. */
export const TETHER_BIN = path.resolve(PACKAGE_DIR, process.env.TETHER_BIN ?? '../../target/debug/tether');

/**
 * Why hub tests cannot run, or `false`. Under `CI=true` a missing binary is an error the
 * caller turns into a failing test, never a silent skip.
 */
export function hubMissing() {
  if (existsSync(TETHER_BIN)) return false;
  return `tether binary not found at ${TETHER_BIN} (build it with \`cargo build -p tether-cli\` or set TETHER_BIN)`;
}

export const IN_CI = process.env.CI === 'true';

/**
 * Starts a hub with extra `args`; resolves to `{ url, port, stop(), drain(), log() }`.
 * @param {string[]} [args]
 */
export function startHub(args = []) {
  const child = spawn(TETHER_BIN, ['serve', '--dev', '--addr', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  // Never outlive the test process, whatever way it ends its event loop.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.removeListener('exit', reap));
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tether serve did not print its address within 20 s\n${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tether serve exited (${code}) before listening\n${stderr}`));
    });
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening on http:\/\/(\S+)/.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const url = `http://${m[1]}`;
      const exited = new Promise((r) => child.once('exit', r));
      resolve({
        url,
        port: Number(new URL(url).port),
        /** SIGTERM: the hub drains its streams, then exits. */
        drain: () => child.kill('SIGTERM'),
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
        log: () => stderr,
      });
    });
  });
}

/** Publishes one event or an array of them; resolves to the ids. */
export async function publish(hubUrl, session, events) {
  const res = await fetch(`${hubUrl}/api/sessions/${session}/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(events),
  });
  if (res.status !== 202) throw new Error(`publish: ${res.status} ${await res.text()}`);
  return (await res.json()).ids;
}
