import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The command line as a user runs it: a real process, its output and its exit code.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

describe('rxswarm command line', () => {
  it('simulate --json prints the report and exits 0 when everything completes', () => {
    const out = cli('simulate', '--topology', 'ring', '--agents', '6', '--subtasks', '50', '--seed', '3', '--faults', 'crash:agent-1@2s,partition:agent-2@1s-6s', '--json');
    expect(out.status).toBe(0);
    const report = JSON.parse(out.stdout) as { completed: number; lost: number; duplicatesAccepted: number; result: { protocol: string } };
    expect(report).toMatchObject({ completed: 50, lost: 0, duplicatesAccepted: 0 });
    expect(report.result.protocol).toBe('ring');
  });

  it('simulate prints the injected faults and every detection', () => {
    const out = cli('simulate', '--topology', 'ring', '--agents', '6', '--subtasks', '50', '--seed', '3', '--faults', 'crash:agent-1@2s,partition:agent-2@1s-6s');
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^faults injected: 2\n {2}agent-1 crashes at 2s: detected at [\d.]+ s \(\+\d+ ms\)\n {2}partition at 1s: \{agent-2\} \| \{everyone else\}, heals at 6s: detected at [\d.]+ s \(\+\d+ ms\)\ndetections: \d+\n/m);
    expect(out.stdout).toMatch(/^ +[\d.]+s {2}fault +agent_timeout \(medium\) agent-2: /m);
  });

  it.each([
    [['simulate', '--topology', 'bus'], /--topology <t>' argument 'bus' is invalid\. must be one of/],
    [['simulate', '--faults', 'crash:nobody@1s'], /unknown agent/],
    [['simulate', '--agents', 'many'], /--agents <n>' argument 'many' is invalid\. must be an integer/],
    [['simulate', '--agents', '100000'], /--agents <n>' argument '100000' is invalid\. at most 10000 agents can be simulated/],
    [['launch'], /unknown command 'launch'/],
    [['serve', '--port', '70000'], /--port <port>' argument '70000' is invalid/],
    [['agent', '--token', 't'], /required option '--connect <url>' not specified/],
    [['agent', '--connect', 'localhost:7070', '--token', 't'], /must be ws:\/\/HOST:PORT/],
    [['run', 'task.json', '--connect', 'ws://127.0.0.1:1', '--token', 't', '--bogus'], /unknown option '--bogus'/],
  ])('exits 2 with a clear message for %j', (args, message) => {
    const out = cli(...args);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(out.stderr).toMatch(/rxswarm --help/);
  });

  it('says what is wrong with a task file where it is, as validateTask says it, before connecting (exit 2)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-taskfile-'));
    try {
      const cases: Array<[unknown, RegExp]> = [
        [{ id: 't', subtasks: [], deadLineMs: 5 }, /^error: \S+: Unrecognized key: "deadLineMs"$/m],
        [{ id: 't', subtasks: [{ id: 'x', capabilites: ['a'] }] }, /^error: \S+: subtasks\[0\]: Unrecognized key: "capabilites"$/m],
        [{ id: 't', subtasks: [{ id: 'x', priority: 'high' }] }, /^error: \S+: subtasks\[0\]: priority must be a finite number, got high$/m],
      ];
      cases.forEach(([task, message], i) => {
        const file = join(dir, `task-${i}.json`);
        writeFileSync(file, JSON.stringify(task));
        const out = cli('run', file, '--connect', 'ws://127.0.0.1:1', '--token', 't');
        expect(out.status).toBe(2);
        expect(out.stderr).toMatch(message);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('demo runs the main job to the end and reports, the same for the same seed', () => {
    const args = ['demo', '--agents', '6', '--subtasks', '60', '--seed', '2', '--speed', '200'];
    const out = cli(...args);
    expect(out.status).toBe(0);
    // 60 subtasks and the children the circular wait asked for (a slot each of its pair, at least).
    expect(out.stdout).toMatch(/done: (6\d) of \1 subtasks completed, 0 failed/);
    const fault = '(?:(?:relay|crash|exhaust|slow|hang|partition) agent-\\d+|deadlock agent-2\\+agent-3) at \\d+ ms';
    expect(out.stdout).toMatch(new RegExp(`\\ninjected: (?:${fault}; ){4,6}${fault}\\ndetected: .*agent_timeout \\d`));
    // Only the wall time may differ: the run is in virtual time, from the seed.
    const again = cli(...args);
    const run = (stdout: string) => stdout.replace(/ in [\d.]+ s of wall time/, '');
    expect(run(again.stdout)).toBe(run(out.stdout));
  });

  it('--help exits 0 and lists every command', () => {
    const out = cli('--help');
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/exit codes/);
    for (const command of ['demo', 'simulate', 'serve', 'agent', 'run']) expect(out.stdout).toMatch(new RegExp(`\\n  ${command} `));
  });

  it('--version prints the version in package.json', () => {
    const out = cli('--version');
    expect(out.status).toBe(0);
    expect(out.stdout.trim()).toBe((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('agent --handler with a syntax error exits 2 naming file:line:col', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-cli-'));
    try {
      const file = join(dir, 'broken.mjs');
      writeFileSync(file, 'export async function handle(subtask) {\n  return { ok: subtask.payload, };;\n  const = 1;\n}\n');
      const out = cli('agent', '--connect', 'ws://127.0.0.1:1', '--token', 't', '--handler', file);
      expect(out.status).toBe(2);
      expect(out.stderr).toContain(`--handler ${file}: SyntaxError: Unexpected token '=' at ${file}:3:9`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('simulate --help documents the fault syntax, every kind with an example', () => {
    const out = cli('simulate', '--help');
    expect(out.status).toBe(0);
    for (const form of ['crash:AGENT@TIME', 'hang:AGENT@TIME', 'slow:AGENT@TIMExFACTOR', 'restart:AGENT@TIME', 'drop:RATE[:AGENTS][@FROM[-TO]]', 'partition:AGENTS[/AGENTS…]@AT[-HEAL]']) {
      expect(out.stdout).toContain(form);
    }
  });

  it('simulate --help says what each topology costs: ring O(n) per subtask, mesh O(n²), by nature', () => {
    const out = cli('simulate', '--help');
    expect(out.stdout).toMatch(/ring\s+O\(n\) per subtask by nature/);
    expect(out.stdout).toMatch(/mesh\s+O\(n²\) by nature/);
  });

  it('simulate warns on stderr with the expected cost before a costly run starts', async () => {
    // mesh, 5,000 agents: minutes of work; the warning comes first, then the process is stopped.
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), 'simulate', '--topology', 'mesh', '--agents', '5000', '--json'], { cwd: root });
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const bound = setTimeout(() => reject(new Error(`no warning within 30 s; stderr: ${stderr}`)), 30_000);
        child.stderr.on('data', chunk => {
          stderr += String(chunk);
          if (stderr.includes('\n')) {
            clearTimeout(bound);
            resolve();
          }
        });
        child.on('exit', () => {
          clearTimeout(bound);
          resolve();
        });
      });
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toMatch(/^warning: mesh with 5000 agents and 200 subtasks .* about \d+ million messages \(every agent heartbeats every other agent.*\): expect roughly \d+ min of wall time/);
  });

  it('agent and serve read --config and RXSWARM_* variables (flag > environment > file); unknown keys exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-cli-'));
    try {
      const broken = join(dir, 'broken.mjs');
      writeFileSync(broken, 'export const = 1;\n');
      // connect and handler from the file, the token from the environment: the handler is loaded (and refused).
      const config = join(dir, 'agent.json');
      writeFileSync(config, JSON.stringify({ connect: 'ws://127.0.0.1:1', handler: broken, capabilities: ['code'] }));
      const agent = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli.ts'), 'agent', '--config', config], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, RXSWARM_TOKEN: 't' } });
      expect(agent.status).toBe(2);
      expect(agent.stderr).toContain(`--handler ${broken}: SyntaxError`);
      // A flag wins over the file.
      const flagged = cli('agent', '--config', config, '--token', 't', '--handler', join(dir, 'absent.mjs'));
      expect(flagged.stderr).toContain(`--handler ${join(dir, 'absent.mjs')}: cannot load`);

      const misspelt = join(dir, 'serve.json');
      writeFileSync(misspelt, JSON.stringify({ prot: 7070 }));
      const serve = cli('serve', '--config', misspelt, '--token', 't');
      expect(serve.status).toBe(2);
      expect(serve.stderr).toMatch(/^error: --config .*serve\.json: unknown key "prot" \(the options of serve are host, port, token, topology, heartbeatMs, tlsCert, tlsKey, maxConnections, maxSlots, metricsPublic, dataDir, maxTasks, retention, maxAttempts, attemptTimeout, progressTimeout, deadlockTimeout, nats, leaseTtl, nodeId, logFormat, logLevel\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
