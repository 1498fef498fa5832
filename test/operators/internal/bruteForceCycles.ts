/** Every simple cycle of a small graph (edges as "from>to"), each as its members joined by "," from the smallest id. */
export function bruteForceCycles(edges: ReadonlySet<string>): Set<string> {
  const out = new Map<string, string[]>();
  for (const e of edges) {
    const [from, to] = e.split('>') as [string, string];
    out.set(from, [...(out.get(from) ?? []), to]);
  }
  const found = new Set<string>();
  for (const start of out.keys()) {
    // Cycles whose smallest member is `start`: paths through members > start only.
    const walk = (path: string[]): void => {
      for (const next of out.get(path[path.length - 1] as string) ?? []) {
        if (next === start) found.add(path.join(','));
        else if (next > start && !path.includes(next)) walk([...path, next]);
      }
    };
    walk([start]);
  }
  return found;
}
