/**
 * The adaptive protocol as a value: not a layout of its own, but the instruction to start from the
 * decision matrix (≤ 3 agents or > 10 → hierarchical; complex and coordination-heavy → mesh; low
 * coordination → star; else ring) and to switch, measured by `adaptiveSwitch`, handing over
 * in-flight work so that nothing is lost or run twice.
 *
 * @example
 * createCoordinator({ agents, topology: adaptive });
 */
export interface AdaptiveTopology {
  readonly name: 'adaptive';
}

export const adaptive: AdaptiveTopology = Object.freeze({ name: 'adaptive' });
