import type { WebSocket } from 'ws';

// Wall-clock scheduling is allowed here: this is the real transport's edge (streams/ws*.ts).

/** What of Node's `net.Socket` holding a connection's writes needs. */
interface Corkable {
  cork(): void;
  uncork(): void;
  readonly writableCorked: number;
  readonly destroyed: boolean;
}

/**
 * The TCP socket under a `ws` WebSocket: ws 8 keeps it as `_socket` and has no public accessor
 * (a test fails if that changes). Undefined before the connection opens and after it closed.
 */
function underlying(socket: WebSocket): Corkable | undefined {
  const raw = (socket as unknown as { _socket?: Corkable | null })._socket;
  return raw === null || raw === undefined || typeof raw.cork !== 'function' ? undefined : raw;
}

/**
 * Fewer, fuller writes: the frames sent on a connection within one turn of the event loop leave in
 * one `writev` instead of one system call each. The first send of a turn corks the socket; one
 * `setImmediate` for the whole process uncorks every socket corked since — after the timers and the
 * I/O callbacks of the turn, so everything a turn of coordination decides (results read, the next
 * assignments, relays) goes out together, and no later than the turn's end.
 *
 * Nothing else changes: the frames are the same frames (limits, signatures, order), and what waits
 * corked counts in `bufferedAmount` (Node's writable length), so backpressure accounting sees it.
 * A socket destroyed while corked drops what it held, as it would have dropped the unsent writes.
 *
 * ```
 * turn:   send a ─ send b ─ send c ─ (check phase) uncork ─▶ one writev [a b c]
 * ```
 */
export class TurnCork {
  private held: Corkable[] = [];
  private scheduled = false;
  private readonly flushAll = (): void => this.flush();

  /** Corks `socket` until the end of this turn, unless it is already corked (by this, or mid-frame by ws). */
  hold(socket: WebSocket): void {
    const raw = underlying(socket);
    if (raw === undefined || raw.writableCorked > 0 || raw.destroyed) return;
    raw.cork();
    this.held.push(raw);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /** Writes what `socket` holds now (before a close or a leave that the process may not outlive). */
  release(socket: WebSocket): void {
    const raw = underlying(socket);
    if (raw === undefined) return;
    const at = this.held.indexOf(raw);
    if (at < 0) return;
    this.held.splice(at, 1);
    while (raw.writableCorked > 0 && !raw.destroyed) raw.uncork();
  }

  /** Uncorks every socket held: what they buffered is written now. */
  flush(): void {
    this.scheduled = false;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    for (const raw of held) {
      // Uncork down to zero: a socket is held once per turn, and ws's own cork/uncork pairs are balanced.
      while (raw.writableCorked > 0 && !raw.destroyed) raw.uncork();
    }
  }
}

/** One per process: every connection's writes of a turn leave at the same moment, with one timer. */
export const turnCork = new TurnCork();
