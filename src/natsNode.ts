import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, type NatsEndpoint } from '../streams/natsConnect.js';
import { NatsNetwork, type NatsNetworkOptions } from '../streams/natsNetwork.js';
import type { Coordinator, CoordinatorOptions } from './coordinator.js';
import type { CoordinationEvent } from './events.js';
import { Service, TASKS } from './service.js';
import { COORDINATOR } from './topology.js';

export interface NatsNodeOptions extends NatsEndpoint, Omit<NatsNetworkOptions, 'connection' | 'authority' | 'scheduler'> {
  /** Coordinator options; agents come over NATS. */
  readonly coordinator?: Omit<CoordinatorOptions, 'network' | 'agents'>;
  /** Every coordination event of every task. */
  readonly onEvent?: (event: CoordinationEvent, taskId: string) => void;
  /** Where the ledger is journaled (see `ServiceOptions.dataDir`). Default `:memory:`. */
  readonly dataDir?: string;
}

/**
 * One coordinator node over NATS, alone (`rxswarm serve --nats URL` runs a cluster node,
 * `NatsClusterNode` in natsCluster.ts, which leads with the same parts): a {@link Service} on a
 * {@link NatsNetwork} — the same ledger, task desk (several tasks at once, attach, cancel) and view
 * as over WebSocket, without the HTTP side (dashboard, /metrics), which is bound to the WebSocket
 * server. A single node: the leader lease (`natsLease.ts`) and a JetStream journal are for the
 * cluster; its journal is the file journal of `dataDir`.
 *
 * @example
 * const node = await NatsNode.start({ url: 'nats://127.0.0.1:4222', token });
 * // agents: rxswarm agent --nats nats://127.0.0.1:4222; later:
 * await node.close();
 */
export class NatsNode {
  private constructor(
    readonly service: Service,
    private readonly connection: NatsConnection,
  ) {}

  get network(): NatsNetwork {
    return this.service.server as NatsNetwork;
  }

  get coordinator(): Coordinator {
    return this.service.coordinator;
  }

  /** Connects (checking the server's version and JetStream), subscribes, and returns once agents can say hello. */
  static async start({ url, natsToken, user, pass, coordinator: options = {}, onEvent, dataDir, ...network }: NatsNodeOptions): Promise<NatsNode> {
    const connection = await connectNats({ url, name: 'rxswarm serve', ...(natsToken === undefined ? {} : { natsToken }), ...(user === undefined ? {} : { user }), ...(pass === undefined ? {} : { pass }) });
    let net: NatsNetwork | undefined;
    try {
      const intervalMs = options.heartbeat?.intervalMs ?? 1000;
      net = await NatsNetwork.start({
        heartbeatMs: intervalMs,
        ackTimeoutMs: options.ackTimeoutMs ?? 3000,
        ...network,
        connection,
        authority: COORDINATOR,
        reservedIds: [COORDINATOR, TASKS, ...(network.reservedIds ?? [])],
      });
      const service = Service.on(net, { coordinator: options, ...(onEvent === undefined ? {} : { onEvent }), ...(dataDir === undefined ? {} : { dataDir }) });
      return new NatsNode(service, connection);
    } catch (err) {
      await net?.close();
      await connection.close();
      throw err;
    }
  }

  /** Stops (running tasks stay in the journal), tells every session the coordinator goes away, and closes the connection. */
  async close(): Promise<void> {
    await this.service.close();
    await this.connection.close();
  }
}
