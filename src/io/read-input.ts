/** Reading a file the user named: one clear InputError line instead of a raw fs error. */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.ts';

/** The whole file in one read; `what` names the expected kind in messages (e.g. "a PNG file"). */
export function readInputFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found'
      : code === 'EISDIR' ? `is a directory, expected ${what}`
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
      : `cannot read ${what} (${(err instanceof Error ? err.message : String(err)).split('\n')[0]})`;
    throw new InputError(`${path}: ${why}`);
  }
}
