import fc from 'fast-check';
import type { AssignBody, CancelBody, ResultBody } from '../../streams/protocol.js';
import { keyFrom, newSessionKey, signOrder, signResult, verifyOrder, verifyResult } from '../../streams/signing.js';
import { decode, encode } from '../../streams/wsCodec.js';

const key = keyFrom(newSessionKey()) as Buffer;
const other = keyFrom(newSessionKey()) as Buffer;

const assign: AssignBody = { via: [], subtask: { id: 's-1', payload: { prompt: 'hi', n: [1, 2] }, capabilities: ['code'], priority: 2, timeoutMs: 5000 }, attempt: 7, replyPath: ['hub', 'coordinator'] };
const cancel: CancelBody = { via: [], subtaskId: 's-1', attempt: 7 };
const result: ResultBody = { via: [], subtaskId: 's-1', attempt: 7, agentId: 'a-1', ok: true, value: { answer: 42 } };

/** What the body looks like after a relay: JSON out and back in through the decoder. */
function relayed<T>(kind: 'assign' | 'cancel' | 'result', body: T): T {
  const decoded = decode(encode({ v: 1, type: 'envelope', from: 'hub', to: 'a-1', kind, body }));
  if (!decoded.ok || decoded.message.type !== 'envelope') throw new Error(`did not decode: ${JSON.stringify(decoded)}`);
  return decoded.message.body as T;
}

describe('signing', () => {
  it('keys are 32 random bytes; a malformed key is refused', () => {
    expect(key).toHaveLength(32);
    expect(newSessionKey()).not.toBe(newSessionKey());
    expect(keyFrom('c2hvcnQ=')).toBeUndefined();
  });

  it('an order signed for its recipient verifies there, after a JSON round trip through a relay, whatever its route', () => {
    const mac = signOrder(key, 'assign', 'a-1', assign);
    expect(mac).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verifyOrder(key, 'assign', 'a-1', relayed('assign', { ...assign, mac }))).toBe(true);
    expect(verifyOrder(key, 'assign', 'a-1', { ...assign, via: ['x', 'y'], mac })).toBe(true); // via is the route, not the meaning
    const cancelMac = signOrder(key, 'cancel', 'a-1', cancel);
    expect(verifyOrder(key, 'cancel', 'a-1', relayed('cancel', { ...cancel, mac: cancelMac }))).toBe(true);
  });

  const alterations: Array<[string, AssignBody]> = [
    ['the payload', { ...assign, subtask: { ...assign.subtask, payload: { prompt: 'rm -rf', n: [1, 2] } } }],
    ['the subtask id', { ...assign, subtask: { ...assign.subtask, id: 's-2' } }],
    ['the attempt', { ...assign, attempt: 8 }],
    ['the reply path', { ...assign, replyPath: ['evil', 'coordinator'] }],
    ['the capabilities', { ...assign, subtask: { ...assign.subtask, capabilities: [] } }],
    ['the priority', { ...assign, subtask: { ...assign.subtask, priority: 9 } }],
    ['the timeout', { ...assign, subtask: { ...assign.subtask, timeoutMs: 1 } }],
  ];

  it.each(alterations)('an assignment with %s altered does not verify', (_, altered) => {
    const mac = signOrder(key, 'assign', 'a-1', assign);
    expect(verifyOrder(key, 'assign', 'a-1', { ...altered, mac })).toBe(false);
  });

  it('an order does not verify for another recipient, with another key, as another kind, or without a signature', () => {
    const mac = signOrder(key, 'assign', 'a-1', assign);
    expect(verifyOrder(key, 'assign', 'a-2', { ...assign, mac })).toBe(false);
    expect(verifyOrder(other, 'assign', 'a-1', { ...assign, mac })).toBe(false);
    expect(verifyOrder(key, 'assign', 'a-1', assign)).toBe(false);
    expect(verifyOrder(key, 'assign', 'a-1', { ...assign, mac: 'x'.repeat(43) })).toBe(false);
    const cancelMac = signOrder(key, 'cancel', 'a-1', cancel);
    expect(verifyOrder(key, 'cancel', 'a-1', { ...cancel, attempt: 8, mac: cancelMac })).toBe(false);
  });

  it('a result verifies with its agent key after a relay, and not once its value, outcome, attempt or agent is changed', () => {
    const mac = signResult(key, result);
    expect(verifyResult(key, relayed('result', { ...result, mac }))).toBe(true);
    expect(verifyResult(other, { ...result, mac })).toBe(false);
    expect(verifyResult(key, { ...result, value: { answer: 41 }, mac })).toBe(false);
    expect(verifyResult(key, { ...result, ok: false, error: 'x', mac })).toBe(false);
    expect(verifyResult(key, { ...result, attempt: 8, mac })).toBe(false);
    expect(verifyResult(key, { ...result, agentId: 'a-2', mac })).toBe(false);
    const failed: ResultBody = { via: [], subtaskId: 's-1', attempt: 7, agentId: 'a-1', ok: false, error: 'boom' };
    expect(verifyResult(key, relayed('result', { ...failed, mac: signResult(key, failed) }))).toBe(true);
  });

  it('any JSON value signed as a result verifies after a relay (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), value => {
        const body: ResultBody = { ...result, value };
        const mac = signResult(key, body);
        return verifyResult(key, relayed('result', { ...body, mac }));
      }),
      { numRuns: 300 },
    );
  });
});
