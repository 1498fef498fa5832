// Builds the dashboard (dashboard/*.tsx, Preact) into dist/dashboard: index.html, app.js, app.css.
// Run by `npm run build` (and so by `prepare` on `npm ci`/`npm install` from a clone). Everything
// the page needs is in those three files: nothing is fetched at run time. An argument builds into
// another directory instead (tests build their own copy; serve takes it from RXSWARM_DASHBOARD_DIR).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ?? join(root, 'dist', 'dashboard');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, 'dashboard', 'app.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(join(root, 'dashboard', 'app.css'), join(out, 'app.css'));

// The script and the style inline in index.html: a page that loads while the coordinator is busy
// waits for one answer, not for three in two rounds. The content security policy names them by
// their hashes (inline.json, read by the service), so it still runs no other script.
const js = readFileSync(join(out, 'app.js'), 'utf8').trimEnd();
const css = readFileSync(join(out, 'app.css'), 'utf8').trimEnd();
if (/<\/(script|style)/i.test(js + css)) throw new Error('the built page holds a closing tag: it cannot go inline');
const hash = text => `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
const html = readFileSync(join(root, 'dashboard', 'index.html'), 'utf8')
  .replace('<link rel="stylesheet" href="/app.css">', () => `<style>${css}</style>`)
  .replace('<script type="module" src="/app.js"></script>', () => `<script type="module">${js}</script>`);
if (!html.includes(js) || !html.includes(css)) throw new Error('dashboard/index.html no longer has the tags this script inlines');
writeFileSync(join(out, 'index.html'), html);
writeFileSync(join(out, 'inline.json'), `${JSON.stringify({ script: [hash(js)], style: [hash(css)] })}\n`);
