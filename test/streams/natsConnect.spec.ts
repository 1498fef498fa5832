import { NatsSetupError, connectNats, parseNatsUrl, versionAtLeast } from '../../streams/natsConnect.js';
import { startNatsServer, type NatsServer } from './natsServer.js';

// connectNats against real nats-servers started per test (never skipped): what it checks and
// what it says when something is missing.
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: Parameters<typeof startNatsServer>[0] = {}): Promise<NatsServer> {
  const s = await startNatsServer(options);
  cleanups.push(() => s.stop());
  return s;
}

describe('connectNats', () => {
  it('parses credentials out of the URL', () => {
    expect(parseNatsUrl('nats://alice:s%3Acret@h:4222')).toEqual({ url: 'nats://h:4222', server: 'nats://h:4222', user: 'alice', pass: 's:cret' });
    expect(parseNatsUrl('nats://tok@h:4222')).toEqual({ url: 'nats://h:4222', server: 'nats://h:4222', natsToken: 'tok' });
    expect(() => parseNatsUrl('ws://h:1')).toThrow(RangeError);
  });

  it.each([
    ['2.9.10', '2.9.0', true],
    ['2.10.0', '2.9.0', true],
    ['2.8.4', '2.9.0', false],
    ['3.0.0-beta', '2.9.0', true],
  ])('versionAtLeast(%s, %s) is %s', (a, b, expected) => expect(versionAtLeast(a, b)).toBe(expected));

  it('connects to a server with JetStream and checks its version', async () => {
    const s = await server();
    const nc = await connectNats({ url: s.url });
    cleanups.push(() => nc.close());
    expect(versionAtLeast(nc.info?.version ?? '0', '2.9.0')).toBe(true);
  });

  it('says clearly that JetStream is missing', async () => {
    const s = await server({ jetstream: false });
    await expect(connectNats({ url: s.url })).rejects.toThrow(/JetStream disabled: start it with -js/);
    // An agent does not need JetStream.
    const nc = await connectNats({ url: s.url, requireJetStream: false });
    await nc.close();
  });

  it('authenticates with user/password and with a token, and says when the credentials are refused', async () => {
    const s = await server({ user: 'alice', pass: 'wonder' });
    const nc = await connectNats({ url: `nats://alice:wonder@127.0.0.1:${s.port}` });
    await nc.close();
    // Given apart (from the environment), and the URL's winning over them.
    await (await connectNats({ url: s.url, user: 'alice', pass: 'wonder' })).close();
    await (await connectNats({ url: `nats://alice:wonder@127.0.0.1:${s.port}`, user: 'mallory', pass: 'x' })).close();
    const err = await connectNats({ url: `nats://alice:wrong@127.0.0.1:${s.port}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsSetupError);
    expect((err as NatsSetupError).final).toBe(true);
    expect((err as Error).message).toMatch(/refused the credentials/);
    const t = await server({ token: 'nats-tok' });
    const tc = await connectNats({ url: t.url, natsToken: 'nats-tok' });
    await tc.close();
  });

  it('the test helper fails, never skips, when it cannot start a server', async () => {
    await expect(startNatsServer({ binary: '/nonexistent/nats-server' })).rejects.toThrow(/not found: install Debian's nats-server package/);
    await expect(startNatsServer({ binary: '/bin/false', startTimeoutMs: 5000 })).rejects.toThrow(/exited \(1\) before it was ready/);
  });

  it('says when nothing listens', async () => {
    await expect(connectNats({ url: 'nats://127.0.0.1:1', timeoutMs: 2000 })).rejects.toThrow(/cannot reach nats-server at nats:\/\/127.0.0.1:1/);
  });
});

