import { expect } from 'vitest';
import { InputError } from '../src/errors.ts';

/**
 * Asserts that `fn` throws an InputError whose message is one line and contains every string part and
 * matches every pattern (the project's rule for bad input: one clear line naming what is wrong).
 */
export function expectInputError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InputError);
  const msg = (caught as Error).message;
  expect(msg).not.toContain('\n');
  for (const p of parts) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
}
