import { acceptHandshake, decodeHandshake, helloProven, openHandshake, tokenKey, type NatsHello, type NatsJoin } from '../../streams/natsSession.js';

// The NATS handshake without a server: both sides derive the same secrets, and every proof fails
// for someone without the token or for an altered message.
const TOKEN = tokenKey('shared');
const OTHER = tokenKey('not shared');
const hello = { agentId: 'a-1', capabilities: ['code'], role: 'agent' as const, slots: 2, instance: 'i-1', maxFrameBytes: 1 << 20 };

function full(join: ReturnType<typeof acceptHandshake>): NatsJoin {
  if (join === undefined) throw new Error('refused');
  return { ...join.join, heartbeatMs: 1000, maxValueBytes: 1 << 20 };
}

describe('natsSession', () => {
  it('gives both sides the same key and session id, neither on the wire', () => {
    const agent = openHandshake(TOKEN, hello);
    expect(helloProven(TOKEN, agent.hello)).toBe(true);
    const accepted = acceptHandshake(TOKEN, agent.hello, 'coordinator-session');
    const secrets = agent.finish(full(accepted));
    expect(secrets).toBeDefined();
    expect(secrets!.key.equals(accepted!.secrets.key)).toBe(true);
    expect(secrets!.sid).toBe(accepted!.secrets.sid);
    expect(secrets!.sid).toMatch(/^[0-9a-f]{32}$/);
    const wire = JSON.stringify([agent.hello, accepted!.join]);
    expect(wire).not.toContain(secrets!.key.toString('base64'));
    expect(wire).not.toContain(secrets!.sid);
    expect(wire).not.toContain('shared');
  });

  it('draws fresh secrets for every handshake', () => {
    const one = openHandshake(TOKEN, hello);
    const two = openHandshake(TOKEN, hello);
    expect(acceptHandshake(TOKEN, one.hello, 's')!.secrets.sid).not.toBe(acceptHandshake(TOKEN, two.hello, 's')!.secrets.sid);
  });

  it.each<[string, (h: NatsHello) => NatsHello]>([
    ['another id', h => ({ ...h, agentId: 'a-2' })],
    ['another role', h => ({ ...h, role: 'client' })],
    ['another instance', h => ({ ...h, instance: 'i-2' })],
    ['another public key', h => ({ ...h, pub: Buffer.alloc(32, 7).toString('base64') })],
    ['another nonce', h => ({ ...h, nonce: Buffer.alloc(16, 1).toString('base64') })],
  ])('refuses a hello altered to carry %s', (_, alter) => {
    const { hello: sent } = openHandshake(TOKEN, hello);
    expect(helloProven(TOKEN, alter(sent))).toBe(false);
  });

  it('refuses a hello made without the token', () => {
    expect(helloProven(TOKEN, openHandshake(OTHER, hello).hello)).toBe(false);
  });

  it.each<[string, (j: NatsJoin) => NatsJoin]>([
    ['made without the token', j => j],
    ['for another agent', j => ({ ...j, agentId: 'a-2' })],
    ['naming another session', j => ({ ...j, session: 'elsewhere' })],
    ['with another public key', j => ({ ...j, pub: Buffer.alloc(32, 9).toString('base64') })],
  ])('ignores a join %s', (what, alter) => {
    const agent = openHandshake(TOKEN, hello);
    const join = full(acceptHandshake(what === 'made without the token' ? OTHER : TOKEN, agent.hello, 's'));
    expect(agent.finish(alter(join))).toBeUndefined();
  });

  it('decodes in the boundary order: size, depth, JSON, shape', () => {
    const { hello: sent } = openHandshake(TOKEN, hello);
    expect(decodeHandshake('hello', JSON.stringify(sent), 4096)).toMatchObject({ ok: true });
    expect(decodeHandshake('hello', 'x'.repeat(5000), 4096)).toMatchObject({ ok: false, error: expect.stringMatching(/exceeds the limit/) });
    expect(decodeHandshake('hello', '[[[[[[1]]]]]]', 4096)).toMatchObject({ ok: false, error: expect.stringMatching(/nested deeper/) });
    expect(decodeHandshake('hello', '{"v":1', 4096)).toMatchObject({ ok: false, error: expect.stringMatching(/malformed JSON/) });
    expect(decodeHandshake('hello', JSON.stringify({ ...sent, slots: 0 }), 4096)).toMatchObject({ ok: false, error: expect.stringMatching(/invalid hello: slots/) });
    expect(decodeHandshake('join', JSON.stringify(sent), 4096)).toMatchObject({ ok: false, error: expect.stringMatching(/invalid join/) });
  });
});
