import { WebSocket } from 'ws';
import type { WireMessage } from '../../streams/wsCodec.js';

// A hand-driven WebSocket for the specs that speak to a server as an attacker or a stranger would.

/** A hand-driven WebSocket: sends anything, records every frame and how it closed. */
export interface Raw {
  readonly socket: WebSocket;
  readonly frames: WireMessage[];
  readonly closed: Promise<{ code: number; reason: string }>;
  send(value: unknown): void;
  /** The first frame (seen or to come) that matches, within `ms` (default the opener's `waitMs`). */
  frame(predicate: (m: WireMessage) => boolean, ms?: number): Promise<WireMessage>;
  onFrame(handler: (m: WireMessage) => void): void;
}

/** Opens `url` within `waitMs`; the caller terminates the socket when done. */
export async function openRaw(url: string, waitMs: number): Promise<Raw> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const frames: WireMessage[] = [];
  const handlers: Array<(m: WireMessage) => void> = [];
  socket.on('message', data => {
    const m = JSON.parse(String(data)) as WireMessage;
    frames.push(m);
    for (const h of [...handlers]) h(m);
  });
  socket.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>(resolve => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  await within(new Promise<void>((resolve, reject) => (socket.once('open', () => resolve()), socket.once('error', reject))), 'the socket to open', waitMs).catch(err => {
    socket.terminate();
    throw err;
  });
  const frame = (predicate: (m: WireMessage) => boolean, ms = waitMs): Promise<WireMessage> => {
    const seen = frames.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    let handler: (m: WireMessage) => void = () => undefined;
    return within(new Promise<WireMessage>(resolve => handlers.push((handler = m => predicate(m) && resolve(m)))), 'a frame', ms).finally(() => handlers.splice(handlers.indexOf(handler), 1));
  };
  return {
    socket,
    frames,
    closed,
    frame,
    send: value => {
      if (socket.readyState === WebSocket.OPEN) socket.send(typeof value === 'string' ? value : JSON.stringify(value));
    },
    onFrame: handler => handlers.push(handler),
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}
