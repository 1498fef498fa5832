import { spawnSync } from 'node:child_process';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Handler } from './remote.js';

/** A `--handler` module that cannot be used; the message says why, in terms a user can act on. */
export class HandlerLoadError extends Error {}

const TYPESCRIPT = new Set(['.ts', '.mts', '.cts', '.tsx']);

/**
 * Imports an agent's handler module and finds its `handle(subtask, context)` (named, default, or a
 * default object's). A syntax error is shown with its file:line:col and the line; a TypeScript file
 * that this Node cannot load says how to run it.
 */
export async function loadHandler(path: string): Promise<Handler> {
  const file = resolve(path);
  let module: { default?: unknown; handle?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as typeof module;
  } catch (err) {
    throw new HandlerLoadError(`--handler ${path}: ${loadFailure(file, err)}`);
  }
  const candidate = typeof module.default === 'function' ? module.default : typeof module.handle === 'function' ? module.handle : (module.default as { handle?: unknown } | undefined)?.handle;
  if (typeof candidate !== 'function') throw new HandlerLoadError(`--handler ${path}: export a function \`handle(subtask, context)\` (named or default)`);
  return candidate as Handler;
}

function loadFailure(file: string, err: unknown): string {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && TYPESCRIPT.has(extname(file))) {
    // Node 20 has no TypeScript support of its own; later Nodes (and a loader such as tsx) import it.
    return (
      `Node ${process.version} cannot load TypeScript by itself: compile the handler to JavaScript (e.g. with tsc) and pass the .js file, ` +
      'or run the agent under a TypeScript loader: node --import tsx node_modules/.bin/rxswarm agent …'
    );
  }
  // A dynamic import's SyntaxError carries no position; `node --check` on the file has it.
  if (err instanceof SyntaxError) return syntaxErrorAt(file) ?? `a module it imports does not parse: SyntaxError: ${err.message}`;
  return `cannot load: ${String(message ?? err)}`;
}

/**
 * Where `node --check` finds a syntax error in `file`, as `SyntaxError: … at FILE:LINE:COL` with the
 * line and a caret under the column; undefined when the file itself parses (or the check cannot run).
 */
export function syntaxErrorAt(file: string): string | undefined {
  const out = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  if (out.status === 0 || out.error !== undefined) return undefined;
  // node prints `FILE:LINE`, the source line, a caret line under the column, a blank line, `SyntaxError: …`.
  const [first = '', source = '', marks = ''] = out.stderr.split('\n');
  const where = /^(.*):(\d+)$/.exec(first);
  const column = marks.indexOf('^');
  const reason = out.stderr.split('\n').find(line => line.startsWith('SyntaxError: '));
  if (where === null || column < 0 || reason === undefined) return undefined;
  return `${reason} at ${where[1]}:${where[2]}:${column + 1}\n    ${source}\n    ${' '.repeat(column)}^`;
}
