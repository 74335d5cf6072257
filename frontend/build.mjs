// npm run build: bundle the front-end with esbuild into static/build/ (served as /static/build/).
// `make run` and `make test` run this whenever a source is newer than the bundle.

import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}static/build`;

// What WeChat's web-view runs: Android's X5 / Chromium-based WebView, and iOS's WKWebView
// (iOS 14.5 and later: esbuild cannot rewrite destructuring for older Safari).
const BROWSERS = ['chrome64', 'ios14.5', 'safari14.1', 'firefox78'];

await build({
  absWorkingDir: root,
  entryPoints: { h5: 'frontend/h5/main.js' }, // and its CSS: h5.css
  outdir, // overwritten in place: a running server never finds the bundle missing
  bundle: true,
  format: 'iife',
  target: BROWSERS,
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
