import { AgentLog, reconnectLogDue } from '../../src/agentLog.js';
import type { ConnectionCause } from '../../streams/connectionCause.js';
import type { WsClientEvent } from '../../streams/wsNetwork.js';

const URL = 'ws://10.0.0.5:7070';
const refused: ConnectionCause = { kind: 'refused', code: 'ECONNREFUSED', message: 'connection refused by 10.0.0.5:7070 (ECONNREFUSED): is `rxswarm serve` running on that host and port?' };
const joined = (session: string, connects = 1): WsClientEvent => ({ type: 'joined', agentId: 'a-1', connects, session });
const lost = (code: number, reason = '', cause?: ConnectionCause): WsClientEvent => ({ type: 'disconnected', code, reason, willReconnect: true, cause });

/** Feeds events at the given wall times; returns the lines written. */
function lines(events: Array<[number, WsClientEvent]>): string[] {
  let now = 0;
  const log = new AgentLog({ id: 'a-1', url: URL, now: () => now });
  const out: string[] = [];
  for (const [at, event] of events) {
    now = at;
    const line = log.line(event);
    if (line !== undefined) out.push(line);
  }
  return out;
}

describe('reconnectLogDue', () => {
  it.each([
    [1, 0, true],
    [2, 0, true],
    [3, 0, false],
    [4, 0, true],
    [5, 0, false],
    [7, 0, false],
    [8, 0, true],
    [9, 59_999, false],
    [9, 60_000, true],
    [16, 10_000, false], // past 8, powers of two are nothing special: once a minute
    [1000, 60_000, true],
  ])('attempt %i, %i ms after the last line → %s', (attempt, since, due) => {
    expect(reconnectLogDue(attempt, since)).toBe(due);
  });

  it('a coordinator down for an hour at one attempt per 5 s costs about 60 lines, not 720', () => {
    let last = 0;
    let logged = 0;
    for (let attempt = 1, at = 0; at < 3_600_000; attempt++, at += 5000) {
      if (reconnectLogDue(attempt, at - last)) {
        logged++;
        last = at;
      }
    }
    expect(logged).toBeGreaterThan(55);
    expect(logged).toBeLessThan(65);
  });
});

describe('AgentLog', () => {
  it('a coordinator that is not up yet: the cause once, then attempts 2, 4, 8 and once a minute', () => {
    const events: Array<[number, WsClientEvent]> = [];
    for (let i = 0; i < 40; i++) events.push([i * 5000, lost(1006, '', refused)]);
    events.push([200_000, joined('s1')]);
    expect(lines(events)).toEqual([
      `a-1: cannot reach ${URL}, retrying with backoff: connection refused by 10.0.0.5:7070 (ECONNREFUSED): is \`rxswarm serve\` running on that host and port?`,
      `a-1: still trying ${URL}, 2 attempts, last: refused`,
      `a-1: still trying ${URL}, 4 attempts, last: refused`,
      `a-1: still trying ${URL}, 8 attempts, last: refused`,
      `a-1: still trying ${URL}, 20 attempts, last: refused`, // 60 s after attempt 8's line
      `a-1: still trying ${URL}, 32 attempts, last: refused`, // and 60 s later
      `a-1 joined ${URL}`,
    ]);
  });

  it('a session a new coordinator does not know (NATS: a standby took over) is said as that, not as a shutdown', () => {
    const out = lines([
      [0, joined('s1')],
      [10, lost(1001, 'unknown session: say hello again')],
      [20, joined('s2', 2)],
    ]);
    expect(out).toEqual([
      `a-1 joined ${URL}`,
      `a-1: the coordinator at ${URL} does not know this session (a new coordinator took over); saying hello again`,
      `a-1: coordinator restarted (new session); rejoined ${URL}, starting over`,
    ]);
  });

  it('a coordinator restart reads as one: shutting down, waiting, restarted and starting over — no close codes', () => {
    const out = lines([
      [0, joined('s1')],
      [10, lost(1001, 'server shutting down')],
      [110, lost(1006, '', refused)],
      [400, lost(1006, '', refused)],
      [900, joined('s2', 2)],
    ]);
    expect(out).toEqual([
      `a-1 joined ${URL}`,
      `a-1: the coordinator at ${URL} is shutting down; waiting for it to come back`,
      `a-1: still trying ${URL}, 1 attempt, last: refused`,
      `a-1: still trying ${URL}, 2 attempts, last: refused`,
      `a-1: coordinator restarted (new session); rejoined ${URL}, starting over`,
    ]);
    expect(out.join('\n')).not.toMatch(/1006|4004|replaced|left/);
  });

  it('a link lost and rejoined to the same coordinator says so', () => {
    expect(lines([[0, joined('s1')], [10, lost(1006)], [20, joined('s1', 2)]])).toEqual([`a-1 joined ${URL}`, `a-1: connection to ${URL} lost (close 1006); reconnecting`, `a-1 rejoined ${URL}`]);
  });

  it('says nothing of a final refusal (the agent ends with its error) nor of reconnecting events', () => {
    expect(lines([[0, { type: 'disconnected', code: 4001, reason: 'invalid token', willReconnect: false, cause: undefined }], [0, { type: 'reconnecting', attempt: 1, delayMs: 100 }]])).toEqual([]);
  });
});
