import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { firstValueFrom, filter, take, timeout, toArray, type Observable } from 'rxjs';
import type { Envelope } from '../../streams/messages.js';
import { NatsClientNetwork } from '../../streams/natsClientNetwork.js';
import { NatsNetwork, READY_FRAME, natsSubjects } from '../../streams/natsNetwork.js';
import { decodeHandshake, openHandshake, tokenKey, type SessionSecrets } from '../../streams/natsSession.js';
import type { ResultBody } from '../../streams/protocol.js';
import { signResult } from '../../streams/signing.js';
import { WS_CLOSE, decode } from '../../streams/wsCodec.js';
import { coordinatorNode, startNatsServer, type NatsServer } from './natsServer.js';

// The NATS transport against a real nats-server started per test (never skipped: a test that
// cannot start one fails). Every wait is bounded by WAIT_MS.
const TOKEN = 'nats-spec-secret';
const WAIT_MS = 10_000;
const subjects = natsSubjects('rxswarm');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: Parameters<typeof startNatsServer>[0] = {}): Promise<NatsServer> {
  const s = await startNatsServer(options);
  cleanups.push(() => s.stop());
  return s;
}

async function raw(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url });
  cleanups.push(() => nc.close());
  return nc;
}

function next<T>(source: Observable<T>, predicate: (value: T) => boolean = () => true): Promise<T> {
  return firstValueFrom(source.pipe(filter(predicate), take(1), timeout(WAIT_MS)));
}

/** A coordinator network on its own connection, with its events recorded. */
const coordinator = (url: string, options: Partial<ConstructorParameters<typeof NatsNetwork>[0]> = {}) => coordinatorNode(url, TOKEN, cleanups, options);

function client(url: string, agentId: string, options: Partial<ConstructorParameters<typeof NatsClientNetwork>[0]> = {}): NatsClientNetwork {
  const network = new NatsClientNetwork({ url, agentId, token: TOKEN, capabilities: ['code'], reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options });
  cleanups.push(() => network.close());
  return network;
}

/** Waits until `test` holds, checking whenever the network reports anything and every 10 ms; bounded. */
async function until(what: string, test: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}

/** A session opened by hand, as a hostile agent that holds the token would. */
async function handshake(nc: NatsConnection, agentId: string, token = TOKEN): Promise<{ secrets: SessionSecrets; replies: string[] }> {
  const { hello, finish } = openHandshake(tokenKey(token), { agentId, capabilities: [], role: 'agent', slots: 1, instance: `raw-${agentId}`, maxFrameBytes: 1 << 20 });
  const answer = await nc.request(subjects.hello, JSON.stringify(hello), { timeout: WAIT_MS });
  const join = decodeHandshake('join', answer.string(), 1 << 16);
  if (!join.ok) throw new Error(`hello refused: ${answer.string()}`);
  const secrets = finish(join.message);
  if (secrets === undefined) throw new Error('join does not prove the token');
  const replies: string[] = [];
  nc.subscribe(subjects.to(secrets.sid), { callback: (_err, msg) => void replies.push(msg.string()) });
  await nc.flush();
  nc.publish(subjects.in(secrets.sid), READY_FRAME);
  return { secrets, replies };
}

describe('NatsNetwork and NatsClientNetwork', () => {
  it('admits an agent, carries heartbeats, signs orders for it and checks its results', async () => {
    const s = await server();
    const { network, inbox } = await coordinator(s.url);
    const members = network.members$.pipe(take(1), timeout(WAIT_MS), toArray());
    const agent = client(s.url, 'a1');
    const received: Envelope[] = [];
    agent.join('a1').subscribe(e => received.push(e));
    const joined = await next(agent.events$, e => e.type === 'joined');
    expect(joined).toMatchObject({ type: 'joined', agentId: 'a1', session: network.session, heartbeatMs: 100 });
    expect(await firstValueFrom(members)).toEqual([{ agentId: 'a1', capabilities: ['code'], slots: 1, instance: agent.instance }]);

    agent.send({ from: 'a1', to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 1 } });
    await until('the heartbeat', () => inbox.some(e => e.kind === 'heartbeat'));
    expect(inbox.find(e => e.kind === 'heartbeat')).toMatchObject({ from: 'a1', to: 'coordinator', body: { load: 0, incarnation: 1 } });

    network.send({ from: 'coordinator', to: 'a1', kind: 'assign', body: { subtask: { id: 's-0', payload: { n: 1 } }, attempt: 1, replyPath: ['coordinator'], via: [] } });
    await until('the assignment', () => received.some(e => e.kind === 'assign'));
    expect((received[0]?.body as { mac?: string }).mac).toMatch(/^[A-Za-z0-9_-]{43}$/);

    agent.send({ from: 'a1', to: 'coordinator', kind: 'result', body: { subtaskId: 's-0', attempt: 1, agentId: 'a1', ok: true, value: 2, via: [] } });
    await until('the result', () => inbox.some(e => e.kind === 'result'));
    const result = inbox.find(e => e.kind === 'result')?.body as ResultBody;
    expect(result.forged).toBeUndefined();
    expect(result.value).toBe(2);
    expect(network.stats).toMatchObject({ received: 2 });
  });

  it('relays an order as a relay does (the same route, one hop further): it goes out as the route still to go, and its recipient takes it as signed', async () => {
    const s = await server();
    const { network } = await coordinator(s.url);
    const hub = client(s.url, 'hub');
    const spoke = client(s.url, 'spoke');
    const atHub: Envelope[] = [];
    const atSpoke: Envelope[] = [];
    hub.join('hub').subscribe(e => atHub.push(e));
    spoke.join('spoke').subscribe(e => atSpoke.push(e));
    const spokeErrors: string[] = [];
    spoke.events$.subscribe(e => e.type === 'error' && spokeErrors.push(e.error));
    await until('both sessions', () => network.remoteAgents.size === 2);
    // The coordinator signs for the route's last hop; the hub passes the body on with `hop + 1` (streams/protocol.ts).
    network.send({ from: 'coordinator', to: 'hub', kind: 'assign', body: { subtask: { id: 's-0', payload: 1 }, attempt: 1, replyPath: ['hub', 'coordinator'], via: ['spoke'] } });
    await until('the order at the hub', () => atHub.length === 1);
    const relayed = atHub[0]?.body as { via: string[]; hop?: number };
    expect(relayed.via).toEqual(['spoke']);
    hub.send({ from: 'hub', to: 'spoke', kind: 'assign', body: { ...relayed, hop: (relayed.hop ?? 0) + 1 } });
    await until('the order at the spoke', () => atSpoke.length === 1 || spokeErrors.length > 0);
    expect(spokeErrors).toEqual([]);
    expect(atSpoke[0]?.body).toMatchObject({ subtask: { id: 's-0' }, attempt: 1, via: [] });
    expect(atSpoke[0]?.body).not.toHaveProperty('hop');
  });

  it('refuses a second process under a live id (retryable), and lets the same process say hello again', async () => {
    const s = await server();
    const { network } = await coordinator(s.url);
    const first = client(s.url, 'dup');
    first.join('dup').subscribe();
    await next(first.events$, e => e.type === 'joined');
    const second = client(s.url, 'dup', { reconnect: { maxAttempts: 1, initialDelayMs: 10 } });
    const refused = next(second.events$, e => e.type === 'disconnected');
    second.join('dup').subscribe({ error: () => undefined });
    expect(await refused).toMatchObject({ code: WS_CLOSE.idInUse, willReconnect: true });
    expect(network.remoteAgents.get('dup')).toBeDefined();
  });

  it('tells an agent whose session it does not know to say hello again: a coordinator restart is a new session', async () => {
    const s = await server();
    const one = await coordinator(s.url);
    const agent = client(s.url, 'a2');
    agent.join('a2').subscribe();
    const first = await next(agent.events$, e => e.type === 'joined');
    await one.network.close();
    const two = await coordinator(s.url);
    agent.send({ from: 'a2', to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 1 } });
    const again = await next(agent.events$, e => e.type === 'joined' && e.connects === 2);
    expect(again).toMatchObject({ session: two.network.session });
    expect(again).not.toMatchObject({ session: (first as { session: string }).session });
  });

  it('carries on when the NATS server restarts: sessions survive, beats and orders flow again', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'rxswarm-nats-restart-'));
    cleanups.push(() => rmSync(storeDir, { recursive: true, force: true }));
    const first = await startNatsServer({ storeDir });
    cleanups.push(() => first.stop());
    const { network, inbox } = await coordinator(first.url, { idleMs: 60_000 });
    const agent = client(first.url, 'survivor');
    const received: Envelope[] = [];
    agent.join('survivor').subscribe(e => received.push(e));
    await next(agent.events$, e => e.type === 'joined');
    await first.stop();
    const second = await startNatsServer({ storeDir, port: first.port });
    cleanups.push(() => second.stop());
    // Both clients reconnect by themselves; the session and its key are the same.
    await until('a beat through the new server', () => {
      agent.send({ from: 'survivor', to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 7 } });
      return inbox.some(e => e.kind === 'heartbeat' && (e.body as { incarnation: number }).incarnation === 7);
    });
    network.send({ from: 'coordinator', to: 'survivor', kind: 'cancel', body: { subtaskId: 's', attempt: 1, via: [] } });
    await until('the signed cancel', () => received.some(e => e.kind === 'cancel'));
    expect(network.remoteAgents.has('survivor')).toBe(true);
  });

  it('keeps a session with nothing to say alive (a client waiting for its outcome)', async () => {
    const s = await server();
    const { network } = await coordinator(s.url, { idleMs: 1000 });
    const spy = await raw(s.url);
    let keepalives = 0;
    spy.subscribe('rxswarm.in.*', { callback: (_e, m) => void (m.string() === READY_FRAME && keepalives++) });
    await spy.flush();
    const waiting = client(s.url, 'waiting-run', { role: 'client' });
    waiting.join('waiting-run').subscribe();
    await next(waiting.events$, e => e.type === 'joined');
    // Five keepalives (one a quarter of idleMs): a second and a half of silence otherwise.
    await until('five keepalives', () => keepalives >= 6);
    expect(network.remoteAgents.get('waiting-run')).toMatchObject({ role: 'client' });
  });

  it('ends a silent session as a departure', async () => {
    const s = await server();
    const { network } = await coordinator(s.url, { idleMs: 300 });
    const nc = await raw(s.url);
    const departed = next(network.departures$);
    await handshake(nc, 'quiet');
    expect(await departed).toBe('quiet');
  });

  it('says when no coordinator answers on the server', async () => {
    const s = await server();
    const lonely = client(s.url, 'lonely', { reconnect: { maxAttempts: 1, initialDelayMs: 10 } });
    const error = await new Promise<unknown>(resolve => lonely.join('lonely').subscribe({ error: resolve }));
    expect(String(error)).toMatch(/no coordinator answers on rxswarm\.hello: is `rxswarm serve --nats` running/);
  });

  it('errors the inbox for good on a wrong token', async () => {
    const s = await server();
    await coordinator(s.url);
    const agent = client(s.url, 'a3', { token: 'not-the-token' });
    const error = await new Promise<unknown>(resolve => agent.join('a3').subscribe({ error: resolve }));
    expect(String(error)).toMatch(/invalid token/);
  });
});

describe('hostile frames over NATS', () => {
  it('refuses bad hellos with a reason and no session', async () => {
    const s = await server();
    const { network, events } = await coordinator(s.url);
    const nc = await raw(s.url);
    const ask = async (data: string | Uint8Array): Promise<{ code: number; error: string }> => JSON.parse((await nc.request(subjects.hello, data, { timeout: WAIT_MS })).string()) as { code: number; error: string };
    expect(await ask('{"v":1,')).toMatchObject({ code: WS_CLOSE.invalidPayload });
    expect(await ask('x'.repeat(100_000))).toMatchObject({ code: WS_CLOSE.tooBig });
    expect(await ask(`${'['.repeat(5000)}${']'.repeat(5000)}`.slice(0, 4000))).toMatchObject({ code: WS_CLOSE.invalidPayload, error: expect.stringMatching(/nested deeper|malformed/) });
    const { hello } = openHandshake(tokenKey('wrong token'), { agentId: 'mallory', capabilities: [], role: 'agent', slots: 1, instance: 'm', maxFrameBytes: 4096 });
    expect(await ask(JSON.stringify(hello))).toMatchObject({ code: WS_CLOSE.unauthenticated });
    const { hello: coord } = openHandshake(tokenKey(TOKEN), { agentId: 'coordinator', capabilities: [], role: 'agent', slots: 1, instance: 'm', maxFrameBytes: 4096 });
    expect(await ask(JSON.stringify(coord))).toMatchObject({ code: WS_CLOSE.policyViolation });
    expect(network.remoteAgents.size).toBe(0);
    expect(events.filter(e => e.type === 'rejected')).toHaveLength(5);
  });

  it('refuses oversized, deep, malformed and forged frames of an authenticated agent, and keeps serving the others', async () => {
    const s = await server();
    const { network, inbox, events } = await coordinator(s.url, { agentMaxPayload: 64 * 1024 });
    const honest = client(s.url, 'honest');
    honest.join('honest').subscribe();
    await next(honest.events$, e => e.type === 'joined');
    const nc = await raw(s.url);
    const attacks: Array<[string, (sid: string) => void, number]> = [
      ['oversized', sid => nc.publish(subjects.in(sid), `{"v":1,"type":"envelope","from":"m","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":1,"x":"${'y'.repeat(100_000)}"}}`), WS_CLOSE.tooBig],
      ['deep', sid => nc.publish(subjects.in(sid), `{"v":1,"type":"envelope","from":"m","to":"coordinator","kind":"result","body":{"subtaskId":"s","attempt":1,"agentId":"m","ok":true,"via":[],"value":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`), WS_CLOSE.invalidPayload],
      ['malformed', sid => nc.publish(subjects.in(sid), '{"v":1,"type":"envelope",'), WS_CLOSE.invalidPayload],
      ['unknown kind', sid => nc.publish(subjects.in(sid), '{"v":1,"type":"envelope","from":"m","to":"coordinator","kind":"rm-rf","body":{}}'), WS_CLOSE.unsupportedData],
      ['bad body', sid => nc.publish(subjects.in(sid), '{"v":1,"type":"envelope","from":"m","to":"coordinator","kind":"heartbeat","body":{"load":"high","incarnation":1}}'), WS_CLOSE.invalidPayload],
      ['service kind', sid => nc.publish(subjects.in(sid), '{"v":1,"type":"envelope","from":"m-service-kind","to":"honest","kind":"peers","body":{"targets":[]}}'), WS_CLOSE.policyViolation],
      ['binary', sid => nc.publish(subjects.in(sid), new Uint8Array([0xff, 0xfe, 0x00, 0x80])), WS_CLOSE.invalidPayload],
    ];
    for (const [what, attack, code] of attacks) {
      const id = `m-${what.replace(/ /g, '-')}`;
      const { secrets, replies } = await handshake(nc, id);
      await until(`${id} admitted`, () => network.remoteAgents.has(id));
      attack(secrets.sid);
      await until(`${what} refused`, () => replies.some(r => (JSON.parse(r) as { code?: number }).code === code));
      await until(`${id}'s session ended`, () => !network.remoteAgents.has(id));
    }
    // A forged sender is dropped; the session stays. A result in another agent's name is marked forged.
    const { secrets, replies } = await handshake(nc, 'forger');
    await until('forger admitted', () => network.remoteAgents.has('forger'));
    nc.publish(subjects.in(secrets.sid), '{"v":1,"type":"envelope","from":"honest","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":9}}');
    await until('forged sender refused', () => replies.some(r => (JSON.parse(r) as { code?: number }).code === WS_CLOSE.forgedSender));
    expect(network.remoteAgents.has('forger')).toBe(true);
    const stolen: ResultBody = { subtaskId: 's-9', attempt: 1, agentId: 'honest', ok: true, value: 'pwned', via: [] };
    nc.publish(subjects.in(secrets.sid), JSON.stringify({ v: 1, type: 'envelope', from: 'forger', to: 'coordinator', kind: 'result', body: { ...stolen, mac: signResult(secrets.key, stolen) } }));
    await until('the forged result', () => inbox.some(e => e.kind === 'result'));
    expect((inbox.find(e => e.kind === 'result')?.body as ResultBody).forged).toMatch(/not signed by "honest"/);
    // Frames on a session nobody holds: told to say hello again, nothing else.
    const stray: string[] = [];
    nc.subscribe(subjects.to('0'.repeat(32)), { callback: (_e, m) => void stray.push(m.string()) });
    await nc.flush();
    nc.publish(subjects.in('0'.repeat(32)), '{"v":1,"type":"envelope","from":"x","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":1}}');
    await until('the stray answered', () => stray.length > 0);
    expect(decode(stray[0] as string)).toMatchObject({ ok: true, message: { type: 'error', code: WS_CLOSE.goingAway } });

    // Through all of it the honest agent was served.
    honest.send({ from: 'honest', to: 'coordinator', kind: 'heartbeat', body: { load: 0.5, incarnation: 3 } });
    await until('the honest beat', () => inbox.some(e => e.kind === 'heartbeat' && e.from === 'honest'));
    expect(events.filter(e => e.type === 'rejected').length).toBeGreaterThanOrEqual(attacks.length + 1);
  });

  it('ends a flooding session (rate limit) and one that sends before it is ready', async () => {
    const s = await server();
    const { network } = await coordinator(s.url, { rateLimit: { perSecond: 10, burst: 20 } });
    const nc = await raw(s.url);
    const { secrets, replies } = await handshake(nc, 'flood');
    await until('flood admitted', () => network.remoteAgents.has('flood'));
    for (let i = 0; i < 100; i++) nc.publish(subjects.in(secrets.sid), '{"v":1,"type":"envelope","from":"flood","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":1}}');
    await until('the flood refused', () => replies.some(r => (JSON.parse(r) as { code?: number }).code === WS_CLOSE.rateLimited));
    await until('its session ended', () => !network.remoteAgents.has('flood'));

    // A hello answered, then an envelope instead of ready: the session never opens.
    const { hello, finish } = openHandshake(tokenKey(TOKEN), { agentId: 'eager', capabilities: [], role: 'agent', slots: 1, instance: 'e', maxFrameBytes: 4096 });
    const answer = await nc.request(subjects.hello, JSON.stringify(hello), { timeout: WAIT_MS });
    const eager = finish((decodeHandshake('join', answer.string(), 1 << 16) as { ok: true; message: Parameters<typeof finish>[0] }).message)!;
    const told: string[] = [];
    nc.subscribe(subjects.to(eager.sid), { callback: (_e, m) => void told.push(m.string()) });
    await nc.flush();
    nc.publish(subjects.in(eager.sid), '{"v":1,"type":"envelope","from":"eager","to":"coordinator","kind":"heartbeat","body":{"load":0,"incarnation":1}}');
    await until('refused before ready', () => told.some(r => (JSON.parse(r) as { code?: number }).code === WS_CLOSE.unauthenticated));
    expect(network.remoteAgents.has('eager')).toBe(false);
  });

  it('rejects orders a peer forged for an agent', async () => {
    const s = await server();
    const { network } = await coordinator(s.url);
    const victim = client(s.url, 'victim');
    const got: Envelope[] = [];
    victim.join('victim').subscribe(e => got.push(e));
    await next(victim.events$, e => e.type === 'joined');
    const errors = victim.events$.pipe(filter(e => e.type === 'error'));
    const refused = next(errors);
    const nc = await raw(s.url);
    const { secrets } = await handshake(nc, 'relay');
    await until('relay admitted', () => network.remoteAgents.has('relay'));
    nc.publish(subjects.in(secrets.sid), JSON.stringify({ v: 1, type: 'envelope', from: 'relay', to: 'victim', kind: 'assign', body: { subtask: { id: 'evil', payload: { exec: 'rm -rf /' } }, attempt: 1, replyPath: ['relay'], via: [] } }));
    expect(await refused).toMatchObject({ code: WS_CLOSE.forgedSender });
    expect(got).toEqual([]);
  });
});
