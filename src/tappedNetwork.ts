import { Subject, tap } from 'rxjs';
import type { Envelope, Outgoing } from '../streams/messages.js';
import type { Network } from '../streams/network.js';

/** What {@link tappedNetwork} tells of what passes. */
export interface NetworkTap<E extends Envelope> {
  /** Every envelope delivered to a node that joined through the tapped network (or to `hold`). */
  readonly received?: (envelope: E) => void;
  /** Every envelope sent through it, before the network takes it. */
  readonly sent?: (message: Outgoing<E>) => void;
  /**
   * A node whose inbox is held joined from now until `release`: `received` sees what reaches it
   * even while nobody has joined it, and whoever joins it through the tapped network gets what
   * arrives from then on (one after another: an engine that stops, then the next).
   */
  readonly hold?: string;
}

/** A tapped network; `release` lets go of the held inbox (see {@link NetworkTap.hold}). */
export type TappedNetwork<E extends Envelope> = Network<E> & { readonly release: () => void };

/**
 * The same network, with a look at what passes through it: what its users receive and send. The
 * look is read-only and synchronous; a throwing tap is the caller's bug, so taps should not throw.
 * `serve` gives its coordinator this view of the server, to show heartbeats, progress and routes,
 * holding the coordinator's inbox so that beats are seen between tasks too (an engine joins only
 * while tasks run).
 *
 * @example
 * const network = tappedNetwork(server, { received: e => e.kind === 'heartbeat' && seen(e.from), hold: 'coordinator' });
 * createCoordinator({ agents: [], network });
 */
export function tappedNetwork<E extends Envelope>(network: Network<E>, { received, sent, hold }: NetworkTap<E>): TappedNetwork<E> {
  const join = (nodeId: string) => (received === undefined ? network.join(nodeId) : network.join(nodeId).pipe(tap(received)));
  const held = hold === undefined ? undefined : new Subject<E>();
  const holding = hold === undefined ? undefined : join(hold).subscribe(held as Subject<E>);
  const tapped: TappedNetwork<E> = {
    scheduler: network.scheduler,
    join: nodeId => (nodeId === hold && held !== undefined ? held.asObservable() : join(nodeId)),
    send: message => {
      sent?.(message);
      network.send(message);
    },
    get stats() {
      return network.stats;
    },
    release: () => holding?.unsubscribe(),
  };
  // What a transport for remote agents adds to the seam passes through as it is.
  for (const name of ['members$', 'departures$'] as const) {
    if (network[name] !== undefined) Object.defineProperty(tapped, name, { get: () => network[name], enumerable: true });
  }
  return tapped;
}
