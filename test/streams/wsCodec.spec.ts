import fc from 'fast-check';
import { DEFAULT_MAX_DEPTH, WS_CLOSE, decode, encode, nestingDepth, schemaBody, type WireKind, type WireMessage } from '../../streams/wsCodec.js';
import { fastBody } from '../../streams/wsFastBodies.js';

const runs = { numRuns: 200 };
const CODES = new Set<number>(Object.values(WS_CLOSE));

const frame = (value: unknown): string => JSON.stringify(value);
const env = (kind: string, body: unknown, extra: Record<string, unknown> = {}): string =>
  frame({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind, body, ...extra });

describe('wsCodec decode', () => {
  const good: Array<[string, WireMessage]> = [
    ['hello', { v: 1, type: 'hello', agentId: 'a-1', capabilities: ['code', 'review'], token: 's3cret' }],
    ['hello, no capabilities, empty token', { v: 1, type: 'hello', agentId: 'a-1', capabilities: [], token: '' }],
    ['join', { v: 1, type: 'join', agentId: 'a-1', capabilities: ['code'] }],
    ['join taking binary heartbeat frames', { v: 1, type: 'join', agentId: 'a-1', capabilities: ['code'], beatFrames: 1 }],
    ['leave', { v: 1, type: 'leave' }],
    ['leave with a reason', { v: 1, type: 'leave', reason: 'SIGTERM' }],
    ['error', { v: 1, type: 'error', code: 4001, error: 'invalid token' }],
    ['heartbeat', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 0.5, incarnation: 2 } }],
    ['heartbeat leaving', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 0, status: 'leaving', incarnation: 1 } }],
    [
      'assign',
      {
        v: 1,
        type: 'envelope',
        from: 'coordinator',
        to: 'hub',
        kind: 'assign',
        body: { via: ['a-1'], subtask: { id: 's-0', payload: { sleepMs: 5 }, capabilities: ['code'], priority: 1 }, attempt: 1, replyPath: ['hub', 'coordinator'] },
      },
    ],
    ['assign, bare subtask', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-1', kind: 'assign', body: { via: [], subtask: { id: 's-0' }, attempt: 3, replyPath: [] } }],
    ['result ok', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'result', body: { via: [], subtaskId: 's-0', attempt: 1, agentId: 'a-1', ok: true, value: [1, { x: null }] } }],
    ['result failed', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'result', body: { via: [], subtaskId: 's-0', attempt: 1, agentId: 'a-1', ok: false, error: 'boom' } }],
    ['progress', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'progress', body: { subtaskId: 's-0', attempt: 1, progress: 0.25 } }],
    ['cancel', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-1', kind: 'cancel', body: { via: [], subtaskId: 's-0', attempt: 1 } }],
    ['assign with its retransmission timeout', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-1', kind: 'assign', body: { via: [], subtask: { id: 's-0' }, attempt: 3, replyPath: [], rto: 25 } }],
    ['received', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-1', kind: 'received', body: { taskId: 't', subtaskId: 's-0', attempt: 1 } }],
    ['vote-request', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-1', kind: 'vote-request', body: { proposalId: 'p-1', suspect: 'a-2' } }],
    ['vote', { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'vote', body: { proposalId: 'p-1', accept: true } }],
    ['token', { v: 1, type: 'envelope', from: 'a-1', to: 'a-2', kind: 'token', body: { via: [] } }],
    ['election', { v: 1, type: 'envelope', from: 'a-1', to: 'a-2', kind: 'election', body: { failed: 'a-0' } }],
    ['promotion', { v: 1, type: 'envelope', from: 'a-1', to: 'a-2', kind: 'promotion', body: { failed: 'a-0' } }],
    ['splice', { v: 1, type: 'envelope', from: 'a-1', to: 'a-2', kind: 'splice', body: { failed: 'a-0' } }],
    ['redistribute', { v: 1, type: 'envelope', from: 'coordinator', to: 'a-2', kind: 'redistribute', body: { failed: 'a-0' } }],
  ];

  it.each(good)('accepts %s', (_, message) => {
    const result = decode(encode(message));
    expect(result).toEqual({ ok: true, message });
  });

  it('strips fields the schema does not know (they do not travel on)', () => {
    const result = decode(env('vote', { proposalId: 'p', accept: false, extra: 1 }, { sentAt: 5, junk: true }));
    expect(result).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'vote', body: { proposalId: 'p', accept: false } } });
  });

  const bad: Array<[string, string, number, RegExp]> = [
    ['not JSON', 'hello there', WS_CLOSE.invalidPayload, /malformed JSON/],
    ['empty frame', '', WS_CLOSE.invalidPayload, /malformed JSON/],
    ['truncated JSON', '{"v":1,"type":"lea', WS_CLOSE.invalidPayload, /malformed JSON/],
    ['an array', '[1,2]', WS_CLOSE.invalidPayload, /JSON object, got an array/],
    ['null', 'null', WS_CLOSE.invalidPayload, /JSON object, got null/],
    ['a number', '42', WS_CLOSE.invalidPayload, /JSON object, got number/],
    ['a string', '"hi"', WS_CLOSE.invalidPayload, /JSON object, got string/],
    ['no version', frame({ type: 'leave' }), WS_CLOSE.unsupportedVersion, /unsupported version undefined/],
    ['version 2', frame({ v: 2, type: 'leave' }), WS_CLOSE.unsupportedVersion, /unsupported version 2 .*v1/],
    ['version "1"', frame({ v: '1', type: 'leave' }), WS_CLOSE.unsupportedVersion, /unsupported version "1"/],
    ['no type', frame({ v: 1 }), WS_CLOSE.unsupportedData, /unknown message type undefined/],
    ['unknown type', frame({ v: 1, type: 'bogus' }), WS_CLOSE.unsupportedData, /unknown message type "bogus"/],
    ['type "__proto__"', '{"v":1,"type":"__proto__"}', WS_CLOSE.unsupportedData, /unknown message type/],
    ['hello without token', frame({ v: 1, type: 'hello', agentId: 'a', capabilities: [] }), WS_CLOSE.invalidPayload, /invalid hello: token/],
    ['hello with empty id', frame({ v: 1, type: 'hello', agentId: '', capabilities: [], token: 't' }), WS_CLOSE.invalidPayload, /invalid hello: agentId/],
    ['hello with a numeric capability', frame({ v: 1, type: 'hello', agentId: 'a', capabilities: [1], token: 't' }), WS_CLOSE.invalidPayload, /capabilities\.0/],
    ['hello with a huge id', frame({ v: 1, type: 'hello', agentId: 'x'.repeat(300), capabilities: [], token: 't' }), WS_CLOSE.invalidPayload, /agentId/],
    ['error without code', frame({ v: 1, type: 'error', error: 'x' }), WS_CLOSE.invalidPayload, /invalid error: code/],
    ['envelope without from', frame({ v: 1, type: 'envelope', to: 'b', kind: 'vote', body: {} }), WS_CLOSE.invalidPayload, /invalid envelope: from/],
    ['envelope to a number', frame({ v: 1, type: 'envelope', from: 'a', to: 7, kind: 'vote', body: {} }), WS_CLOSE.invalidPayload, /invalid envelope: to/],
    ['unknown kind', env('work.steal', {}), WS_CLOSE.unsupportedData, /unknown envelope kind "work.steal"/],
    ['kind "constructor"', env('constructor', {}), WS_CLOSE.unsupportedData, /unknown envelope kind/],
    ['heartbeat with a string load', env('heartbeat', { load: 'high', incarnation: 1 }), WS_CLOSE.invalidPayload, /invalid heartbeat envelope: body\.load/],
    ['heartbeat with a bad status', env('heartbeat', { load: 0, status: 'dead', incarnation: 1 }), WS_CLOSE.invalidPayload, /body\.status/],
    ['heartbeat with a fractional incarnation', env('heartbeat', { load: 0, incarnation: 1.5 }), WS_CLOSE.invalidPayload, /body\.incarnation/],
    ['progress of Infinity', env('progress', { subtaskId: 's', attempt: 1, progress: 1 }).replace('"progress":1', '"progress":1e999'), WS_CLOSE.invalidPayload, /body\.progress/],
    ['assign without replyPath', env('assign', { via: [], subtask: { id: 's' }, attempt: 1 }), WS_CLOSE.invalidPayload, /body\.replyPath/],
    ['assign with a subtask without id', env('assign', { via: [], subtask: {}, attempt: 1, replyPath: [] }), WS_CLOSE.invalidPayload, /body\.subtask\.id/],
    ['assign with a fractional rto', env('assign', { via: [], subtask: { id: 's' }, attempt: 1, replyPath: [], rto: 2.5 }), WS_CLOSE.invalidPayload, /body\.rto/],
    ['assign with an rto of 0', env('assign', { via: [], subtask: { id: 's' }, attempt: 1, replyPath: [], rto: 0 }), WS_CLOSE.invalidPayload, /body\.rto/],
    ['assign with an rto over an hour', env('assign', { via: [], subtask: { id: 's' }, attempt: 1, replyPath: [], rto: 3_600_001 }), WS_CLOSE.invalidPayload, /body\.rto/],
    ['received without attempt', env('received', { subtaskId: 's' }), WS_CLOSE.invalidPayload, /invalid received envelope: body\.attempt/],
    ['received with a huge subtask id', env('received', { subtaskId: 'x'.repeat(300), attempt: 1 }), WS_CLOSE.invalidPayload, /body\.subtaskId/],
    ['result with ok "yes"', env('result', { via: [], subtaskId: 's', attempt: 1, agentId: 'a', ok: 'yes' }), WS_CLOSE.invalidPayload, /body\.ok/],
    ['envelope with a null body', env('vote', null), WS_CLOSE.invalidPayload, /invalid vote envelope/],
    ['envelope without body', frame({ v: 1, type: 'envelope', from: 'a', to: 'b', kind: 'token' }), WS_CLOSE.invalidPayload, /invalid envelope: body/],
  ];

  it.each(bad)('refuses %s', (_, text, closeCode, error) => {
    const result = decode(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.closeCode).toBe(closeCode);
    expect(result.error).toMatch(error);
  });

  it('refuses oversized frames with 1009, counting UTF-8 bytes', () => {
    const ascii = frame({ v: 1, type: 'leave', reason: 'x'.repeat(200) });
    expect(decode(ascii, { maxBytes: 100 })).toMatchObject({ ok: false, closeCode: 1009, error: expect.stringMatching(/exceeds the limit of 100/) });
    // 60 characters but 120 bytes
    const wide = frame({ v: 1, type: 'leave', reason: 'é'.repeat(45) });
    expect(wide.length).toBeLessThan(100);
    expect(decode(wide, { maxBytes: 100 })).toMatchObject({ ok: false, closeCode: 1009 });
    expect(decode(wide, { maxBytes: 200 }).ok).toBe(true);
  });

  it('never throws on a non-string (a caller bug) and says so', () => {
    expect(decode(undefined as unknown as string)).toMatchObject({ ok: false, closeCode: 1003 });
  });

  // ---- properties ---------------------------------------------------------------------------

  const refusedWell = (result: ReturnType<typeof decode>): boolean =>
    result.ok || (CODES.has(result.closeCode) && typeof result.error === 'string' && result.error.length > 0);

  it('never throws on arbitrary strings, and refuses with a known close code', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), text => refusedWell(decode(text))),
      runs,
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), value => refusedWell(decode(JSON.stringify(value) ?? 'null'))),
      runs,
    );
  });

  it('never throws on near-misses of real messages', () => {
    const nearMiss = fc.record({
      v: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 1 })),
      type: fc.oneof(fc.constantFrom('hello', 'join', 'envelope', 'leave', 'error'), fc.string()),
      from: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 1 })),
      to: fc.string(),
      kind: fc.constantFrom('heartbeat', 'assign', 'result', 'progress', 'cancel', 'vote-request', 'vote', 'token', 'election', 'x'),
      body: fc.jsonValue({ maxDepth: 3 }),
      agentId: fc.string(),
      capabilities: fc.jsonValue({ maxDepth: 2 }),
      token: fc.jsonValue({ maxDepth: 1 }),
    }, { requiredKeys: [] });
    fc.assert(fc.property(nearMiss, value => refusedWell(decode(JSON.stringify(value)))), runs);
  });

  const idArb = fc.string({ minLength: 1, maxLength: 12 });
  const ids = fc.array(idArb, { maxLength: 3 });
  const int = fc.integer({ min: -5, max: 1000 });
  const num = fc.double({ noNaN: true, noDefaultInfinity: true }).map(x => (Object.is(x, -0) ? 0 : x));
  const json = fc.jsonValue({ maxDepth: 3 });
  const bodyOf = {
    heartbeat: fc.record(
      { load: num, status: fc.constantFrom('ok', 'leaving'), incarnation: int, usage: fc.record({ fraction: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }), what: fc.string({ maxLength: 64 }) }, { requiredKeys: ['fraction'] }) },
      { requiredKeys: ['load', 'incarnation'] },
    ),
    assign: fc.record({
      via: ids,
      subtask: fc.record({ id: idArb, payload: json, capabilities: ids, priority: num }, { requiredKeys: ['id'] }),
      attempt: int,
      replyPath: ids,
    }),
    result: fc.record(
      { via: ids, subtaskId: idArb, attempt: int, agentId: idArb, ok: fc.boolean(), value: json, error: fc.string() },
      { requiredKeys: ['via', 'subtaskId', 'attempt', 'agentId', 'ok'] },
    ),
    progress: fc.record({ subtaskId: idArb, attempt: int, progress: num }),
    cancel: fc.record({ via: ids, subtaskId: idArb, attempt: int }),
    'vote-request': fc.record({ proposalId: idArb, suspect: idArb }),
    vote: fc.record({ proposalId: idArb, accept: fc.boolean() }),
    token: fc.record({ via: ids }),
    election: fc.record({ failed: idArb }),
    promotion: fc.record({ failed: idArb }),
    splice: fc.record({ failed: idArb }),
    redistribute: fc.record({ failed: idArb }),
  };
  const envelopeArb = fc.oneof(
    ...Object.entries(bodyOf).map(([kind, body]) =>
      fc.record({ from: idArb, to: idArb, body }).map(({ from, to, body: b }) => ({ v: 1 as const, type: 'envelope' as const, from, to, kind, body: b }) as WireMessage),
    ),
  );
  const messageArb: fc.Arbitrary<WireMessage> = fc.oneof(
    envelopeArb,
    fc.record({ agentId: idArb, capabilities: ids, token: fc.string() }).map(m => ({ v: 1, type: 'hello', ...m }) as WireMessage),
    fc.record({ agentId: idArb, capabilities: ids }).map(m => ({ v: 1, type: 'join', ...m }) as WireMessage),
    fc.record({ reason: fc.string() }, { requiredKeys: [] }).map(m => ({ v: 1, type: 'leave', ...m }) as WireMessage),
    fc.record({ code: int, error: fc.string() }).map(m => ({ v: 1, type: 'error', ...m }) as WireMessage),
  );

  it('accepts exactly what encode produces: decode(encode(m)) is m as JSON sees it', () => {
    fc.assert(
      fc.property(messageArb, message => {
        const text = encode(message);
        const result = decode(text);
        expect(result).toEqual({ ok: true, message: JSON.parse(text) });
      }),
      runs,
    );
  });
});

describe('wsCodec decode, heartbeat fast path', () => {
  // A leading space keeps a frame off the fast path (its regex is anchored at `{`) and means
  // nothing to JSON.parse: decode(' ' + text) is the general path's answer for text.
  const general = (text: string): ReturnType<typeof decode> => decode(` ${text}`);
  const same = (text: string): void => {
    const fast = decode(text);
    const slow = general(text);
    if (fast.ok) {
      expect(fast).toStrictEqual(slow); // Object.is on numbers: -0 stays -0
      expect(JSON.stringify(fast)).toBe(JSON.stringify(slow)); // and the key order
    } else {
      expect(slow.ok).toBe(false);
      expect(fast.ok === false && slow.ok === false && fast.closeCode === slow.closeCode).toBe(true);
    }
  };
  const beat = (from: string, load: string, incarnation: string, status?: string, to = 'coordinator', usage?: string): string =>
    `{"v":1,"type":"envelope","from":"${from}","to":"${to}","kind":"heartbeat","body":{"load":${load}${status === undefined ? '' : `,"status":"${status}"`},"incarnation":${incarnation}${usage === undefined ? '' : `,"usage":${usage}`}}}`;
  const used = (fraction: string, what?: string): string => `{"fraction":${fraction}${what === undefined ? '' : `,"what":"${what}"`}}`;

  it('takes encode’s spelling of a heartbeat without JSON.parse', () => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const result = decode(encode({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 0.5, status: 'ok', incarnation: 3 } }));
      expect(result).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body: { load: 0.5, status: 'ok', incarnation: 3 } } });
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it('takes encode’s spelling of a heartbeat with usage without JSON.parse too', () => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const body = { load: 1, incarnation: 3, usage: { fraction: 0.93, what: 'memory' } };
      const result = decode(encode({ v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body }));
      expect(result).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 'a-1', to: 'coordinator', kind: 'heartbeat', body } });
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it.each([
    ['plain', beat('a-1', '0', '1')],
    ['leaving', beat('a-1', '0.25', '7', 'leaving')],
    ['negative zero', beat('a-1', '-0', '-0')],
    ['exponents', beat('a-1', '1E-3', '1e3')],
    ['an integer spelt as a fraction', beat('a-1', '2', '1.0')],
    ['the largest safe integer', beat('a-1', '1', String(Number.MAX_SAFE_INTEGER))],
    ['past the largest safe integer', beat('a-1', '1', '9007199254740992')],
    ['a fractional incarnation', beat('a-1', '1', '1.5')],
    ['an infinite load', beat('a-1', '1e400', '1')],
    ['a leading zero', beat('a-1', '01', '1')],
    ['a bare fraction', beat('a-1', '.5', '1')],
    ['an unknown status', beat('a-1', '0', '1', 'busy')],
    ['an empty id', beat('', '0', '1')],
    ['an id of 256 units', beat('x'.repeat(256), '0', '1')],
    ['an id of 257 units', beat('x'.repeat(257), '0', '1')],
    ['an id with a surrogate pair', beat(`${'x'.repeat(255)}😀`, '0', '1')],
    ['an escaped id', beat('a\\u002d1', '0', '1')],
    ['an escaped quote in an id', beat('a\\"1', '0', '1')],
    ['a raw control character in an id', beat('a\u00011', '0', '1')],
    ['a tab in an id', beat('a\t1', '0', '1')],
    ['body keys in another order', '{"v":1,"type":"envelope","from":"a","to":"c","kind":"heartbeat","body":{"incarnation":1,"load":0}}'],
    ['an extra body key', '{"v":1,"type":"envelope","from":"a","to":"c","kind":"heartbeat","body":{"load":0,"incarnation":1,"x":2}}'],
    ['an extra envelope key', '{"v":1,"type":"envelope","from":"a","to":"c","kind":"heartbeat","body":{"load":0,"incarnation":1},"x":2}'],
    ['a duplicate key', '{"v":1,"type":"envelope","from":"a","to":"c","kind":"heartbeat","body":{"load":0,"incarnation":1},"from":"b"}'],
    ['a trailing newline', `${beat('a-1', '0', '1')}\n`],
    ['trailing garbage', `${beat('a-1', '0', '1')}}`],
    ['version 1.0', beat('a-1', '0', '1').replace('"v":1', '"v":1.0')],
    ['version 2', beat('a-1', '0', '1').replace('"v":1', '"v":2')],
    ['with usage', beat('a-1', '0.5', '3', undefined, 'c', used('0.95', 'memory'))],
    ['with usage and no name', beat('a-1', '0.5', '3', 'ok', 'c', used('0'))],
    ['with usage above 1', beat('a-1', '0.5', '3', undefined, 'c', used('1.5e0', 'tokens'))],
    ['with usage named in 64 units', beat('a-1', '0', '1', undefined, 'c', used('0.1', 'w'.repeat(64)))],
    ['with usage named in 65 units', beat('a-1', '0', '1', undefined, 'c', used('0.1', 'w'.repeat(65)))],
    ['with an empty usage name', beat('a-1', '0', '1', undefined, 'c', used('0.1', ''))],
    ['with a negative usage', beat('a-1', '0', '1', undefined, 'c', used('-0.1'))],
    ['with a negative zero usage', beat('a-1', '0', '1', undefined, 'c', used('-0'))],
    ['with an infinite usage', beat('a-1', '0', '1', undefined, 'c', used('1e400'))],
    ['with an escaped usage name', beat('a-1', '0', '1', undefined, 'c', used('0.2', 'm\\u0065m'))],
    ['with usage keys in another order', beat('a-1', '0', '1', undefined, 'c', '{"what":"cpu","fraction":0.5}')],
    ['with an extra usage key', beat('a-1', '0', '1', undefined, 'c', '{"fraction":0.5,"x":1}')],
    ['with usage before the incarnation', '{"v":1,"type":"envelope","from":"a","to":"c","kind":"heartbeat","body":{"load":0,"usage":{"fraction":0.5},"incarnation":1}}'],
  ])('answers as the general path does: %s', (_, text) => same(text));

  it('answers as the general path does on generated near-misses of a heartbeat', () => {
    const idish = fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom('a-1', '', 'x'.repeat(256), 'x'.repeat(257), 'a\\"b', 'a\\\\b', 'a\\u0041', 'é', '\ud800'),
    );
    const digits = fc.string({ unit: fc.constantFrom('0', '1', '9'), minLength: 1, maxLength: 17 });
    const numberish = fc.oneof(
      fc.double({ noNaN: true }).map(String),
      fc.integer().map(String),
      fc.tuple(fc.constantFrom('', '-', '+'), digits, fc.constantFrom('', '.', '.5', '.05'), fc.constantFrom('', 'e5', 'E-2', 'e+400', 'e')).map(parts => parts.join('')),
      fc.constantFrom('-0', '0.0', '1.0', '9007199254740991', '9007199254740992', '1e400', 'null', '"1"', 'true'),
    );
    const status = fc.option(fc.constantFrom('ok', 'leaving', 'OK', ''), { nil: undefined });
    const usage = fc.option(fc.tuple(numberish, fc.option(idish, { nil: undefined })).map(([fraction, what]) => used(fraction, what)), { nil: undefined });
    const text = fc.tuple(idish, numberish, numberish, status, idish, usage).map(([from, load, inc, s, to, u]) => beat(from, load, inc, s, to, u));
    fc.assert(fc.property(text, same), { numRuns: 500 });
  });
});

describe('wsCodec nesting depth', () => {
  it.each([
    ['a scalar', '1', 0],
    ['an empty object', '{}', 1],
    ['nested arrays', '[[[]]]', 3],
    ['siblings do not add up', '[[],[],[{}]]', 3],
    ['brackets inside strings do not count', '{"a":"[[[{{{"}', 1],
    ['escaped quotes keep the string open', '{"a":"\\"[[[["}', 1],
    ['an escaped backslash closes it', '{"a":"\\\\","b":[[1]]}', 3],
  ])('%s', (_, text, depth) => {
    expect(nestingDepth(text)).toBe(depth);
  });

  it('stops counting once past the limit', () => {
    expect(nestingDepth('['.repeat(10_000), 5)).toBe(6);
  });

  const deep = (levels: number): unknown => {
    let value: unknown = 'core';
    for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { v: value };
    return value;
  };

  it('refuses a frame nested 5,000 deep in a payload with 1007 before parsing it (a 10 KB frame)', () => {
    const text = `{"v":1,"type":"envelope","from":"a-1","to":"coordinator","kind":"result","body":{"via":[],"subtaskId":"s","attempt":1,"agentId":"a-1","ok":true,"value":${'['.repeat(5000)}${']'.repeat(5000)}}}`;
    expect(text.length).toBeLessThan(11_000);
    expect(decode(text)).toEqual({ ok: false, closeCode: WS_CLOSE.invalidPayload, error: `nested deeper than ${DEFAULT_MAX_DEPTH} levels` });
  });

  it('takes payloads as deep as the limit allows (the frame and body count: 3 levels)', () => {
    const fits = env('assign', { via: [], subtask: { id: 's', payload: deep(DEFAULT_MAX_DEPTH - 3) }, attempt: 1, replyPath: [] });
    expect(decode(fits).ok).toBe(true);
    const over = env('assign', { via: [], subtask: { id: 's', payload: deep(DEFAULT_MAX_DEPTH - 2) }, attempt: 1, replyPath: [] });
    expect(decode(over)).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload });
    expect(decode(over, { maxDepth: DEFAULT_MAX_DEPTH + 1 }).ok).toBe(true);
  });

  it('never throws on deep, wide or hostile JSON, and answers with a close code of the table (property)', () => {
    const hostile = fc.oneof(
      fc.jsonValue({ maxDepth: 8 }).map(value => env('result', { via: [], subtaskId: 's', attempt: 1, agentId: 'a-1', ok: true, value })),
      fc.integer({ min: 1, max: 20_000 }).map(n => env('submit', { task: { id: 't', subtasks: [{ id: 's', payload: JSON.parse(`${'['.repeat(Math.min(n, 60))}${']'.repeat(Math.min(n, 60))}`) }] } }).replace('"payload":[', `"payload":${'['.repeat(n)}`)),
      fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.constantFrom('[', '{"a":', '{"__proto__":', '["\\"', '"[')).map(([n, open]) => `{"v":1,"type":"envelope","from":"a","to":"b","kind":"vote","body":${open.repeat(n)}`),
      fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', ':', ',', 'a', '1'), maxLength: 400 }),
      fc.constantFrom('{"__proto__":{"polluted":1},"v":1,"type":"leave"}', '{"constructor":{"prototype":{}},"v":1,"type":"leave"}', `{"v":1,"type":"leave","reason":"${'x'.repeat(2000)}"}`),
    );
    fc.assert(
      fc.property(hostile, text => {
        const result = decode(text);
        if (!result.ok) expect(CODES.has(result.closeCode)).toBe(true);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: Number(process.env.RXSWARM_PROPERTY_RUNS ?? 300) },
    );
  });
});

describe('wsCodec decode, fast paths of the dispatch bodies', () => {
  // What a dispatched subtask brings is checked by hand (streams/wsFastBodies.ts) before the
  // schemas: whatever the check takes must be taken by the schema, and given back the same
  // (values, -0, key order); what it leaves goes to the schema, so refusals are the schema's.
  const same = (kind: WireKind, body: unknown): boolean => {
    const fast = fastBody(kind, body);
    if (fast === undefined) return false;
    const slow = schemaBody(kind, body);
    expect(slow).not.toBeUndefined();
    expect(fast).toStrictEqual(slow);
    expect(JSON.stringify(fast)).toBe(JSON.stringify(slow));
    return true;
  };
  const id = fc.oneof({ arbitrary: fc.constantFrom('a-1', 't', 'x'.repeat(256)), weight: 4 }, { arbitrary: fc.string({ maxLength: 6 }), weight: 2 }, { arbitrary: fc.constantFrom('', 'x'.repeat(257), `${'x'.repeat(255)}😀`, '\ud800'), weight: 1 });
  const anything = fc.oneof(fc.constantFrom(null, true, false, 0, -0, 1.5, 2 ** 53, 1e300, '', 'x', [], {}, ['a'], [1], { x: 1 }), fc.jsonValue({ maxDepth: 2 }));
  const int = fc.oneof(fc.integer(), fc.constantFrom(-0, 2 ** 53 - 1, 2 ** 53, 1.5, 0.1));
  const number = fc.oneof(int, fc.double({ noNaN: true }));
  const ids = fc.oneof(fc.array(id, { maxLength: 3 }), fc.constant([]));
  /**
   * A field drawn from good values mostly, anything sometimes, or left out. Mostly enough that a
   * body of ten fields, nested, is still whole often: the check must be seen taking bodies (each
   * field's own arbitrary has its bad values too).
   */
  const field = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: good, weight: 30 }, { arbitrary: anything, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });
  const record = (fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> =>
    fc.tuple(fc.record(fields), fc.option(fc.dictionary(fc.constantFrom('x', 'hop', 'forged', 'id', '__proto__'), anything, { maxKeys: 2 }), { nil: undefined }), fc.boolean()).map(([r, extra, reversed]) => {
      const entries = Object.entries({ ...r, ...extra }).filter(([, v]) => v !== undefined);
      // Through JSON, as decode's inputs come: no undefined values, `__proto__` an own key.
      return JSON.parse(JSON.stringify(Object.fromEntries(reversed ? entries.reverse() : entries)));
    });
  const mac = fc.oneof(fc.constantFrom('m'.repeat(43), 'm'.repeat(64), 'm'.repeat(65)), fc.string({ maxLength: 4 }));
  const subtask = record({
    id: field(id),
    payload: field(anything),
    capabilities: field(ids),
    priority: field(number),
    timeoutMs: field(fc.oneof(fc.double({ min: 0.001, max: 2 ** 31 - 1, noNaN: true }), fc.constantFrom(2 ** 31 - 1, 2 ** 31, 0, -1))),
    maxAttempts: field(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(0, 1.5, 2 ** 53))),
  });
  const copy = fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.constantFrom(-1, 0.5, 1_000_001));
  const heldMs = fc.oneof(fc.integer({ min: 0, max: 3_600_000 }), fc.constantFrom(-1, 0.5, 3_600_001));
  const bodies: Array<[WireKind, fc.Arbitrary<unknown>]> = [
    ['assign', record({ via: field(ids), taskId: field(id), subtask: field(subtask), attempt: field(int), replyPath: field(ids), mac: field(mac), rto: field(fc.oneof(fc.integer({ min: 1, max: 3_600_000 }), fc.constantFrom(0, 1.5, 3_600_001))), copy: field(copy) })],
    ['result', record({ via: field(ids), taskId: field(id), subtaskId: field(id), attempt: field(int), agentId: field(id), ok: field(fc.boolean()), value: field(anything), error: field(fc.string({ maxLength: 4 })), mac: field(mac), heldMs: field(heldMs) })],
    ['progress', record({ taskId: field(id), subtaskId: field(id), attempt: field(int), progress: field(number), copy: field(copy), done: field(fc.constantFrom(true, false)), heldMs: field(heldMs) })],
    ['received', record({ taskId: field(id), subtaskId: field(id), attempt: field(int) })],
    ['cancel', record({ via: field(ids), taskId: field(id), subtaskId: field(id), attempt: field(int), mac: field(mac) })],
    [
      'submit',
      record({
        task: field(
          record({
            id: field(id),
            subtasks: field(fc.array(subtask, { maxLength: 4 })),
            complexity: field(fc.constantFrom('low', 'medium', 'high', 'huge')),
            coordinationIntensity: field(fc.constantFrom('low', 'high', '')),
            timeoutMs: field(fc.oneof(fc.double({ min: 0.001, max: 2 ** 31 - 1, noNaN: true }), fc.constantFrom(2 ** 31, 0))),
            maxAttempts: field(fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(0, 1.5))),
            // Mostly good: one more field of the task, and the bodies the check takes must stay many.
            deadlineMs: field(fc.oneof({ arbitrary: fc.double({ min: 0.001, max: 2 ** 31 - 1, noNaN: true }), weight: 6 }, { arbitrary: fc.constantFrom(2 ** 31, 0, -1), weight: 1 })),
          }),
        ),
        watch: field(fc.boolean()),
      }),
    ],
  ];

  it.each(bodies)('a %s body the check takes is the schema’s body, on generated bodies', (kind, body) => {
    let taken = 0;
    fc.assert(
      fc.property(body, b => {
        if (same(kind, b)) taken++;
      }),
      // A task has the most fields, each of which may be wrong: three times the runs for as many taken.
      { numRuns: kind === 'submit' ? 6000 : 2000 },
    );
    expect(taken).toBeGreaterThan(5); // the generator reaches the fast path, not only the fallback
  });

  it('takes what the transports send, and decode gives it as the schema would', () => {
    const assign = { via: ['s-1'], taskId: 't', subtask: { id: 'a', payload: { sleepMs: 1 } }, attempt: 3, replyPath: ['hub'], mac: 'm'.repeat(43), rto: 20 };
    const result = { via: ['coordinator'], taskId: 't', subtaskId: 'a', attempt: 3, agentId: 's-1', ok: true, value: { x: [1, { y: null }] }, mac: 'm'.repeat(43) };
    const progress = { taskId: 't', subtaskId: 'a', attempt: 3, progress: 1, done: true };
    for (const [kind, body] of [['assign', assign], ['result', result], ['progress', progress], ['received', { subtaskId: 'a', attempt: 3 }], ['cancel', { via: [], subtaskId: 'a', attempt: 3 }]] as const) {
      expect(same(kind, body)).toBe(true);
      const text = encode({ v: 1, type: 'envelope', from: 'hub', to: 's-1', kind, body });
      expect(decode(text)).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 'hub', to: 's-1', kind, body } });
    }
  });

  it('leaves refusals to the schema: the same close code and message as before', () => {
    const frame = (body: unknown): string => JSON.stringify({ v: 1, type: 'envelope', from: 'hub', to: 's-1', kind: 'result', body });
    expect(decode(frame({ via: [], subtaskId: 'a', attempt: 1.5, agentId: 's', ok: true }))).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload, error: expect.stringMatching(/^invalid result envelope: body\.attempt: /) });
    expect(decode(frame({ via: [], subtaskId: 'a', attempt: 1, agentId: 's', ok: true, forged: 'x' }))).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 'hub', to: 's-1', kind: 'result', body: { via: [], subtaskId: 'a', attempt: 1, agentId: 's', ok: true } } });
    expect(decode(JSON.stringify({ v: 1, type: 'envelope', from: '', to: 's-1', kind: 'result', body: {} }))).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload, error: expect.stringMatching(/^invalid envelope: from: /) });
  });

  it('takes heldMs on a result and a progress as whole ms within an hour, and refuses any other', () => {
    const envelope = (kind: string, body: unknown): string => JSON.stringify({ v: 1, type: 'envelope', from: 's', to: 'coordinator', kind, body });
    const result = { via: [], subtaskId: 'a', attempt: 1, agentId: 's', ok: true };
    const done = { subtaskId: 'a', attempt: 1, progress: 1, done: true };
    for (const [kind, body] of [['result', result], ['progress', done]] as const) {
      expect(decode(envelope(kind, { ...body, heldMs: 12 }))).toEqual({ ok: true, message: { v: 1, type: 'envelope', from: 's', to: 'coordinator', kind, body: { ...body, heldMs: 12 } } });
      for (const heldMs of [-1, 1.5, 3_600_001, '12', null]) {
        expect(decode(envelope(kind, { ...body, heldMs }))).toMatchObject({ ok: false, closeCode: WS_CLOSE.invalidPayload, error: expect.stringMatching(new RegExp(`^invalid ${kind} envelope: body\\.heldMs: `)) });
      }
    }
  });
});
