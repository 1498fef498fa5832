/**
 * `npm run bench [name…]`: runs every benchmarks/*.bench.ts (or those whose file name contains one
 * of the given names), prints one table, and writes the rows with node, CPU and library versions to
 * benchmarks/results/.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchRow } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter(f => f.endsWith('.bench.ts'))
  .filter(f => filters.length === 0 || filters.some(name => f.includes(name)))
  .sort();

const version = (pkg: string): string =>
  (JSON.parse(readFileSync(join(here, '..', 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

const format = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(Math.abs(n) >= 10 ? 1 : 2);

const rows: BenchRow[] = [];
for (const file of files) {
  const bench = (await import(pathToFileURL(join(here, file)).href)) as { default: Bench };
  process.stderr.write(`running ${file}…\n`);
  const produced = await bench.default();
  rows.push(...produced);
  for (const row of produced) {
    const ratio = row.ratio ? `${row.ratio.value.toFixed(2)}x ${row.ratio.against}` : '';
    console.log(
      [row.suite.padEnd(34), row.case.padEnd(52), `${format(row.value)} ${row.unit}`.padStart(22), ratio.padStart(16), (row.target ?? '').padStart(10), row.note ?? ''].join(' | '),
    );
  }
}

const environment = {
  date: new Date().toISOString(),
  node: process.version,
  v8: process.versions.v8,
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  rxjs: version('rxjs'),
  rxswarm: (JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')) as { version: string }).version,
};
const out = join(here, 'results');
mkdirSync(out, { recursive: true });
const path = join(out, `bench-${environment.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(path, `${JSON.stringify({ environment, rows }, null, 2)}\n`);
writeFileSync(join(out, 'latest.json'), `${JSON.stringify({ environment, rows }, null, 2)}\n`);
console.log(`\n${environment.node} on ${environment.cpu} (${environment.cores} cores), rxjs ${environment.rxjs}; written to ${path}`);
