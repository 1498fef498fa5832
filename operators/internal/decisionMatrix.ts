/**
 * The protocol decision matrix (DESIGN.md, "adaptive"): the choice made before anything has been
 * measured, and the prior scores `adaptiveSwitch` gives protocols it has no measurements for.
 */

/** A topology the decision matrix can choose. */
export type MatrixProtocol = 'hierarchical' | 'mesh' | 'ring' | 'star';

export type Level = 'low' | 'medium' | 'high';

/** What is known about a coordination before it runs. */
export interface ProtocolContext {
  /** Agents taking part (integer ≥ 0). */
  readonly agentCount: number;
  /** Task complexity. Default `'medium'`. */
  readonly complexity?: Level;
  /** How much the subtasks must talk to each other. Default `'medium'`. */
  readonly coordinationIntensity?: Level;
}

/** The score of a protocol that has no measurements in the window. Higher is better. */
export type PriorScore = (protocol: string) => number;

/** Prior of the matrix's choice: about a healthy measured protocol under `defaultScore`, a bit below. */
export const PRIOR_PREFERRED = 0.5;
/** Prior of every other protocol (and of all, when nothing is known). */
export const PRIOR_OTHER = 0.25;

const LEVELS: readonly string[] = ['low', 'medium', 'high'];

function requireLevel(name: string, value: unknown): Level {
  if (typeof value !== 'string' || !LEVELS.includes(value)) {
    throw new RangeError(`${name} must be one of low, medium, high, got ${String(value)}`);
  }
  return value as Level;
}

/**
 * The decision matrix, first match wins: ≤ 3 agents → hierarchical (too few for peers to pay off);
 * > 10 → hierarchical (a mesh's all-to-all traffic grows as n²); a high-complexity task with high
 * coordination intensity → mesh; low coordination intensity → star; anything else → ring.
 *
 * @example decideProtocol({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' }) // 'mesh'
 */
export function decideProtocol(context: ProtocolContext): MatrixProtocol {
  const { agentCount, complexity = 'medium', coordinationIntensity = 'medium' } = context ?? ({} as ProtocolContext);
  if (typeof agentCount !== 'number' || !Number.isInteger(agentCount) || agentCount < 0) {
    throw new RangeError(`agentCount must be an integer >= 0, got ${String(agentCount)}`);
  }
  requireLevel('complexity', complexity);
  requireLevel('coordinationIntensity', coordinationIntensity);
  if (agentCount <= 3 || agentCount > 10) return 'hierarchical';
  if (complexity === 'high' && coordinationIntensity === 'high') return 'mesh';
  if (coordinationIntensity === 'low') return 'star';
  return 'ring';
}

/**
 * A prior from the decision matrix: the protocol `decideProtocol(context)` picks scores
 * `preferred`, every other protocol `other`. Validated when built.
 *
 * Trade-off: a higher `preferred` makes an unmeasured matrix choice displace a measured protocol
 * sooner (more exploration); with the defaults a measured protocol scoring above
 * `preferred / (1 + switchThreshold)` is never displaced by a guess.
 *
 * @example adaptiveSwitch({ initial: 'ring', candidates, prior: matrixPrior({ agentCount: 6 }) })
 */
export function matrixPrior(
  context: ProtocolContext,
  { preferred = PRIOR_PREFERRED, other = PRIOR_OTHER }: { readonly preferred?: number; readonly other?: number } = {},
): PriorScore {
  const chosen = decideProtocol(context);
  if (typeof preferred !== 'number' || !Number.isFinite(preferred)) {
    throw new RangeError(`preferred must be a finite number, got ${String(preferred)}`);
  }
  if (typeof other !== 'number' || !Number.isFinite(other)) {
    throw new RangeError(`other must be a finite number, got ${String(other)}`);
  }
  return protocol => (protocol === chosen ? preferred : other);
}
