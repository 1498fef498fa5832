// After `tsc`: fast-check is an optional peer dependency, yet the declarations of `faultPlan` import
// its `Arbitrary` type. A project without fast-check that checks libraries' declarations
// (`skipLibCheck: false`) would fail on that import; marked `@ts-ignore`, the type reads as `any`
// there instead, and as fast-check's own type wherever fast-check is installed.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist', import.meta.url));
const peerImport = /^import type [^\n]* from 'fast-check';$/gm;
let marked = 0;
for (const name of readdirSync(dist, { recursive: true })) {
  if (!name.endsWith('.d.ts')) continue;
  const file = join(dist, name);
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(peerImport, line => {
    marked++;
    return `// @ts-ignore fast-check is an optional peer dependency (needed by faultPlan only)\n${line}`;
  });
  if (fixed !== text) writeFileSync(file, fixed);
}
// The declarations of faultPlan must have been found: a silent no-op would ship the failing import.
if (marked === 0) throw new Error(`optionalPeerTypes: no declaration in ${dist} imports fast-check's types; update this script`);
