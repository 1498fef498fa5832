import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// DESIGN.md: imports point one way, src → streams → operators, with no cycles; operators/ and
// streams/ read time only through an injected scheduler (real transports may use wall time).
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const layers = ['operators', 'streams', 'src'] as const;
const rank = { operators: 0, streams: 1, src: 2 } as const;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap(name => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const files = layers.flatMap(layer => sources(join(root, layer)));
const layerOf = (path: string): (typeof layers)[number] => relative(root, path).split('/')[0] as (typeof layers)[number];

function imports(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const found = [...text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return found
    .map(m => m[1] ?? m[2] ?? '')
    .filter(spec => spec.startsWith('.'))
    .map(spec => resolve(dirname(path), spec).replace(/\.js$/, '.ts'));
}

describe('architecture', () => {
  it('finds the layers', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.map(f => [relative(root, f), f]))('%s imports only its own layer or lower ones', (_, file) => {
    for (const target of imports(file)) {
      const from = layerOf(file);
      const to = layerOf(target);
      expect(layers, `${relative(root, file)} imports ${relative(root, target)}`).toContain(to);
      expect(rank[to], `${relative(root, file)} → ${relative(root, target)}`).toBeLessThanOrEqual(rank[from]);
    }
  });

  it('has no import cycles', () => {
    const graph = new Map(files.map(f => [f, imports(f).filter(t => files.includes(t))]));
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') throw new Error(`import cycle: ${[...path, file].map(p => relative(root, p)).join(' → ')}`);
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
  });

  // Real transports (WebSocket, NATS, the JetStream journal) may read wall time at their edges.
  const timed = files.filter(f => layerOf(f) !== 'src' && !/\/(ws|nats|jetstream)[A-Z]?\w*\.ts$/.test(f));
  it.each(timed.map(f => [relative(root, f), f]))('%s reads no wall-clock time', (_, file) => {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    expect(code).not.toMatch(/\bDate\.now\(|\bnew Date\(|performance\.now\(|\bsetTimeout\(|\bsetInterval\(|\bsetImmediate\(|process\.hrtime/);
  });
});
