// Bundles the AG-UI example's page script (examples/agui-agent/src/page.js, which imports
// tether-client/agui and with it @ag-ui/client and rxjs) into one file the example serves, so
// the page needs no CDN and no install. `node scripts/bundle-example.mjs` writes the file;
// `--check` compares a fresh build with the committed one (the JS tests do that too).

import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLE_SRC = path.resolve(PACKAGE_DIR, '../../examples/agui-agent/src');
export const ENTRY = path.join(EXAMPLE_SRC, 'page.js');
export const OUTPUT = path.join(EXAMPLE_SRC, 'page.bundle.js');

/** The bundle's text, built in memory. Settings fixed here so every build is byte-identical. */
export async function bundle() {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'eof',
    charset: 'utf8',
    absWorkingDir: PACKAGE_DIR,
    // The page imports the package by name; its dependencies come from this package's
    // node_modules (the page's folder has none).
    alias: { 'tether-client/agui': path.join(PACKAGE_DIR, 'src/agui.js') },
    nodePaths: [path.join(PACKAGE_DIR, 'node_modules')],
    banner: { js: '// Built from examples/agui-agent/src/page.js by clients/js/scripts/bundle-example.mjs; do not edit.' },
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await bundle();
  if (process.argv.includes('--check')) {
    if (readFileSync(OUTPUT, 'utf8') !== text) {
      console.error(`${OUTPUT} is out of date: run \`npm run bundle:example\` in clients/js`);
      process.exit(1);
    }
    console.log('the committed bundle matches its sources');
  } else {
    writeFileSync(OUTPUT, text);
    console.log(`wrote ${OUTPUT} (${text.length} bytes)`);
  }
}
