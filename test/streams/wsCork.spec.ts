import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { TurnCork } from '../../streams/wsCork.js';

// Real sockets on 127.0.0.1; every wait is on an event.
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A ws server and one client connected to it; the server side's socket is returned with what the client reads. */
async function pair(): Promise<{ server: WebSocket; received: string[]; arrived: (n: number) => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>(resolve => wss.once('listening', () => resolve()));
  cleanups.push(() => new Promise<void>(resolve => wss.close(() => resolve())));
  const accepted = new Promise<WebSocket>(resolve => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  cleanups.push(() => client.terminate());
  const received: string[] = [];
  const waiting: Array<{ n: number; resolve: () => void }> = [];
  client.on('message', data => {
    received.push(String(data));
    for (const w of waiting.splice(0)) if (received.length >= w.n) w.resolve();
    else waiting.push(w);
  });
  await new Promise<void>(resolve => client.once('open', () => resolve()));
  const server = await accepted;
  cleanups.push(() => server.terminate());
  return { server, received, arrived: n => (received.length >= n ? Promise.resolve() : new Promise(resolve => waiting.push({ n, resolve }))) };
}

/** ws 8 keeps the TCP socket as `_socket`: the cork reaches it there (this fails if that changes). */
const tcp = (socket: WebSocket) => (socket as unknown as { _socket: { writableCorked: number; writableLength: number } })._socket;

describe('TurnCork', () => {
  it('holds what a turn sends on a socket and writes it at the turn\'s end, in order', async () => {
    const { server, received, arrived } = await pair();
    const cork = new TurnCork();
    for (let i = 0; i < 3; i++) {
      cork.hold(server);
      server.send(`frame ${i}`);
    }
    expect(tcp(server).writableCorked).toBe(1);
    // Held, so counted in bufferedAmount: backpressure accounting sees it.
    expect(server.bufferedAmount).toBeGreaterThan(0);
    await new Promise(resolve => setImmediate(resolve));
    expect(tcp(server).writableCorked).toBe(0);
    await arrived(3);
    expect(received).toEqual(['frame 0', 'frame 1', 'frame 2']);
  });

  it('release writes one socket\'s frames at once (before a close or a leave)', async () => {
    const { server, received, arrived } = await pair();
    const cork = new TurnCork();
    cork.hold(server);
    server.send('last words');
    cork.release(server);
    expect(tcp(server).writableCorked).toBe(0);
    cork.release(server); // nothing held: nothing happens
    await arrived(1);
    expect(received).toEqual(['last words']);
  });

  it('ignores a socket that is not open, and one destroyed while held', async () => {
    const { server } = await pair();
    const cork = new TurnCork();
    cork.hold(new WebSocket('ws://127.0.0.1:1', { autoPong: false }).on('error', () => undefined)); // not connected: no TCP socket yet
    cork.hold(server);
    server.send('lost');
    server.terminate();
    expect(() => cork.flush()).not.toThrow();
  });
});
