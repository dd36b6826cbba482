/**
 * An error caused by what the user gave us (a corrupt file, a wrong shape, a bad flag value),
 * as opposed to a bug. The CLI prints its message as one line on stderr, without a stack trace,
 * and exits non-zero. Messages name the file or tensor at fault.
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
