// The example page's committed bundle (examples/agui-agent/src/page.bundle.js) is what its
// sources build, byte for byte: a change to the page or to TetherAgent without a rebuild fails.
// In a file of its own: esbuild's service process stays out of the browser test's process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bundle, OUTPUT } from '../scripts/bundle-example.mjs';

test('the committed page bundle is what its sources build, byte for byte', async () => {
  const built = await bundle();
  assert.ok(readFileSync(OUTPUT, 'utf8') === built, 'run `npm run bundle:example` in clients/js and commit the bundle');
});
