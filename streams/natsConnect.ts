import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

// A real transport at the edge of the system: wall time is allowed here (the architecture test
// exempts streams/nats*.ts), as in streams/ws*.ts.

/** The oldest nats-server rxswarm runs on: KV buckets with a TTL (max age) and CAS updates are there since 2.9 (Debian's package). */
export const MIN_NATS_SERVER = '2.9.0';

/** How a NATS server is reached: `nats://[user:pass@ | token@]host:port`, or the credentials apart. */
export interface NatsEndpoint {
  /** `nats://host:port` (credentials in the URL are taken out and used as below). */
  readonly url: string;
  /** NATS token authentication (`nats-server --auth`). */
  readonly natsToken?: string;
  /** NATS user/password authentication (`nats-server --user --pass`). */
  readonly user?: string;
  readonly pass?: string;
}

export interface ConnectNatsOptions extends NatsEndpoint {
  /** Shown on the server (`/connz`). */
  readonly name?: string;
  /** Refuse a server without JetStream (the leader lease and the journal need it). Default true. */
  readonly requireJetStream?: boolean;
  /** Bound on the first connection. Default 5000 ms. */
  readonly timeoutMs?: number;
}

/** Why a NATS server cannot be used: not reachable, credentials refused, too old, JetStream off. `final`: retrying will not help. */
export class NatsSetupError extends Error {
  override name = 'NatsSetupError';
  constructor(
    message: string,
    readonly final: boolean,
  ) {
    super(message);
  }
}

/** `nats://user:pass@host:4222` → the server and the credentials apart; RangeError for anything but nats:// or tls://. */
export function parseNatsUrl(text: string): NatsEndpoint & { readonly server: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RangeError(`NATS URL must be nats://HOST:PORT, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new RangeError(`NATS URL must be nats://HOST:PORT (or tls://), got ${JSON.stringify(text)}`);
  if (url.hostname === '') throw new RangeError(`NATS URL has no host: ${JSON.stringify(text)}`);
  const server = `${url.protocol}//${url.host}`;
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  if (user === '') return { url: server, server };
  return url.password === '' ? { url: server, server, natsToken: user } : { url: server, server, user, pass };
}

/** Whether version `a` (`2.9.10`) is at least `b`. */
export function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split(/[.-]/).map(n => Number.parseInt(n, 10));
  const pb = b.split(/[.-]/).map(n => Number.parseInt(n, 10));
  for (let i = 0; i < 3; i++) {
    const x = Number.isFinite(pa[i]) ? (pa[i] as number) : 0;
    const y = Number.isFinite(pb[i]) ? (pb[i] as number) : 0;
    if (x !== y) return x > y;
  }
  return true;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

/**
 * Connects to a NATS server and checks that rxswarm can use it: its version (at least
 * {@link MIN_NATS_SERVER}) and, unless told otherwise, that JetStream is enabled for this account.
 * Rejects with a {@link NatsSetupError} that says what is missing and how to fix it. Once
 * connected, the client reconnects by itself for as long as the process runs.
 *
 * @example
 * const nc = await connectNats({ ...parseNatsUrl('nats://alice:s3cret@10.0.0.2:4222'), name: 'rxswarm serve' });
 */
export async function connectNats({ url, natsToken, user, pass, name = 'rxswarm', requireJetStream = true, timeoutMs = 5000 }: ConnectNatsOptions): Promise<NatsConnection> {
  const parsed = parseNatsUrl(url);
  // Credentials in the URL win over those given apart (the environment's); never a mix of both.
  const inUrl = parsed.natsToken !== undefined || parsed.user !== undefined;
  const token = inUrl ? parsed.natsToken : natsToken;
  const login = inUrl ? parsed.user : user;
  const password = inUrl ? parsed.pass : pass;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: parsed.server,
      name,
      timeout: timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      ...(token === undefined ? {} : { token }),
      ...(login === undefined ? {} : { user: login, pass: password ?? '' }),
    });
  } catch (err) {
    const text = describe(err);
    if (/authori[sz]ation|authentication/i.test(text)) {
      throw new NatsSetupError(`nats-server at ${parsed.server} refused the credentials (${text}): give the user and password (nats://USER:PASS@HOST:PORT) or the token (nats://TOKEN@HOST:PORT) it expects`, true);
    }
    throw new NatsSetupError(`cannot reach nats-server at ${parsed.server} (${text}): is it running on that host and port?`, false);
  }
  const info = nc.info;
  const version = info?.version ?? 'unknown';
  if (info === undefined || !versionAtLeast(version, MIN_NATS_SERVER)) {
    await nc.close();
    throw new NatsSetupError(`nats-server at ${parsed.server} is version ${version}; rxswarm needs ${MIN_NATS_SERVER} or newer (KV buckets with a TTL, compare-and-set updates)`, true);
  }
  if (requireJetStream) {
    if (info.jetstream !== true) {
      await nc.close();
      throw new NatsSetupError(`nats-server ${version} at ${parsed.server} has JetStream disabled: start it with -js (and -sd DIR for its storage), or add "jetstream {}" to its configuration`, true);
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
      await jsm.getAccountInfo();
    } catch (err) {
      await nc.close();
      throw new NatsSetupError(`nats-server ${version} at ${parsed.server} has JetStream, but not for this account (${describe(err)}): enable JetStream for the account in the server's configuration`, true);
    }
  }
  return nc;
}
