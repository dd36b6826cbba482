/**
 * The command line of a bench script that takes `node:util` parseArgs options: `--help` (`-h`) prints its usage,
 * and a bad flag or value is one line on stderr and exit 2, never a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BACKENDS, type Backend } from '../src/engine/device-node.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
const HELP = { help: { type: 'boolean', short: 'h', default: false } } as const;

export function scriptArgs<const O extends Options>(script: string, usage: string, options: O) {
  // typed on the binding, so that callers' control flow knows it does not return
  const fail: (message: string) => never = (message) => {
    process.stderr.write(`${script}: ${message}\n`);
    process.exit(2);
  };
  const parse = () => parseArgs<{ options: O & typeof HELP }>({ options: { ...options, ...HELP } });
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse().values;
  } catch (e) {
    return fail(`${(e as Error).message}\n${usage}`);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  /** `--flag`'s value as an integer ≥ min. */
  const integer = (flag: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) fail(`--${flag} must be an integer ≥ ${min}, got '${text}'`);
    return n;
  };
  /** `--backend`'s value, one of the backends a Node device opens. */
  const backend = (text: string): Backend => {
    if (!(BACKENDS as readonly string[]).includes(text)) fail(`--backend must be one of ${BACKENDS.join(', ')}`);
    return text as Backend;
  };
  return { values, fail, integer, backend };
}
