import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ReplaySubject, filter, firstValueFrom, timeout } from 'rxjs';
import { WebSocketServer } from 'ws';
import { connectionCause, timeoutCause } from '../../streams/connectionCause.js';
import { WsClientNetwork, WsConnectionError, WsServerNetwork, type WsClientEvent } from '../../streams/wsNetwork.js';

// Real sockets on 127.0.0.1 (and a name under .invalid, which never resolves). Nothing sleeps:
// every wait is on an event, bounded by a timeout.
const WAIT_MS = 5000;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listening(server: Server): Promise<number> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: one the system just gave out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listening(server);
  await new Promise(resolve => server.close(resolve));
  return port;
}

/** Connects a client that tries twice, and resolves with its first disconnect and the error its inbox ends with. */
async function failure(url: string, options: { connectTimeoutMs?: number } = {}): Promise<{ event: Extract<WsClientEvent, { type: 'disconnected' }>; error: WsConnectionError }> {
  const events = new ReplaySubject<WsClientEvent>();
  const network = new WsClientNetwork({ url, agentId: 'a-1', token: 't', log: e => events.next(e), reconnect: { initialDelayMs: 1, maxDelayMs: 1, maxAttempts: 1 }, ...options });
  cleanups.push(() => network.close());
  const error = new Promise<WsConnectionError>((resolve, reject) => {
    network.join('a-1').subscribe({ error: resolve, complete: () => reject(new Error('completed')) });
    setTimeout(() => reject(new Error(`no error within ${WAIT_MS} ms`)), WAIT_MS).unref();
  });
  const event = await firstValueFrom(events.pipe(filter((e): e is Extract<WsClientEvent, { type: 'disconnected' }> => e.type === 'disconnected'), timeout(WAIT_MS)));
  return { event, error: await error };
}

describe('WsClientNetwork: why a connection cannot be made', () => {
  it('refused: nothing listens on the port; says to check that `rxswarm serve` runs there', async () => {
    const port = await closedPort();
    const { event, error } = await failure(`ws://127.0.0.1:${port}`);
    expect(event).toMatchObject({ code: 1006, willReconnect: true, cause: { kind: 'refused', code: 'ECONNREFUSED' } });
    expect(error).toBeInstanceOf(WsConnectionError);
    expect(error.message).toBe(`cannot connect: connection refused by 127.0.0.1:${port} (ECONNREFUSED): is \`rxswarm serve\` running on that host and port? (gave up after 1 attempt)`);
    expect(error.cause).toMatchObject({ kind: 'refused' });
  });

  it('host not found: an .invalid name; says to check the host name', async () => {
    const { event, error } = await failure('ws://rxswarm-nowhere.invalid:7070');
    expect(event.cause).toMatchObject({ kind: 'host not found' });
    expect(error.message).toMatch(/^cannot connect: host rxswarm-nowhere\.invalid not found \((ENOTFOUND|EAI_AGAIN)\): check the host name/);
  });

  it('TLS mismatch: wss:// against a plain server; says to use ws://', async () => {
    const server = await WsServerNetwork.listen({ token: 't', port: 0, log: () => undefined });
    cleanups.push(() => server.close());
    const { event, error } = await failure(`wss://127.0.0.1:${server.port}`);
    expect(event.cause).toMatchObject({ kind: 'TLS mismatch' });
    expect(error.message).toMatch(new RegExp(`^cannot connect: TLS handshake with 127\\.0\\.0\\.1:${server.port} failed \\(.*\\): the server speaks plain ws://; use ws://127\\.0\\.0\\.1:${server.port}`));
  });

  it('timed out: a TCP server that accepts and never answers is abandoned after connectTimeoutMs and retried', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer(socket => sockets.add(socket));
    const port = await listening(silent);
    cleanups.push(() => new Promise(resolve => (sockets.forEach(s => s.destroy()), silent.close(resolve))));
    const { event, error } = await failure(`ws://127.0.0.1:${port}`, { connectTimeoutMs: 200 });
    expect(event).toMatchObject({ code: 1006, willReconnect: true, cause: { kind: 'timed out' } });
    expect(error.message).toMatch(new RegExp(`^cannot connect: no answer from 127\\.0\\.0\\.1:${port} within 200 ms: is the host up, is \`rxswarm serve\` listening there`));
    expect(sockets.size).toBe(2); // the first attempt was abandoned and a second one made
  });

  it('timed out after the upgrade: a WebSocket server that never answers the hello', async () => {
    const mute = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise(resolve => mute.once('listening', resolve));
    cleanups.push(() => new Promise(resolve => (mute.clients.forEach(c => c.terminate()), mute.close(resolve))));
    const { port } = mute.address() as AddressInfo;
    const { error } = await failure(`ws://127.0.0.1:${port}`, { connectTimeoutMs: 200 });
    expect(error.message).toMatch(/took the WebSocket connection but did not answer the hello within 200 ms: is it an rxswarm coordinator\?/);
  });

  it('not a coordinator: an HTTP server that answers without an upgrade', async () => {
    const http = createHttpServer((_, response) => response.writeHead(404).end());
    const port = await listening(http as unknown as Server);
    cleanups.push(() => new Promise(resolve => (http.closeAllConnections(), http.close(resolve))));
    const { error } = await failure(`ws://127.0.0.1:${port}`);
    expect(error.message).toMatch(new RegExp(`answered HTTP 404 instead of a WebSocket upgrade: is it an rxswarm coordinator`));
  });

  it('a closed connection with a close code has no cause (the server said why)', async () => {
    const server = await WsServerNetwork.listen({ token: 'right', port: 0, log: () => undefined });
    cleanups.push(() => server.close());
    const network = new WsClientNetwork({ url: server.url, agentId: 'a-1', token: 'wrong' });
    cleanups.push(() => network.close());
    const error = await new Promise<WsConnectionError>(resolve => network.join('a-1').subscribe({ error: resolve }));
    expect(error).toMatchObject({ code: 4001, cause: undefined, message: 'connection refused for good (close 4001): invalid token' });
  });

  it('rejects a bad connectTimeoutMs', () => {
    expect(() => new WsClientNetwork({ url: 'ws://127.0.0.1:1', agentId: 'a', token: 't', connectTimeoutMs: 0 })).toThrow(/connectTimeoutMs/);
  });
});

describe('connectionCause', () => {
  const error = (code: string | undefined, message: string): Error & { code?: string } => Object.assign(new Error(message), code === undefined ? {} : { code });

  it.each([
    ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:7070', 'ws://10.0.0.5:7070', 'refused', /^connection refused by 10\.0\.0\.5:7070 \(ECONNREFUSED\)/],
    ['EAI_AGAIN', 'getaddrinfo EAI_AGAIN coordinator', 'ws://coordinator:7070', 'host not found', /^host coordinator not found \(EAI_AGAIN\)/],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH', 'ws://10.0.0.9:7070', 'unreachable', /^10\.0\.0\.9 is unreachable/],
    ['ETIMEDOUT', 'connect ETIMEDOUT', 'ws://10.0.0.9', 'timed out', /^no answer from 10\.0\.0\.9:80 \(ETIMEDOUT\)/],
    ['EPROTO', 'write EPROTO 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl3_record.c:350:', 'wss://h:7070', 'TLS mismatch', /^TLS handshake with h:7070 failed \(wrong version number\): the server speaks plain ws:\/\/; use ws:\/\/h:7070/],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate', 'wss://h', 'TLS certificate', /^the TLS certificate of h:443 was not accepted/],
    ['ECONNRESET', 'socket hang up', 'ws://h:443', 'reset', /closed the connection during the handshake \(ECONNRESET\): if it expects TLS, use wss:\/\//],
    [undefined, 'Unexpected server response: 200', 'ws://h:8080', 'not a coordinator', /^h:8080 answered HTTP 200 instead of a WebSocket upgrade/],
    [undefined, 'something else', 'ws://h:1', 'failed', /^cannot connect to h:1: something else$/],
  ])('%s (%s) → %s', (code, message, url, kind, text) => {
    const cause = connectionCause(error(code, message), url);
    expect(cause.kind).toBe(kind);
    expect(cause.code).toBe(code);
    expect(cause.message).toMatch(text);
  });

  it('timeoutCause tells a silent host from a server that took the upgrade', () => {
    expect(timeoutCause('wss://h', 10_000, false).message).toMatch(/^no answer from h:443 within 10000 ms/);
    expect(timeoutCause('ws://h:7', 500, true).message).toMatch(/^h:7 took the WebSocket connection but did not answer the hello within 500 ms/);
  });
});
