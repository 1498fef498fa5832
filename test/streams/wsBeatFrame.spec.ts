import fc from 'fast-check';
import type { HeartbeatBody } from '../../streams/protocol.js';
import { BEAT_FRAME, BEAT_HEADER_BYTES, BeatFrameReader, encodeBeatFrame } from '../../streams/wsBeatFrame.js';
import { WS_CLOSE, decode, encode } from '../../streams/wsCodec.js';

const runs = { numRuns: 300 };

/** What the JSON path gives for the same heartbeat: the binary frame must mean exactly that. */
function viaJson(to: string, body: HeartbeatBody): { to: string; body: unknown } | undefined {
  const decoded = decode(encode({ v: 1, type: 'envelope', from: 'a-1', to, kind: 'heartbeat', body }));
  return decoded.ok && decoded.message.type === 'envelope' ? { to: decoded.message.to, body: decoded.message.body } : undefined;
}

function read(frame: Buffer, reader = new BeatFrameReader()): { to: string; body: HeartbeatBody } | { closeCode: number; error: string } {
  const body = reader.read(frame);
  return body === undefined ? { closeCode: reader.closeCode, error: reader.error } : { to: reader.to, body };
}

const good = (body: HeartbeatBody, to = 'coordinator'): Buffer => encodeBeatFrame(to, body) as Buffer;

describe('wsBeatFrame', () => {
  const bodies: Array<[string, HeartbeatBody]> = [
    ['load and incarnation', { load: 0.5, incarnation: 2 }],
    ['leaving', { load: 0, status: 'leaving', incarnation: 1 }],
    ['ok', { load: 1, status: 'ok', incarnation: 7 }],
    ['usage without what', { load: 0.25, incarnation: 3, usage: { fraction: 0.4 } }],
    ['usage with what', { load: 0.25, incarnation: 3, usage: { fraction: 1.5, what: 'event loop' } }],
    ['status and usage', { load: 0, status: 'leaving', incarnation: 3, usage: { fraction: 0, what: 'tokens' } }],
    ['usage with an empty what', { load: 0, incarnation: 0, usage: { fraction: 0, what: '' } }],
    ['negative load, big incarnation', { load: -3.5e300, incarnation: Number.MAX_SAFE_INTEGER }],
  ];

  it.each(bodies)('round trip: %s, the same as the JSON envelope gives', (_, body) => {
    const frame = good(body);
    expect(frame[0]).toBe(BEAT_FRAME);
    expect(read(frame)).toEqual({ to: 'coordinator', body });
    expect(read(frame)).toEqual(viaJson('coordinator', body));
  });

  it('writes -0 as 0, as JSON carries it', () => {
    const r = read(good({ load: -0, incarnation: -0, usage: { fraction: -0 } }));
    expect(Object.is((r as { body: HeartbeatBody }).body.load, 0)).toBe(true);
    expect(r).toEqual(viaJson('coordinator', { load: 0, incarnation: 0, usage: { fraction: 0 } }));
  });

  it('round trip of any heartbeat that fits, equal to the JSON path; what does not fit is left to JSON', () => {
    const body = fc.record(
      {
        load: fc.double({ noNaN: true, noDefaultInfinity: true }),
        status: fc.constantFrom('ok' as const, 'leaving' as const),
        incarnation: fc.maxSafeInteger(),
        usage: fc.record({ fraction: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }), what: fc.string({ unit: 'grapheme', maxLength: 70 }) }, { requiredKeys: ['fraction'] }),
      },
      { requiredKeys: ['load', 'incarnation'] },
    );
    const reader = new BeatFrameReader(); // one reader throughout: its caches must never mix frames up
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 100 }), body, (to, b) => {
        const frame = encodeBeatFrame(to, b);
        if (frame === undefined) {
          expect(Buffer.byteLength(to) > 255 || (b.usage?.what !== undefined && (b.usage.what.length > 64 || Buffer.byteLength(b.usage.what) > 255))).toBe(true);
          return;
        }
        expect(read(frame, reader)).toEqual(viaJson(to, b));
      }),
      runs,
    );
  });

  it('leaves to JSON what it cannot carry as it is', () => {
    expect(encodeBeatFrame('', { load: 0, incarnation: 1 })).toBeUndefined();
    expect(encodeBeatFrame('x'.repeat(256), { load: 0, incarnation: 1 })).toBeUndefined();
    expect(encodeBeatFrame('a\ud800', { load: 0, incarnation: 1 })).toBeUndefined(); // a lone surrogate: UTF-8 would change it
    expect(encodeBeatFrame('c', { load: Number.NaN, incarnation: 1 })).toBeUndefined();
    expect(encodeBeatFrame('c', { load: 0, incarnation: 1.5 })).toBeUndefined();
    expect(encodeBeatFrame('c', { load: 0, incarnation: 1, usage: { fraction: -1 } })).toBeUndefined();
    expect(encodeBeatFrame('c', { load: 0, incarnation: 1, usage: { fraction: 0, what: 'w'.repeat(65) } })).toBeUndefined();
    expect(encodeBeatFrame('c', { load: 0, status: 'bye' as 'ok', incarnation: 1 })).toBeUndefined();
  });

  describe('refuses every malformed frame with a close code and a reason', () => {
    const base = (): Buffer => Buffer.from(good({ load: 0.5, status: 'ok', incarnation: 2, usage: { fraction: 0.5, what: 'cpu' } }));
    const edit = (change: (b: Buffer) => void): Buffer => {
      const b = base();
      change(b);
      return b;
    };
    const noUsage = (): Buffer => Buffer.from(good({ load: 0.5, incarnation: 2 }));
    const cases: Array<[string, Buffer, number, RegExp]> = [
      ['empty', Buffer.alloc(0), WS_CLOSE.invalidPayload, /shorter than its 28-byte header/],
      ['JSON text sent as binary', Buffer.from(encode({ v: 1, type: 'leave' })), WS_CLOSE.unsupportedData, /unknown binary frame type 123/],
      ['unknown type byte', edit(b => (b[0] = 2)), WS_CLOSE.unsupportedData, /unknown binary frame type 2/],
      ['short header', base().subarray(0, BEAT_HEADER_BYTES - 1), WS_CLOSE.invalidPayload, /shorter/],
      ['a byte too many', Buffer.concat([base(), Buffer.from([0])]), WS_CLOSE.invalidPayload, /lengths say/],
      ['a byte too few', base().subarray(0, base().length - 1), WS_CLOSE.invalidPayload, /lengths say/],
      ['to length past the end', edit(b => (b[2] = 255)), WS_CLOSE.invalidPayload, /lengths say/],
      ['status 3', edit(b => (b[1] = (b[1] as number) | 0b11)), WS_CLOSE.invalidPayload, /unknown flags/],
      ['a high flag', edit(b => (b[1] = (b[1] as number) | 0x10)), WS_CLOSE.invalidPayload, /unknown flags/],
      ['what without usage', edit(b => (b[1] = (b[1] as number) & ~0b0100)), WS_CLOSE.invalidPayload, /what without usage/],
      ['what bytes without the flag', edit(b => (b[1] = (b[1] as number) & ~0b1000)), WS_CLOSE.invalidPayload, /without its flag/],
      ['empty to', Buffer.concat([Buffer.from([BEAT_FRAME, 0, 0, 0]), Buffer.alloc(24)]), WS_CLOSE.invalidPayload, /empty `to`/],
      ['load NaN', edit(b => b.writeDoubleLE(Number.NaN, 4)), WS_CLOSE.invalidPayload, /load NaN/],
      ['load Infinity', edit(b => b.writeDoubleLE(Number.POSITIVE_INFINITY, 4)), WS_CLOSE.invalidPayload, /load Infinity/],
      ['incarnation fractional', edit(b => b.writeDoubleLE(1.5, 12)), WS_CLOSE.invalidPayload, /incarnation 1.5/],
      ['incarnation unsafe', edit(b => b.writeDoubleLE(2 ** 60, 12)), WS_CLOSE.invalidPayload, /not a safe integer/],
      ['fraction negative', edit(b => b.writeDoubleLE(-0.5, 20)), WS_CLOSE.invalidPayload, /fraction -0.5/],
      ['fraction NaN', edit(b => b.writeDoubleLE(Number.NaN, 20)), WS_CLOSE.invalidPayload, /fraction NaN/],
      ['fraction without usage', (() => { const b = noUsage(); b.writeDoubleLE(0.5, 20); return b; })(), WS_CLOSE.invalidPayload, /without usage/],
      ['to not UTF-8', edit(b => (b[BEAT_HEADER_BYTES] = 0xff)), WS_CLOSE.invalidPayload, /`to` is not UTF-8/],
      ['what not UTF-8', edit(b => (b[b.length - 1] = 0xc3)), WS_CLOSE.invalidPayload, /what is not UTF-8/],
      [
        'what above 64 characters',
        (() => {
          const what = Buffer.from('w'.repeat(65));
          const head = base().subarray(0, BEAT_HEADER_BYTES);
          head[3] = what.length;
          return Buffer.concat([head, Buffer.from('coordinator'), what]);
        })(),
        WS_CLOSE.invalidPayload,
        /of 65 characters, above 64/,
      ],
    ];

    it.each(cases)('%s', (_, frame, closeCode, error) => {
      const r = read(frame);
      expect(r).toMatchObject({ closeCode });
      expect((r as { error: string }).error).toMatch(error);
    });

    it('a refused frame leaves the reader as it was: the next good frame reads right', () => {
      const reader = new BeatFrameReader();
      expect(read(good({ load: 1, incarnation: 1, usage: { fraction: 0.1, what: 'memory' } }, 'hub'), reader)).toMatchObject({ to: 'hub' });
      for (const [, frame] of cases) expect(read(frame, reader)).toHaveProperty('closeCode');
      expect(read(good({ load: 1, incarnation: 1, usage: { fraction: 0.2, what: 'memory' } }, 'hub'), reader)).toEqual({ to: 'hub', body: { load: 1, incarnation: 1, usage: { fraction: 0.2, what: 'memory' } } });
    });

    it('never throws on arbitrary bytes, and anything it takes is a valid heartbeat', () => {
      const reader = new BeatFrameReader();
      const header = fc.tuple(fc.constantFrom(BEAT_FRAME, 0, 2, 255), fc.nat(255), fc.nat(255), fc.nat(255)).map(h => Buffer.from(h));
      const bytes = fc.oneof(fc.uint8Array({ maxLength: 80 }).map(a => Buffer.from(a)), fc.tuple(header, fc.uint8Array({ maxLength: 300 })).map(([h, rest]) => Buffer.concat([h, Buffer.from(rest)])));
      fc.assert(
        fc.property(bytes, frame => {
          const r = read(frame, reader);
          if ('closeCode' in r) {
            expect([WS_CLOSE.invalidPayload, WS_CLOSE.unsupportedData]).toContain(r.closeCode);
            expect(r.error.length).toBeGreaterThan(0);
          } else {
            expect(viaJson(r.to, r.body)).toEqual(r);
          }
        }),
        runs,
      );
    });
  });
});
