// Builds the dashboard (dashboard/*.tsx, Preact) into dist/dashboard: index.html, app.js, app.css.
// Run by `npm run build` (and so by `prepare` on `npm ci`/`npm install` from a clone). Everything
// the page needs is in those three files: nothing is fetched at run time. An argument builds into
// another directory instead (tests build their own copy; serve takes it from RXSWARM_DASHBOARD_DIR).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
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
copyFileSync(join(root, 'dashboard', 'index.html'), join(out, 'index.html'));
