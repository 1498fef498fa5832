import { connect, type NatsConnection } from '@nats-io/transport-node';
import { firstValueFrom, filter, take, timeout } from 'rxjs';
import type { Envelope } from '../../streams/messages.js';
import { NatsClientNetwork } from '../../streams/natsClientNetwork.js';
import { NatsNetwork, READY_FRAME, natsSubjects } from '../../streams/natsNetwork.js';
import { decodeHandshake, openHandshake, tokenKey } from '../../streams/natsSession.js';
import type { ResultBody } from '../../streams/protocol.js';
import { signResult } from '../../streams/signing.js';
import { coordinatorNode, startNatsServer } from './natsServer.js';

// Attacks on the NATS transport that test/streams/natsNetwork.spec.ts leaves out, against a real
// nats-server started per test. Every wait is bounded by WAIT_MS; everything is closed after each.
const TOKEN = 'nats-attack-secret';
const WAIT_MS = 10_000;
const subjects = natsSubjects('rxswarm');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function until(what: string, test: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}

/** A coordinator node, an honest agent and a raw session `looper` holding the token, on a fresh nats-server. */
async function setup(options: Partial<Parameters<typeof NatsNetwork.start>[0]> = {}) {
  const s = await startNatsServer({});
  cleanups.push(() => s.stop());
  const { network, events, inbox } = await coordinatorNode(s.url, TOKEN, cleanups, options);
  const honest = new NatsClientNetwork({ url: s.url, agentId: 'honest', token: TOKEN, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  cleanups.push(() => honest.close());
  const received: Envelope[] = [];
  honest.join('honest').subscribe(e => received.push(e));
  await firstValueFrom(honest.events$.pipe(filter(e => e.type === 'joined'), take(1), timeout(WAIT_MS)));
  const raw: NatsConnection = await connect({ servers: s.url });
  cleanups.push(() => raw.close());
  const { hello, finish } = openHandshake(tokenKey(TOKEN), { agentId: 'looper', capabilities: [], role: 'agent', slots: 1, instance: 'raw-looper', maxFrameBytes: 1 << 20 });
  const join = decodeHandshake('join', (await raw.request(subjects.hello, JSON.stringify(hello), { timeout: WAIT_MS })).string(), 1 << 16);
  const secrets = join.ok ? finish(join.message) : undefined;
  if (secrets === undefined) throw new Error('the looper was not admitted');
  raw.publish(subjects.in(secrets.sid), READY_FRAME);
  await until('the looper admitted', () => network.remoteAgents.has('looper'));
  const send = (to: string, kind: string, body: unknown): void => raw.publish(subjects.in(secrets.sid), JSON.stringify({ v: 1, type: 'envelope', from: 'looper', to, kind, body }));
  return { network, events, inbox, received, send, key: secrets.key };
}

describe('a route that goes round in circles, over NATS', () => {
  // As over WebSocket: honest agents pass on anything whose `via` goes on, so a route through
  // the same agents again and again kept them and the coordinator's node relaying it.
  it('is dropped where it would come back to the node it goes to next; a route that does not is passed on', async () => {
    const { events, received, send } = await setup();
    const result = (via: string[], subtaskId: string) => ({ via, subtaskId, attempt: 1, agentId: 'nobody', ok: true });
    send('honest', 'result', result(['x', 'honest', 'x', 'honest'], 'circling'));
    send('honest', 'result', result(['coordinator'], 'straight'));
    await until('the straight one', () => received.some(e => (e.body as { subtaskId: string }).subtaskId === 'straight'));
    expect(received.map(e => (e.body as { subtaskId: string }).subtaskId)).toEqual(['straight']);
    expect(events).toContainEqual(expect.objectContaining({ type: 'rejected', agentId: 'looper', error: expect.stringMatching(/its route comes back to "honest"/) }));
  });
});

describe('values above maxValueBytes, over NATS (as over WebSocket)', () => {
  it('a delegated child\'s payload is marked tooBig; a signed result\'s value fails its attempt', async () => {
    const { inbox, send, key } = await setup({ maxValueBytes: 64 * 1024 });
    send('coordinator', 'delegate', { taskId: 't', subtaskId: 'p', attempt: 1, subtask: { id: 'big', payload: 'x'.repeat(100_000) } });
    const claim: ResultBody = { via: [], taskId: 't', subtaskId: 'p', attempt: 1, agentId: 'looper', ok: true, value: 'x'.repeat(200_000) };
    send('coordinator', 'result', { ...claim, mac: signResult(key, claim) });
    await until('both', () => inbox.filter(e => e.kind === 'delegate' || e.kind === 'result').length === 2);
    expect(inbox.find(e => e.kind === 'delegate')?.body).toMatchObject({ tooBig: expect.stringMatching(/100002 bytes is above the limit of 65536 \(maxValueBytes\)/) });
    const result = inbox.find(e => e.kind === 'result')?.body as ResultBody;
    expect(result).toMatchObject({ ok: false, error: expect.stringMatching(/200002 bytes is above the limit of 65536/) });
    expect(result).not.toHaveProperty('value');
  });
});
