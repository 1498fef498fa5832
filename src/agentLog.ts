import type { WsClientEvent } from '../streams/wsNetwork.js';

/** After the first attempts, a run of failed reconnects gets at most one line this often. */
export const STILL_TRYING_EVERY_MS = 60_000;

/**
 * Whether failed reconnect attempt `attempt` (1-based, counted since the agent last joined) gets a
 * log line: attempts 1, 2, 4 and 8, then one a minute at most — a coordinator down for an hour
 * costs about sixty lines, not a thousand.
 *
 * ```
 * attempt:  1 2 3 4 5 6 7 8 9 … (≥ everyMs since the last line) …
 * logged:   ✓ ✓   ✓       ✓           ✓
 * ```
 */
export function reconnectLogDue(attempt: number, sinceLastLineMs: number, everyMs = STILL_TRYING_EVERY_MS): boolean {
  if (attempt <= 8) return (attempt & (attempt - 1)) === 0;
  return sinceLastLineMs >= everyMs;
}

export interface AgentLogOptions {
  readonly id: string;
  /** The coordinator's URL, as given. */
  readonly url: string;
  /** Wall-clock milliseconds, for the once-a-minute lines. Default `Date.now`. */
  readonly now?: () => number;
}

/**
 * What `rxswarm agent` says about its connection, one line per event worth a line: joins, a lost
 * connection, why attempts fail (refused, host not found, TLS mismatch…), backed off while the
 * coordinator stays away, and a coordinator restart said as what it is, not as a fault. A final
 * refusal gets no line here: the agent ends with its error.
 */
export class AgentLog {
  private readonly id: string;
  private readonly url: string;
  private readonly now: () => number;
  private session: string | undefined;
  /** Whether the agent has joined since the connection was last lost (or ever). */
  private joined = false;
  private everJoined = false;
  /** Failed attempts since the connection was lost (or since the start). */
  private attempts = 0;
  private lastLineAt = 0;

  constructor({ id, url, now = Date.now }: AgentLogOptions) {
    this.id = id;
    this.url = url;
    this.now = now;
  }

  /** The line for `event`, or undefined when it is not worth one. */
  line(event: WsClientEvent): string | undefined {
    switch (event.type) {
      case 'joined':
        return this.stamp(this.onJoined(event.session));
      case 'disconnected':
        return event.willReconnect ? this.stamp(this.onDisconnected(event)) : undefined;
      default:
        return undefined;
    }
  }

  private onJoined(session: string | undefined): string {
    const restarted = this.everJoined && session !== this.session;
    const again = this.everJoined;
    this.session = session;
    this.joined = this.everJoined = true;
    this.attempts = 0;
    if (restarted) return `${this.id}: coordinator restarted (new session); rejoined ${this.url}, starting over`;
    return again ? `${this.id} rejoined ${this.url}` : `${this.id} joined ${this.url}`;
  }

  private onDisconnected({ code, reason, cause }: Extract<WsClientEvent, { type: 'disconnected' }>): string | undefined {
    if (this.joined) {
      // The connection was up: this is a loss (or a shutdown), not yet a failed attempt.
      this.joined = false;
      this.attempts = 0;
      // 1001: a server shutting down, or a coordinator that does not know the session (NATS: a new leader).
      if (code === 1001) {
        return /unknown session/.test(reason)
          ? `${this.id}: the coordinator at ${this.url} does not know this session (a new coordinator took over); saying hello again`
          : `${this.id}: the coordinator at ${this.url} is shutting down; waiting for it to come back`;
      }
      return `${this.id}: connection to ${this.url} lost (close ${code}${reason ? `: ${reason}` : ''}); reconnecting`;
    }
    this.attempts++;
    const why = cause?.message ?? `close ${code}${reason ? `: ${reason}` : ''}`;
    if (this.attempts === 1 && !this.everJoined) return `${this.id}: cannot reach ${this.url}, retrying with backoff: ${why}`;
    if (!reconnectLogDue(this.attempts, this.now() - this.lastLineAt)) return undefined;
    return `${this.id}: still trying ${this.url}, ${this.attempts} attempt${this.attempts === 1 ? '' : 's'}, last: ${cause?.kind ?? `close ${code}`}`;
  }

  private stamp(line: string | undefined): string | undefined {
    if (line !== undefined) this.lastLineAt = this.now();
    return line;
  }
}
