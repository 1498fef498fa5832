import { isUtf8 } from 'node:buffer';
import type { HeartbeatBody } from './protocol.js';
import { WS_CLOSE, type WsCloseCode } from './wsCodec.js';

/**
 * The binary heartbeat frame: a heartbeat envelope in a WebSocket binary message of fixed layout,
 * so that the server reads it without a UTF-8 decode, `JSON.parse` or a regex. Heartbeats are
 * nearly all of an agent's traffic. The connection already names its sender (the agent id of its
 * hello), so the frame carries no `from`; everything else of the JSON envelope travels, with the
 * same meaning.
 *
 * ```
 * offset size  field
 *  0     1     BEAT_FRAME (1): the frame's type and version
 *  1     1     flags: bits 0–1 status (0 absent, 1 'ok', 2 'leaving'), bit 2 usage, bit 3 usage.what; bits 4–7 zero
 *  2     1     bytes of `to` (UTF-8, 1–255)
 *  3     1     bytes of usage.what (UTF-8, 0–255; 0 without bit 3)
 *  4     8     load, float64 LE (finite)
 * 12     8     incarnation, float64 LE (a safe integer)
 * 20     8     usage.fraction, float64 LE (finite, >= 0; +0 without bit 2)
 * 28     …     `to`, then usage.what
 * ```
 *
 * A frame is exactly `28 + to + what` bytes. The server takes it only from a joined connection and
 * only when its join said `beatFrames: 1` (older servers refuse binary frames; agents then send JSON).
 * A bad frame closes the connection like a bad text frame: an unknown first byte 1003, anything
 * else wrong 1007 (see `WS_CLOSE` in wsCodec.ts). A heartbeat that does not fit (an id above 255
 * UTF-8 bytes, a string that is not well-formed UTF-16, a number out of range) goes as JSON, whose
 * checks word the refusal if there is one.
 */
export const BEAT_FRAME = 1;

/** Fixed part of a frame, before `to` and `what`. */
export const BEAT_HEADER_BYTES = 28;

const MAX_STRING_BYTES = 255;
/** As the JSON schema: an id is 1–256 UTF-16 units, usage.what at most 64. */
const MAX_WHAT = 64;

const STATUS_CODES = { ok: 1, leaving: 2 } as const;
const FLAG_USAGE = 0b0100;
const FLAG_WHAT = 0b1000;

/** `text` as UTF-8, or undefined when it would not come back the same (a lone surrogate) or is too long. */
function utf8Of(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length <= MAX_STRING_BYTES && bytes.toString('utf8') === text ? bytes : undefined;
}

/**
 * The binary frame of a heartbeat to `to`, or undefined when it does not fit the layout (send the
 * JSON envelope then). `-0` is written as `0`, as JSON would carry it.
 *
 * @example
 * socket.send(encodeBeatFrame('coordinator', { load: 0.5, incarnation: 1 }) ?? jsonFrame);
 */
export function encodeBeatFrame(to: string, body: HeartbeatBody): Buffer | undefined {
  // Typed, but it may come from anywhere: whatever is off goes as JSON, whose checks word the refusal.
  const { load, status, incarnation, usage } = body;
  if (typeof load !== 'number' || !Number.isFinite(load) || !Number.isSafeInteger(incarnation)) return undefined;
  if (status !== undefined && status !== 'ok' && status !== 'leaving') return undefined;
  if (usage !== undefined && (typeof usage !== 'object' || usage === null || typeof usage.fraction !== 'number' || !(Number.isFinite(usage.fraction) && usage.fraction >= 0))) return undefined;
  if (usage?.what !== undefined && (typeof usage.what !== 'string' || usage.what.length > MAX_WHAT)) return undefined;
  if (typeof to !== 'string' || to.length === 0) return undefined;
  const target = utf8Of(to);
  const what = usage?.what === undefined ? undefined : utf8Of(usage.what);
  if (target === undefined || (usage?.what !== undefined && what === undefined)) return undefined;
  const whatBytes = what?.length ?? 0;
  const frame = Buffer.allocUnsafe(BEAT_HEADER_BYTES + target.length + whatBytes);
  frame[0] = BEAT_FRAME;
  frame[1] = (status === undefined ? 0 : STATUS_CODES[status]) | (usage === undefined ? 0 : FLAG_USAGE) | (what === undefined ? 0 : FLAG_WHAT);
  frame[2] = target.length;
  frame[3] = whatBytes;
  frame.writeDoubleLE(load + 0, 4);
  frame.writeDoubleLE(incarnation + 0, 12);
  frame.writeDoubleLE(usage === undefined ? 0 : usage.fraction + 0, 20);
  target.copy(frame, BEAT_HEADER_BYTES);
  what?.copy(frame, BEAT_HEADER_BYTES + target.length);
  return frame;
}

/** Whether `cached` holds the `length` bytes of `frame` from `start`. */
function same(cached: Buffer, frame: Buffer, start: number, length: number): boolean {
  if (cached.length !== length) return false;
  for (let i = 0; i < length; i++) if (cached[i] !== frame[start + i]) return false;
  return true;
}

/**
 * Reads binary heartbeat frames (a server's one reader serves all its connections: the frame says
 * nothing of its sender). Agents beat to the same few ids with the same usage names over and over:
 * the last `to` and `what` are kept as bytes and string, so a frame that repeats them (nearly all)
 * costs a byte comparison, not a UTF-8 decode. No allocation but the body it returns. Never
 * throws: a bad frame gives undefined, with `error` and `closeCode` set.
 *
 * @example
 * const body = reader.read(data);
 * if (body === undefined) return refuse(reader.closeCode, reader.error);
 * route(agentId, reader.to, 'heartbeat', body);
 */
export class BeatFrameReader {
  /** After a read that gave a body: the envelope's recipient. */
  to = '';
  /** After a read that gave undefined: why, in the decoder's words. */
  error = '';
  /** After a read that gave undefined: the close code for it. */
  closeCode: WsCloseCode = WS_CLOSE.invalidPayload;
  private toBytes: Buffer = Buffer.alloc(0);
  private whatBytes: Buffer = Buffer.alloc(0);
  private what = '';

  read(frame: Buffer): HeartbeatBody | undefined {
    const n = frame.length;
    if (n < BEAT_HEADER_BYTES) return n > 0 && frame[0] !== BEAT_FRAME ? this.unknown(frame) : this.fail(`binary heartbeat frame of ${n} bytes: shorter than its ${BEAT_HEADER_BYTES}-byte header`);
    if (frame[0] !== BEAT_FRAME) return this.unknown(frame);
    const flags = frame[1] as number;
    const toLength = frame[2] as number;
    const whatLength = frame[3] as number;
    if (n !== BEAT_HEADER_BYTES + toLength + whatLength) return this.fail(`binary heartbeat frame of ${n} bytes: its lengths say ${BEAT_HEADER_BYTES + toLength + whatLength}`);
    if (flags > 0b1111 || (flags & 0b11) === 0b11) return this.fail(`binary heartbeat frame: unknown flags 0x${flags.toString(16)}`);
    if ((flags & FLAG_WHAT) !== 0 ? (flags & FLAG_USAGE) === 0 : whatLength !== 0) return this.fail('binary heartbeat frame: usage.what without usage, or what bytes without its flag');
    if (toLength === 0) return this.fail('binary heartbeat frame: empty `to`');
    const load = frame.readDoubleLE(4);
    if (!Number.isFinite(load)) return this.fail(`binary heartbeat frame: load ${load} is not finite`);
    const incarnation = frame.readDoubleLE(12);
    if (!Number.isSafeInteger(incarnation)) return this.fail(`binary heartbeat frame: incarnation ${incarnation} is not a safe integer`);
    // Without usage its fraction is +0: eight zero bytes, checked without decoding a double.
    const fraction = (flags & FLAG_USAGE) === 0 && ((frame[20] as number) | (frame[21] as number) | (frame[22] as number) | (frame[23] as number) | (frame[24] as number) | (frame[25] as number) | (frame[26] as number) | (frame[27] as number)) === 0 ? 0 : frame.readDoubleLE(20);
    if ((flags & FLAG_USAGE) === 0 ? !Object.is(fraction, 0) : !(Number.isFinite(fraction) && fraction >= 0)) {
      return this.fail(`binary heartbeat frame: usage.fraction ${fraction} ${(flags & FLAG_USAGE) === 0 ? 'without usage' : 'is not finite and >= 0'}`);
    }
    if (!same(this.toBytes, frame, BEAT_HEADER_BYTES, toLength)) {
      const to = this.text(frame, BEAT_HEADER_BYTES, toLength);
      if (to === undefined) return this.fail('binary heartbeat frame: `to` is not UTF-8');
      this.toBytes = Buffer.from(frame.subarray(BEAT_HEADER_BYTES, BEAT_HEADER_BYTES + toLength));
      this.to = to;
    }
    const status = flags & 0b11;
    if ((flags & FLAG_USAGE) === 0) {
      return status === 0 ? { load, incarnation } : { load, status: status === 1 ? 'ok' : 'leaving', incarnation };
    }
    let what: string | undefined;
    if ((flags & FLAG_WHAT) !== 0) {
      const start = BEAT_HEADER_BYTES + toLength;
      if (!same(this.whatBytes, frame, start, whatLength)) {
        const text = this.text(frame, start, whatLength);
        if (text === undefined || text.length > MAX_WHAT) return this.fail(`binary heartbeat frame: usage.what ${text === undefined ? 'is not UTF-8' : `of ${text.length} characters, above ${MAX_WHAT}`}`);
        this.whatBytes = Buffer.from(frame.subarray(start, start + whatLength));
        this.what = text;
      }
      what = this.what;
    }
    const usage = what === undefined ? { fraction } : { fraction, what };
    return status === 0 ? { load, incarnation, usage } : { load, status: status === 1 ? 'ok' : 'leaving', incarnation, usage };
  }

  private text(frame: Buffer, start: number, length: number): string | undefined {
    const bytes = frame.subarray(start, start + length);
    return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
  }

  private unknown(frame: Buffer): undefined {
    this.closeCode = WS_CLOSE.unsupportedData;
    this.error = `unknown binary frame type ${frame[0] ?? 'none'} (binary frames are heartbeats, type ${BEAT_FRAME}; send everything else as JSON text)`;
    return undefined;
  }

  private fail(error: string): undefined {
    this.closeCode = WS_CLOSE.invalidPayload;
    this.error = error;
    return undefined;
  }
}
