/**
 * Why a WebSocket connection to a coordinator could not be made, in words a person can act on.
 * `ws` reports a failed connection as close 1006 and nothing else; the errno it emitted just before
 * (ECONNREFUSED, ENOTFOUND, EPROTO…) is what says whether to start the server, fix the host name
 * or change `ws://` to `wss://`.
 */
export interface ConnectionCause {
  /** What went wrong, in short (for a line such as "still trying, 8 attempts, last: refused"). */
  readonly kind: ConnectionCauseKind;
  /** The system's or TLS library's code when there was one: ECONNREFUSED, ENOTFOUND, EPROTO, … */
  readonly code: string | undefined;
  /** What happened and what to check, in one sentence. */
  readonly message: string;
}

export type ConnectionCauseKind = 'refused' | 'host not found' | 'unreachable' | 'TLS mismatch' | 'TLS certificate' | 'timed out' | 'reset' | 'not a coordinator' | 'failed';

const NOT_FOUND = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'EAI_NODATA']);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EHOSTDOWN', 'ENETDOWN']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** `host:port` of a ws:// or wss:// URL, with the scheme's default port. */
function endpoint(url: string): { readonly host: string; readonly port: string; readonly tls: boolean } {
  try {
    const parsed = new URL(url);
    const tls = parsed.protocol === 'wss:';
    return { host: parsed.hostname, port: parsed.port || (tls ? '443' : '80'), tls };
  } catch {
    return { host: url, port: '?', tls: url.startsWith('wss:') };
  }
}

/** The error `ws` emitted while connecting to `url`, as a {@link ConnectionCause}. */
export function connectionCause(error: Error & { readonly code?: unknown }, url: string): ConnectionCause {
  const { host, port, tls } = endpoint(url);
  const code = typeof error.code === 'string' ? error.code : undefined;
  const what = `${code ?? error.message}`;
  const cause = (kind: ConnectionCauseKind, message: string): ConnectionCause => ({ kind, code, message });
  if (code === 'ECONNREFUSED') return cause('refused', `connection refused by ${host}:${port} (${what}): is \`rxswarm serve\` running on that host and port?`);
  if (code !== undefined && NOT_FOUND.has(code)) return cause('host not found', `host ${host} not found (${what}): check the host name in the URL and this machine's DNS`);
  if (code !== undefined && UNREACHABLE.has(code)) return cause('unreachable', `${host} is unreachable (${what}): check the address and the network between the two machines`);
  if (code === 'ETIMEDOUT') return cause('timed out', `no answer from ${host}:${port} (${what}): is the host up, and does a firewall let port ${port} through?`);
  if (/wrong version number|packet length too long|unknown protocol|ERR_SSL_|EPROTO/i.test(`${code ?? ''} ${error.message}`)) {
    return tls
      ? cause('TLS mismatch', `TLS handshake with ${host}:${port} failed (${firstLine(error.message)}): the server speaks plain ws://; use ws://${host}:${port}, or put a TLS-terminating proxy in front of it`)
      : cause('TLS mismatch', `${host}:${port} answered with TLS (${firstLine(error.message)}): use wss://`);
  }
  if (code !== undefined && (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code))) {
    return cause('TLS certificate', `the TLS certificate of ${host}:${port} was not accepted (${what}): check the certificate, or NODE_EXTRA_CA_CERTS for a private CA`);
  }
  if ((code !== undefined && RESET.has(code)) || /socket hang up/i.test(error.message)) {
    return cause('reset', `${host}:${port} closed the connection during the handshake (${what})${tls ? '' : ': if it expects TLS, use wss://'}`);
  }
  const status = /Unexpected server response: (\d+)/.exec(error.message);
  if (status !== null) return cause('not a coordinator', `${host}:${port} answered HTTP ${status[1]} instead of a WebSocket upgrade: is it an rxswarm coordinator, and the right port and path?`);
  return cause('failed', `cannot connect to ${host}:${port}: ${firstLine(error.message)}`);
}

/**
 * A connection attempt abandoned after `ms`: `upgraded` when the WebSocket opened but the hello
 * got no answer (something that is not a coordinator, or one too busy to answer).
 */
export function timeoutCause(url: string, ms: number, upgraded: boolean): ConnectionCause {
  const { host, port } = endpoint(url);
  return {
    kind: 'timed out',
    code: undefined,
    message: upgraded
      ? `${host}:${port} took the WebSocket connection but did not answer the hello within ${ms} ms: is it an rxswarm coordinator?`
      : `no answer from ${host}:${port} within ${ms} ms: is the host up, is \`rxswarm serve\` listening there, and does a firewall let port ${port} through?`,
  };
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? text;
  // OpenSSL's messages carry a source path; the reason is what follows "routines:".
  const reason = /routines:[^:]*:([^:]+)/.exec(line);
  return reason === null ? line : (reason[1] as string);
}
