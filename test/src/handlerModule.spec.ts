import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HandlerLoadError, loadHandler, syntaxErrorAt } from '../../src/handlerModule.js';

describe('loadHandler', () => {
  let dir: string;
  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'rxswarm-handler-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['named', 'export function handle(s) { return s.id; }'],
    ['default function', 'export default function (s) { return s.id; }'],
    ['default object', 'export default { handle: s => s.id };'],
  ])('finds handle as a %s export', async (name, text) => {
    const handle = await loadHandler(write(`${name.replace(' ', '-')}.mjs`, text));
    expect(handle({ id: 's-1' } as never, {} as never)).toBe('s-1');
  });

  it('refuses a module without handle', async () => {
    await expect(loadHandler(write('none.mjs', 'export const x = 1;'))).rejects.toThrow(/export a function `handle\(subtask, context\)`/);
  });

  it('names a missing file', async () => {
    await expect(loadHandler(join(dir, 'absent.mjs'))).rejects.toThrow(HandlerLoadError);
  });

  it('places a syntax error at file:line:col, with the line and a caret', () => {
    const file = write('bad.mjs', 'export function handle(s) {\n  return s.payload +;\n}\n');
    expect(syntaxErrorAt(file)).toBe(`SyntaxError: Unexpected token ';' at ${file}:2:21\n      return s.payload +;\n                        ^`);
  });

  it('finds nothing to place in a file that parses', () => {
    expect(syntaxErrorAt(write('good.mjs', 'export const x = 1;\n'))).toBeUndefined();
  });
});
