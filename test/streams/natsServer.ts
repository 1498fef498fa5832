import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Envelope } from '../../streams/messages.js';
import { connectNats } from '../../streams/natsConnect.js';
import { NatsNetwork } from '../../streams/natsNetwork.js';
import type { WsServerEvent } from '../../streams/wsNetwork.js';

// A real nats-server per test (Debian's package, installed by .ci/run): JetStream on, storage in a
// fresh temporary directory, a free port on 127.0.0.1. A test that cannot start one fails — the
// error says what is missing — it never skips.

export const NATS_SERVER = process.env['NATS_SERVER_BIN'] ?? '/usr/sbin/nats-server';

export interface NatsServerOptions {
  /** The nats-server binary. Default {@link NATS_SERVER}. */
  readonly binary?: string;
  /** `--user`/`--pass` for every client. */
  readonly user?: string;
  readonly pass?: string;
  /** `--auth TOKEN` for every client. */
  readonly token?: string;
  /** Without `-js`: to test what a client says when JetStream is off. Default true. */
  readonly jetstream?: boolean;
  /** `--max_payload` in bytes (server default 1 MiB). */
  readonly maxPayload?: number;
  /** Bound on the start. Default 10,000 ms. */
  readonly startTimeoutMs?: number;
  /** A port of your own (to restart a server where its clients expect it). Default: a free one. */
  readonly port?: number;
  /** Storage of your own (kept by `stop`): to restart a server with its JetStream state. Default: a fresh temporary directory, removed by `stop`. */
  readonly storeDir?: string;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly process: ChildProcess;
  /** Stops it (SIGTERM, SIGKILL after 3 s) and removes its storage (unless it was given). */
  stop(): Promise<void>;
}

/** A port nobody listens on now (the kernel's choice for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Starts a nats-server and resolves once it says it is ready; rejects (with its output) if it does not within the bound. */
export async function startNatsServer({ binary = NATS_SERVER, user, pass, token, jetstream = true, maxPayload, startTimeoutMs = 10_000, port: given, storeDir: store }: NatsServerOptions = {}): Promise<NatsServer> {
  if (!existsSync(binary)) throw new Error(`${binary} not found: install Debian's nats-server package (apt-get install nats-server; .ci/run does)`);
  const port = given ?? (await freePort());
  const storeDir = store ?? mkdtempSync(join(tmpdir(), 'rxswarm-nats-'));
  const removeStore = (): void => {
    if (store === undefined) rmSync(storeDir, { recursive: true, force: true });
  };
  const args = ['-p', String(port), '-a', '127.0.0.1', '-sd', storeDir];
  if (jetstream) args.push('-js');
  if (user !== undefined) args.push('--user', user, '--pass', pass ?? '');
  if (token !== undefined) args.push('--auth', token);
  if (maxPayload !== undefined) args.push('--max_payload', String(maxPayload));
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not say it was ready within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
      const seen = (chunk: Buffer): void => {
        output += chunk.toString('utf8');
        if (/Server is ready/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', seen);
      child.stderr?.on('data', seen);
      child.once('error', err => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(code => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}) before it was ready:\n${output}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    removeStore();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGCONT');
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        removeStore();
      })()),
  };
}

/**
 * A coordinator node on its own connection to `url`, its events and what reaches `coordinator`
 * recorded; `cleanups` gets what closes it (run them in reverse after the test).
 */
export async function coordinatorNode(url: string, token: string, cleanups: Array<() => unknown>, options: Partial<Parameters<typeof NatsNetwork.start>[0]> = {}): Promise<{ network: NatsNetwork; events: WsServerEvent[]; inbox: Envelope[] }> {
  const nc = await connectNats({ url });
  const network = await NatsNetwork.start({ connection: nc, token, heartbeatMs: 100, log: () => undefined, ...options });
  cleanups.push(async () => {
    await network.close();
    await nc.close();
  });
  const events: WsServerEvent[] = [];
  network.events$.subscribe(e => events.push(e));
  const inbox: Envelope[] = [];
  const sub = network.join('coordinator').subscribe(e => inbox.push(e));
  cleanups.push(() => sub.unsubscribe());
  return { network, events, inbox };
}
