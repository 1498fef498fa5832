import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { WsServerNetwork } from '../../streams/wsNetwork.js';
import { decode } from '../../streams/wsCodec.js';

// Plain HTTP on the WebSocket server's port (onHttpRequest), bounded like every connection; and
// what a client connection may send since it can watch and cancel.

const TOKEN = 'http-token';

describe('WsServerNetwork over HTTP', () => {
  let server: WsServerNetwork | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('hands requests to onHttpRequest; unanswered ones get 426; a throwing handler 500, the server goes on', async () => {
    server = await WsServerNetwork.listen({
      token: TOKEN,
      port: 0,
      log: () => undefined,
      onHttpRequest: (request, response) => {
        if (request.url === '/boom') throw new Error('boom');
        if (request.url !== '/hello') return false;
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('hi');
        return true;
      },
    });
    const http = server.url.replace(/^ws/, 'http');
    expect(await (await fetch(`${http}/hello`)).text()).toBe('hi');
    expect((await fetch(`${http}/other`)).status).toBe(426);
    expect((await fetch(`${http}/boom`)).status).toBe(500);
    expect(await (await fetch(`${http}/hello`)).text()).toBe('hi');
  });

  it('drops a request whose headers do not come within the handshake bound', async () => {
    server = await WsServerNetwork.listen({ token: TOKEN, port: 0, log: () => undefined, handshakeTimeoutMs: 300, onHttpRequest: () => true });
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise(resolve => socket.once('connect', resolve));
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'); // and never the blank line
    const started = Date.now();
    await new Promise(resolve => socket.once('close', resolve));
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it.each([
    ['watch', { live: true }, undefined],
    ['cancel-task', { taskId: 't' }, undefined],
    ['watch', { live: true, steer: 'agent-1' }, 1007],
    ['assign', { via: [], subtask: { id: 's' }, attempt: 1, replyPath: [] }, 1008],
  ] as const)('a client sending %s %j: closed with %s', async (kind, body, code) => {
    server = await WsServerNetwork.listen({ token: TOKEN, port: 0, log: () => undefined });
    const inbox: unknown[] = [];
    const joined = server.join('tasks').subscribe(e => inbox.push(e.kind));
    const ws = new WebSocket(server.url);
    const closed = new Promise<number>(resolve => ws.once('close', resolve));
    await new Promise(resolve => ws.once('open', resolve));
    ws.send(JSON.stringify({ v: 1, type: 'hello', agentId: 'c', capabilities: [], token: TOKEN, role: 'client' }));
    await new Promise<void>(resolve => ws.once('message', data => (decode(String(data)).ok, resolve())));
    ws.send(JSON.stringify({ v: 1, type: 'envelope', from: 'c', to: 'tasks', kind, body }));
    if (code === undefined) {
      await new Promise(resolve => setTimeout(resolve, 100));
      expect(inbox).toEqual([kind]);
      ws.close();
    } else expect(await closed).toBe(code);
    joined.unsubscribe();
  });
});
