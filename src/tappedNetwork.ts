import { tap } from 'rxjs';
import type { Envelope, Outgoing } from '../streams/messages.js';
import type { Network } from '../streams/network.js';

/** What {@link tappedNetwork} tells of what passes. */
export interface NetworkTap<E extends Envelope> {
  /** Every envelope delivered to a node that joined through the tapped network. */
  readonly received?: (envelope: E) => void;
  /** Every envelope sent through it, before the network takes it. */
  readonly sent?: (message: Outgoing<E>) => void;
}

/**
 * The same network, with a look at what passes through it: what its users receive and send. The
 * look is read-only and synchronous; a throwing tap is the caller's bug, so taps should not throw.
 * `serve` gives its coordinator this view of the server, to show heartbeats, progress and routes.
 *
 * @example
 * const network = tappedNetwork(server, { received: e => e.kind === 'heartbeat' && seen(e.from) });
 * createCoordinator({ agents: [], network });
 */
export function tappedNetwork<E extends Envelope>(network: Network<E>, { received, sent }: NetworkTap<E>): Network<E> {
  const tapped: Network<E> = {
    scheduler: network.scheduler,
    join: nodeId => (received === undefined ? network.join(nodeId) : network.join(nodeId).pipe(tap(received))),
    send: message => {
      sent?.(message);
      network.send(message);
    },
    get stats() {
      return network.stats;
    },
  };
  // What a transport for remote agents adds to the seam passes through as it is.
  for (const name of ['members$', 'departures$'] as const) {
    if (network[name] !== undefined) Object.defineProperty(tapped, name, { get: () => network[name], enumerable: true });
  }
  return tapped;
}
