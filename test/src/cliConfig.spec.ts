import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, configurable, envName } from '../../src/cliConfig.js';

const port = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be an integer in [0, 65535]');
  return n;
};

/** A command like `serve`, parsed from `args`; resolves with the options it ran with. */
async function parse(args: string[]): Promise<Record<string, unknown>> {
  let seen: Record<string, unknown> = {};
  const command = configurable(new Command('serve').exitOverride().configureOutput({ writeErr: () => undefined }), [
    new Option('--host <host>', 'interface').default('127.0.0.1'),
    new Option('--port <port>', 'port').argParser(port).default(7070),
    new Option('--heartbeat-ms <ms>', 'interval').argParser(port).default(1000),
    new Option('--capabilities <list>', 'list').argParser(text => text.split(',')).default([]),
    new Option('--verbose', 'a switch'),
  ]).action(options => void (seen = options as Record<string, unknown>));
  await command.parseAsync(args, { from: 'user' });
  return seen;
}

describe('configurable', () => {
  let dir: string;
  const file = (content: unknown): string => {
    const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'rxswarm-config-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.unstubAllEnvs());

  it.each([
    ['--heartbeat-ms', 'RXSWARM_HEARTBEAT_MS'],
    ['--port', 'RXSWARM_PORT'],
    ['--config', 'RXSWARM_CONFIG'],
  ])('names the variable of %s %s', (flag, name) => {
    expect(envName(flag)).toBe(name);
  });

  // precedence: flag > environment > config file > default
  it.each<[string, string[], string | undefined, number | undefined, number]>([
    ['default alone', [], undefined, undefined, 7070],
    ['config file over default', [], undefined, 7001, 7001],
    ['environment over config file', [], '7002', 7001, 7002],
    ['environment over default', [], '7002', undefined, 7002],
    ['flag over environment and config file', ['--port', '7003'], '7002', 7001, 7003],
    ['flag over config file', ['--port', '7003'], undefined, 7001, 7003],
  ])('%s', async (_, args, env, configured, expected) => {
    if (env !== undefined) vi.stubEnv('RXSWARM_PORT', env);
    const config = configured === undefined ? [] : ['--config', file({ port: configured })];
    expect((await parse([...args, ...config])).port).toBe(expected);
  });

  it('reads the config file named by RXSWARM_CONFIG, every key as its flag would read', async () => {
    vi.stubEnv('RXSWARM_CONFIG', file({ host: '0.0.0.0', heartbeatMs: '500', capabilities: ['code', 'review'], verbose: true }));
    expect(await parse([])).toMatchObject({ host: '0.0.0.0', port: 7070, heartbeatMs: 500, capabilities: ['code', 'review'], verbose: true });
  });

  it('keeps other sources for the keys a config file leaves out', async () => {
    vi.stubEnv('RXSWARM_HEARTBEAT_MS', '250');
    expect(await parse(['--config', file({ port: 1 }), '--host', 'h'])).toMatchObject({ host: 'h', port: 1, heartbeatMs: 250 });
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown key', { port: 1, prot: 2 }, /unknown key "prot" \(the options of serve are host, port, heartbeatMs, capabilities, verbose\)/],
    ['a value out of range', { port: 70000 }, /port: 70000 is invalid: must be an integer in \[0, 65535\]/],
    ['a value of the wrong type', { host: { name: 'x' } }, /host: must be a string, got \{"name":"x"\}/],
    ['a switch that is not a boolean', { verbose: 'yes' }, /verbose: must be true or false, got "yes"/],
    ['not an object', [1, 2], /must be a JSON object of options/],
    ['not JSON', '{ port: 1 }', /--config .*config-\w+\.json: .*JSON/],
    ['the config key itself', { config: 'other.json' }, /unknown key "config"/],
  ])('refuses %s, naming the file', async (_, content, message) => {
    const path = file(content);
    const parsing = parse(['--config', path]);
    await expect(parsing).rejects.toThrow(ConfigError);
    await expect(parse(['--config', path])).rejects.toThrow(message);
    await expect(parse(['--config', path])).rejects.toThrow(`--config ${path}: `);
  });

  it('refuses a bad key even where a flag overrides it', async () => {
    await expect(parse(['--port', '1', '--config', file({ port: -1 })])).rejects.toThrow(/port: -1 is invalid/);
  });

  it('refuses a missing file', async () => {
    await expect(parse(['--config', join(dir, 'absent.json')])).rejects.toThrow(/--config .*absent\.json: ENOENT/);
  });
});
