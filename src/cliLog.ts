/** How much `serve` and `agent` say: each level includes the ones after it. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'text' | 'json';

export interface CliLogOptions {
  readonly format?: LogFormat;
  /** Lines below this level are not written. Default `info`. */
  readonly level?: LogLevel;
  /** Wall-clock ms (the CLI's edge). Default `Date.now`. */
  readonly now?: () => number;
  /** Where a line goes. Default: errors to stderr, the rest to stdout. */
  readonly write?: (line: string, level: LogLevel) => void;
}

export interface CliLog {
  readonly level: LogLevel;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

// Errors to stderr; everything else, warnings included, is the command's running account on stdout.
const defaultWrite = (line: string, level: LogLevel): void => {
  (level === 'error' ? process.stderr : process.stdout).write(`${line}\n`);
};

/**
 * The lines of `serve` and `agent`: each stamped with its time (ISO 8601, UTC, ms) and level.
 * `text`: `2026-01-05T10:00:00.000Z info  agent a-1 connected …`; `json`: one object a line,
 * `{"time":"…","level":"info","msg":"…", …fields}` — for a log shipper.
 *
 * @example const log = cliLog({ format: 'json', level: 'warn' }); log.info('hidden'); log.warn('shown', { agent: 'a-1' });
 */
export function cliLog({ format = 'text', level = 'info', now = Date.now, write = defaultWrite }: CliLogOptions = {}): CliLog {
  if (format !== 'text' && format !== 'json') throw new RangeError(`format must be text or json, got ${String(format)}`);
  const threshold = LOG_LEVELS.indexOf(level);
  if (threshold === -1) throw new RangeError(`level must be one of ${LOG_LEVELS.join(', ')}, got ${String(level)}`);
  const line =
    (at: LogLevel) =>
    (message: string, fields: Record<string, unknown> = {}): void => {
      if (LOG_LEVELS.indexOf(at) < threshold) return;
      const time = new Date(now()).toISOString();
      write(format === 'json' ? JSON.stringify({ time, level: at, msg: message, ...fields }) : `${time} ${at.padEnd(5)} ${message}`, at);
    };
  return { level, debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** Runs `work` after `ms` on an unreferenced timer: a summary of hidden lines keeps no process alive. */
export function unrefTimer(work: () => void, ms: number): void {
  setTimeout(work, ms).unref();
}
