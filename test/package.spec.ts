import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The package as a user gets it: `npm pack`, installed into a fresh project with production
// dependencies only (fast-check, an optional peer, is not there), then imported and type-checked.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  typesVersions: Record<string, Record<string, string[]>>;
};

function run(command: string, args: string[], cwd: string, timeoutMs = 60_000) {
  const out = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, NO_COLOR: '1' } });
  if (out.error) throw out.error;
  return out;
}

function ok(command: string, args: string[], cwd: string, timeoutMs?: number): string {
  const out = run(command, args, cwd, timeoutMs);
  if (out.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${out.status}:\n${out.stdout}\n${out.stderr}`);
  return out.stdout;
}

describe('the packed package', () => {
  let dir: string;
  let project: string;
  let files: string[];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rxswarm-package-'));
    // `npm pack` runs `prepare`, so this also checks that the build works from the sources.
    const packed = JSON.parse(ok('npm', ['pack', '--json', '--pack-destination', dir], root, 90_000)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed[0]!.files.map(f => f.path);
    project = join(dir, 'consumer');
    ok('mkdir', ['-p', project], dir);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    ok('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', join(dir, packed[0]!.filename)], project, 90_000);
  }, 180_000);

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('ships the licence, the readme and the build, without source maps pointing at sources it does not ship', () => {
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', manifest.bin.rxswarm!.replace(/^\.\//, '')]));
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the rxswarm authors\n/);
    expect(files.filter(f => f.endsWith('.map'))).toEqual([]);
    expect(files.filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    for (const target of Object.values(manifest.exports).flatMap(t => (typeof t === 'string' ? [t] : [t.types, t.default]))) {
      expect(files, target).toContain(target.replace(/^\.\//, ''));
    }
  });

  it('leaves the command executable in the working copy after a build (npx rxswarm runs it there)', () => {
    // The pack above ran `prepare`, the build.
    expect(statSync(join(root, manifest.bin.rxswarm!)).mode & 0o111).toBe(0o111);
  });

  it('ships the dashboard built at install (the page serve answers at /)', () => {
    expect(files).toEqual(expect.arrayContaining(['dist/dashboard/index.html', 'dist/dashboard/app.js', 'dist/dashboard/app.css']));
    expect(files.filter(f => f.startsWith('dashboard/'))).toEqual([]); // its sources stay out
  });

  it('maps every subpath in typesVersions to the declarations its export names', () => {
    const mapped = manifest.typesVersions['*']!;
    for (const subpath of ['operators', 'streams', 'testing']) {
      const target = manifest.exports[`./${subpath}`] as { types: string };
      expect(mapped[subpath]).toEqual([target.types]);
      expect(files).toContain(target.types.replace(/^\.\//, ''));
    }
  });

  it('installs without fast-check, and every subpath imports from plain ESM', () => {
    expect(existsSync(join(project, 'node_modules', 'fast-check'))).toBe(false);
    const script = `
      import * as all from 'rxswarm';
      import * as operators from 'rxswarm/operators';
      import * as streams from 'rxswarm/streams';
      import * as testing from 'rxswarm/testing';
      const report = testing.simulate({ seed: 1, topology: 'star', agents: 3, subtasks: 5 });
      console.log(JSON.stringify({
        createCoordinator: typeof all.createCoordinator,
        phiAccrual: typeof operators.phiAccrual,
        InMemoryNetwork: typeof streams.InMemoryNetwork,
        faultPlan: typeof testing.faultPlan,
        sameFaultPlan: all.faultPlan === testing.faultPlan,
        completed: report.completed,
      }));`;
    const out = ok(process.execPath, ['--input-type=module', '-e', script], project);
    expect(JSON.parse(out)).toEqual({ createCoordinator: 'function', phiAccrual: 'function', InMemoryNetwork: 'function', faultPlan: 'function', sameFaultPlan: true, completed: 5 });
  });

  it('faultPlan without fast-check says how to install it', () => {
    const script = `
      import { faultPlan } from 'rxswarm/testing';
      try { faultPlan({ agents: ['agent-1'], spanMs: 1000 }); console.log('no error'); }
      catch (err) { console.log(err.message); }`;
    expect(ok(process.execPath, ['--input-type=module', '-e', script], project).trim()).toBe(
      'faultPlan needs fast-check (an optional peer dependency of rxswarm): npm install -D fast-check',
    );
  });

  it('the installed command prints its version', () => {
    expect(ok(join(project, 'node_modules', '.bin', 'rxswarm'), ['--version'], project).trim()).toBe(manifest.version);
  });

  // Nodes that strip types themselves (process.features.typescript) load it; Node 20 cannot.
  it.skipIf(Boolean((process.features as { typescript?: unknown }).typescript))('the installed command says how to run a TypeScript handler, which Node 20 cannot load', () => {
    writeFileSync(join(project, 'handler.ts'), 'export function handle(subtask: { id: string }): string { return subtask.id; }\n');
    const out = run(join(project, 'node_modules', '.bin', 'rxswarm'), ['agent', '--connect', 'ws://127.0.0.1:1', '--token', 't', '--handler', 'handler.ts'], project);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/--handler handler\.ts: Node v[\d.]+ cannot load TypeScript by itself: compile the handler to JavaScript \(e\.g\. with tsc\).*node --import tsx/);
  });

  // TypeScript 7 has removed `moduleResolution` node10 (and classic): it refuses the option
  // outright (TS5108), so typesVersions (for older compilers under node10) is checked above by
  // its mapping, and the compiler here checks what it accepts.
  it('TypeScript 7 refuses moduleResolution node10', () => {
    writeFileSync(join(project, 'empty.ts'), 'export {};\n');
    const out = run(tsc, ['--noEmit', '--module', 'commonjs', '--moduleResolution', 'node10', 'empty.ts'], project);
    expect(out.stdout).toMatch(/TS5108: Option 'moduleResolution=node10' has been removed/);
  });

  it.each([
    ['node16', 'node16'],
    ['nodenext', 'nodenext'],
    ['esnext', 'bundler'],
  ])('every subpath type-checks under module %s, moduleResolution %s, with library declarations checked', (module, moduleResolution) => {
    writeFileSync(
      join(project, 'consumer.ts'),
      [
        "import { createCoordinator, star, type CoordinationResult } from 'rxswarm';",
        "import { phiAccrual, type Heartbeat } from 'rxswarm/operators';",
        "import { InMemoryNetwork } from 'rxswarm/streams';",
        "import { faultPlan, simulate, VirtualScheduler, type Fault, type SimulationReport } from 'rxswarm/testing';",
        "const report: SimulationReport = simulate({ seed: 1, topology: 'ring', agents: 3, subtasks: 4 });",
        'const done: number = report.completed;',
        '// @ts-expect-error subtasks is a count or a list',
        "simulate({ seed: 1, topology: 'ring', agents: 3, subtasks: 'four' });",
        'export const used = [createCoordinator, star, phiAccrual, InMemoryNetwork, faultPlan, VirtualScheduler, done];',
        'export type Used = [CoordinationResult, Heartbeat, Fault];',
        '',
      ].join('\n'),
    );
    const out = run(tsc, ['--noEmit', '--strict', '--skipLibCheck', 'false', '--target', 'es2022', '--module', module, '--moduleResolution', moduleResolution, 'consumer.ts'], project);
    expect(out.stdout + out.stderr).toBe('');
    expect(out.status).toBe(0);
  });

  // The NATS transport is an entry point of its own: rxswarm and rxswarm/streams load no NATS
  // client, and the @nats-io declarations (Symbol.asyncDispose, TextEncoder, WebSocket) ask for lib esnext and dom.
  it('rxswarm/nats imports from plain ESM and type-checks with lib esnext and dom', () => {
    const script = `
      import * as nats from 'rxswarm/nats';
      console.log(JSON.stringify({ NatsNetwork: typeof nats.NatsNetwork, NatsLease: typeof nats.NatsLease, connectNats: typeof nats.connectNats }));`;
    expect(JSON.parse(ok(process.execPath, ['--input-type=module', '-e', script], project))).toEqual({ NatsNetwork: 'function', NatsLease: 'function', connectNats: 'function' });
    writeFileSync(join(project, 'natsConsumer.ts'), "import { NatsNetwork, connectNats, type LeaseState } from 'rxswarm/nats';\nexport const used = [NatsNetwork, connectNats];\nexport type Used = LeaseState;\n");
    const out = run(tsc, ['--noEmit', '--strict', '--skipLibCheck', 'false', '--target', 'es2022', '--lib', 'esnext,dom', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'natsConsumer.ts'], project);
    expect(out.stdout + out.stderr).toBe('');
    expect(out.status).toBe(0);
  });
});
