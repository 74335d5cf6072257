// miniprogram/ holds what `npm run build` makes from the sources now: a developer who opens
// it in WeChat DevTools (or copies lib/chat-client.js) never gets a stale library, and the
// mini-program tests test the code in the repository.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

import { MINIPROGRAM_BUILDS } from '../miniprogram-build.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const STALE = 'stale or missing: run `npm run build` (make test does)';

function files(dir, prefix = '') {
  return readdirSync(dir).flatMap((name) =>
    statSync(`${dir}/${name}`).isDirectory() ? files(`${dir}/${name}`, `${prefix}${name}/`) : [`${prefix}${name}`],
  );
}

test('miniprogram/lib/ is what the build makes from frontend/ now', async () => {
  for (const options of MINIPROGRAM_BUILDS) {
    const result = await build({ absWorkingDir: root, ...options, outdir: `${root}miniprogram/lib`, write: false });
    for (const output of result.outputFiles) {
      let written = null;
      try {
        written = readFileSync(output.path, 'utf8');
      } catch {
        // missing: reported below
      }
      assert.ok(written === output.text, `${output.path.slice(root.length)} ${STALE}`);
    }
  }
});

test('miniprogram/components/mp-html/ is the mp-html package installed', () => {
  const source = `${root}node_modules/mp-html/dist/mp-weixin`;
  const copy = `${root}miniprogram/components/mp-html`;
  for (const name of files(source)) {
    let written = null;
    try {
      written = readFileSync(`${copy}/${name}`);
    } catch {
      // missing: reported below
    }
    assert.ok(written && written.equals(readFileSync(`${source}/${name}`)), `mp-html/${name} ${STALE}`);
  }
});
