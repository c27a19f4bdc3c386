// Bundles the playground (src/main.jsx) into ../graph/playground/, which the
// Go binary embeds (graph/playground.go). Run from web/: `node build.mjs`
// (or `make playground` from the repository root, which runs `npm ci` first).
//
// Output, minified, fixed names (graph.Playground adds a content hash to the
// URLs and sets the cache headers):
//   graphiql.js            React, GraphiQL, graphql, graphql-ws and the page
//   graphiql.css           GraphiQL's styles, its fonts inlined as data: URLs
//   graphiql.js.LEGAL.txt  the bundled packages' license comments
import * as esbuild from 'esbuild';
import { readdir, rm, mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'graph', 'playground');

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { graphiql: 'src/main.jsx' },
  outdir,
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  // Fonts and images stay inside the CSS as data: URLs; nothing is fetched
  // from another host at run time.
  loader: { '.woff': 'dataurl', '.woff2': 'dataurl', '.ttf': 'dataurl', '.svg': 'dataurl', '.png': 'dataurl' },
  legalComments: 'linked',
  sourcemap: false,
  charset: 'utf8',
  logLevel: 'warning',
  metafile: true,
});

if (result.errors.length > 0) {
  process.exit(1);
}

// Refuse a bundle that would load anything from another host.
const { readFile } = await import('node:fs/promises');
const forbidden = /(fonts\.googleapis\.com|fonts\.gstatic\.com|unpkg\.com|cdn\.jsdelivr\.net|esm\.sh|cdnjs\.cloudflare\.com|@import\s+url\(\s*["']?https?:)/i;
for (const name of await readdir(outdir)) {
  const text = await readFile(join(outdir, name), 'utf8');
  const m = forbidden.exec(text);
  if (m) {
    console.error(`build: ${name} references an outside host: ${m[0]}`);
    process.exit(1);
  }
}

for (const name of (await readdir(outdir)).sort()) {
  const { size } = await stat(join(outdir, name));
  console.log(`${name.padEnd(24)} ${(size / 1024).toFixed(1).padStart(8)} KiB`);
}
