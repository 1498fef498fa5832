import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';

/** A config file that cannot be used; the message names the file and what is wrong with it. */
export class ConfigError extends Error {}

/** The environment variable of a long flag: `--heartbeat-ms` → `RXSWARM_HEARTBEAT_MS`. */
export function envName(flag: string): string {
  return `RXSWARM_${flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;
}

/**
 * Adds `options` to `command` so that each can also come from an environment variable
 * (`RXSWARM_<FLAG>`, as `envName`, unless the option names its own) and from a JSON config file given
 * by `--config FILE` (or `RXSWARM_CONFIG`) whose keys are the long flags in camelCase (`heartbeatMs`
 * for `--heartbeat-ms`). Precedence: flag, then environment, then config file, then default. A
 * config file's values go through the same checks as the flags'; an unknown key, a value of the
 * wrong type or one out of range is a `ConfigError` naming the file and the key. (commander reads
 * an option's variable only if it is set before the option is added: hence the options are given here.)
 */
export function configurable(command: Command, options: readonly Option[]): Command {
  for (const option of options) {
    if (option.long !== undefined && option.envVar === undefined) option.env(envName(option.long));
    command.addOption(option);
  }
  command.addOption(new Option('--config <file>', 'options from a JSON file: keys are the long flags in camelCase, e.g. {"heartbeatMs": 500}; flags and RXSWARM_* variables take precedence').env(envName('--config')));
  return command.hook('preAction', applyConfig);
}

function applyConfig(command: Command): void {
  const file = command.getOptionValue('config') as string | undefined;
  if (file === undefined) return;
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`--config ${file}: ${(err as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(`--config ${file}: must be a JSON object of options, e.g. {"port": 7070}`);
  }
  const options = new Map(command.options.filter(o => o.long !== undefined && o.attributeName() !== 'config').map(o => [o.attributeName(), o]));
  // Check every key first: a bad file is refused whole, even where a flag would have overridden it.
  const values = Object.entries(config).map(([key, value]): [string, unknown] => {
    const option = options.get(key);
    if (option === undefined) throw new ConfigError(`--config ${file}: unknown key ${JSON.stringify(key)} (the options of ${command.name()} are ${[...options.keys()].join(', ')})`);
    return [key, configValue(option, value, `--config ${file}: ${key}`)];
  });
  for (const [key, value] of values) {
    const source = command.getOptionValueSource(key);
    if (source === undefined || source === 'default') command.setOptionValueWithSource(key, value, 'config');
  }
}

/** A config file's value for `option`, checked as the flag's would be. */
function configValue(option: Option, value: unknown, where: string): unknown {
  if (!option.required && !option.optional) {
    if (typeof value !== 'boolean') throw new ConfigError(`${where}: must be true or false, got ${JSON.stringify(value)}`);
    return option.negate ? !value : value;
  }
  // Lists may be JSON arrays; numbers may be JSON numbers: both read as the flag's text would.
  const text = Array.isArray(value) && value.every(v => typeof v === 'string') ? value.join(',') : typeof value === 'number' || typeof value === 'string' ? String(value) : undefined;
  if (text === undefined) throw new ConfigError(`${where}: must be a string${option.parseArg ? ', a number or a list of strings' : ''}, got ${JSON.stringify(value)}`);
  if (option.parseArg === undefined) return text;
  try {
    return option.parseArg(text, undefined);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new ConfigError(`${where}: ${JSON.stringify(value)} is invalid: ${err.message}`);
    throw err;
  }
}
