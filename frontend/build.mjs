// npm run build: bundle the front-end with esbuild.
//   static/build/          the H5 page (served as /static/build/)
//   miniprogram/lib/       the mini-program's client library and Markdown renderer, as
//                          CommonJS (what a mini-program's `require` loads)
//   miniprogram/components/mp-html/   the mp-html component from npm (its WeChat build)
// `make run` and `make test` run this whenever a source is newer than the bundle; the node
// tests check that miniprogram/ holds what this build makes now (frontend/tests/).

import { cpSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

import { MINIPROGRAM_BUILDS } from './miniprogram-build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

// What WeChat's web-view runs: Android's X5 / Chromium-based WebView, and iOS's WKWebView
// (iOS 14.5 and later: esbuild cannot rewrite destructuring for older Safari).
const BROWSERS = ['chrome64', 'ios14.5', 'safari14.1', 'firefox78'];

await build({
  absWorkingDir: root,
  entryPoints: { h5: 'frontend/h5/main.js' }, // and its CSS: h5.css
  outdir: `${root}static/build`, // overwritten in place: a running server never finds it missing
  bundle: true,
  format: 'iife',
  target: BROWSERS,
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});

for (const options of MINIPROGRAM_BUILDS) {
  await build({ absWorkingDir: root, ...options, outdir: `${root}miniprogram/lib` });
}

const mpHtml = `${root}miniprogram/components/mp-html`;
rmSync(mpHtml, { recursive: true, force: true });
cpSync(`${root}node_modules/mp-html/dist/mp-weixin`, mpHtml, { recursive: true });
