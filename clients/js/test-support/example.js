// Starts `example-agui-agent` (the simulated agent with tether's run route) on 127.0.0.1:0.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The example's binary: `EXAMPLE_BIN` (relative to clients/js), default next to the hub's. */
export const EXAMPLE_BIN = path.resolve(
  PACKAGE_DIR,
  process.env.EXAMPLE_BIN ?? path.join(path.dirname(process.env.TETHER_BIN ?? '../../target/debug/tether'), 'example-agui-agent'),
);

/** Why example tests cannot run, or `false`. */
export function exampleMissing() {
  if (existsSync(EXAMPLE_BIN)) return false;
  return `example-agui-agent not found at ${EXAMPLE_BIN} (build it with \`cargo build -p example-agui-agent\` or set EXAMPLE_BIN)`;
}

/** The simulated agent's text before it asks for approval (examples/agui-agent/src/main.rs). */
export const INTRO =
  'I looked at your workspace. The build cache in /tmp/build-cache takes 4.2 GB ' +
  'and has not been used for a month, so I would like to delete it.';

/**
 * Starts the example with extra `args`; resolves to `{ url, port, token, stop() }` (`token`:
 * the development token it printed).
 */
export function startExample(args = []) {
  const child = spawn(EXAMPLE_BIN, ['--addr', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.removeListener('exit', reap));
  let stderr = '';
  child.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let started = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`example-agui-agent did not print its address within 20 s\n${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`example-agui-agent exited (${code}) before listening\n${stderr}`));
    });
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening on http:\/\/(\S+)/.exec(stdout);
      // The example prints more after its address: only the first match starts the test.
      if (!m || started) return;
      started = true;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const url = `http://${m[1]}`;
      const exited = new Promise((r) => child.once('exit', r));
      resolve({
        url,
        port: Number(new URL(url).port),
        token: /development token: (\S+)/.exec(stdout)?.[1] ?? null,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}
