import { connectEarly, type Handlers, type StateMessage } from '../../dashboard/store.js';

// The page's connection opened before the page can take what it says: kept, then handed over in order.

class FakeSocket {
  static readonly OPEN = 1;
  static last: FakeSocket | undefined;
  readyState = 0;
  readonly sent: unknown[] = [];
  onopen: (() => void) | undefined;
  onmessage: ((e: { data: string }) => void) | undefined;
  onclose: ((e: { code: number; reason: string }) => void) | undefined;
  constructor(readonly url: string) {
    FakeSocket.last = this;
  }
  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
}

const state = (seq: number): StateMessage => ({ seq, full: seq === 0, at: 1000 + seq });

describe('connectEarly', () => {
  beforeEach(() => {
    vi.stubGlobal('WebSocket', FakeSocket);
    vi.stubGlobal('location', { protocol: 'http:', host: '127.0.0.1:7070' });
  });
  afterEach(() => vi.unstubAllGlobals());

  function handlers(first: Handlers['first'] = () => ['watch', { live: true, subtasks: true, focus: { taskId: 't', subtaskId: 's' } }]) {
    const heard: string[] = [];
    const h: Handlers = {
      state: m => void heard.push(`state ${m.seq}`),
      status: s => void heard.push(`status ${s.status}`),
      cancelled: b => void heard.push(`cancelled ${b.taskId}`),
      joined: () => void heard.push('joined'),
      first,
    };
    return { h, heard };
  }

  it('says hello and watches everything at once; what comes before the page takes it is handed over in order', () => {
    const early = connectEarly('s3cret');
    const socket = FakeSocket.last!;
    expect(socket.url).toBe('ws://127.0.0.1:7070/');
    socket.open();
    expect(socket.sent).toEqual([
      expect.objectContaining({ type: 'hello', token: 's3cret', role: 'client' }),
      expect.objectContaining({ type: 'envelope', kind: 'watch', to: 'tasks', body: { live: true, subtasks: true } }),
    ]);
    socket.receive({ type: 'join' });
    socket.receive({ type: 'envelope', kind: 'state', body: state(0) });
    const { h, heard } = handlers();
    early.attach(h);
    expect(heard).toEqual(['status connecting', 'status live', 'joined', 'state 0']);
    socket.receive({ type: 'envelope', kind: 'state', body: state(1) });
    socket.receive({ type: 'envelope', kind: 'cancelled', body: { taskId: 't', ok: true } });
    expect(heard.slice(4)).toEqual(['state 1', 'cancelled t']);
  });

  it('once taken, a reconnection watches what the page asks for', () => {
    vi.useFakeTimers();
    try {
      const early = connectEarly('s3cret');
      const { h, heard } = handlers();
      early.attach(h);
      FakeSocket.last!.onclose?.({ code: 1006, reason: '' });
      expect(heard).toContain('status lost');
      vi.advanceTimersByTime(1000);
      const again = FakeSocket.last!;
      again.open();
      expect(again.sent[1]).toMatchObject({ kind: 'watch', body: { focus: { taskId: 't', subtaskId: 's' } } });
      early.link.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a refused token reaches the page when it takes the connection', () => {
    const early = connectEarly('wrong');
    const socket = FakeSocket.last!;
    socket.open();
    socket.receive({ type: 'error', code: 4001, error: 'invalid token' });
    const { h, heard } = handlers();
    early.attach(h);
    expect(heard).toEqual(['status connecting', 'status refused']);
  });
});
