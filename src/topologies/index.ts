/**
 * The topologies the engine runs, by name, and the decision matrix's first choice.
 */
import { decideProtocol, type ProtocolContext } from '../../operators/adaptiveSwitch.js';
import { TOPOLOGY_NAMES, type Topology, type TopologyName } from '../topology.js';
import { hierarchical } from './hierarchical.js';
import { mesh } from './mesh.js';
import { ring } from './ring.js';
import { star } from './star.js';

export { adaptive, type AdaptiveTopology } from './adaptive.js';
export { hierarchical, type HierarchicalLayout, type HierarchicalRole } from './hierarchical.js';
export { mesh, type MeshLayout } from './mesh.js';
export { ring, type RingLayout } from './ring.js';
export { star, type StarLayout } from './star.js';
export { COORDINATION_WEIGHTS, SUCCESS_RATE_WEIGHT, compareLeadership, coordinationScore, isCoordinationCapable } from './common.js';

/** Every topology with a layout, by name. */
export const topologies: Readonly<Record<TopologyName, Topology>> = Object.freeze({ hierarchical, mesh, ring, star });

/**
 * The topology called `name`. RangeError for anything else, `adaptive` included: adaptive is not a
 * layout but a choice between these (`chooseInitial`, then `adaptiveSwitch`).
 */
export function topologyFor(name: TopologyName): Topology {
  if (typeof name !== 'string' || !(TOPOLOGY_NAMES as readonly string[]).includes(name)) {
    const hint = (name as string) === 'adaptive' ? ' (adaptive is not a layout: start from chooseInitial and switch with adaptiveSwitch)' : '';
    throw new RangeError(`topology must be one of ${TOPOLOGY_NAMES.join(', ')}, got ${JSON.stringify(name)}${hint}`);
  }
  return topologies[name];
}

/**
 * The topology to start with before anything is measured: the decision matrix (`decideProtocol`):
 * ≤ 3 or > 10 agents → hierarchical; complex and coordination-heavy → mesh; light coordination →
 * star; else ring. RangeError on a bad context, naming the field.
 *
 * @example chooseInitial({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' }) // 'mesh'
 */
export function chooseInitial(context: ProtocolContext): TopologyName {
  return decideProtocol(context);
}
