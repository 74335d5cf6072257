// esbuild's options for the mini-program's bundles (frontend/build.mjs writes them; the
// node tests build them again in memory to check miniprogram/lib/ is current).

const COMMON = {
  bundle: true,
  format: 'cjs',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  // The base library's JS engines (JavaScriptCore on iOS, V8 on Android) run ES2017;
  // object spread and async iteration are rewritten for them.
  target: 'es2017',
  legalComments: 'inline',
  banner: {
    js: '// Built by `npm run build` from frontend/miniprogram/ (docs/miniprogram.md). Do not edit.',
  },
  logLevel: 'warning',
};

export const MINIPROGRAM_BUILDS = [
  // The client library: readable, for the developer who copies it into a mini-program.
  { ...COMMON, entryPoints: { 'chat-client': 'frontend/miniprogram/index.js' }, minify: false },
  // markdown-it for the page's <mp-html>: minified, it is most of the page's code.
  { ...COMMON, entryPoints: { markdown: 'frontend/miniprogram/markdown.js' }, minify: true },
];
