/**
 * Crash-safe file replacement: the bytes go to a uniquely named temporary file next to the target,
 * are flushed to disk, and the temporary file is then renamed over the target. A rename within one
 * directory is atomic, so readers see either the old file or the complete new one, never a torn write.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { InputError } from '../errors.ts';

export function writeFileAtomic(target: string, bytes: Uint8Array): void {
  const dir = path.dirname(target);
  // Same directory as the target (rename across file systems is not atomic); hidden; unique per process and call.
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx'); // 'wx': never clobber a file that happens to have this name
    let written = 0;
    while (written < bytes.byteLength) {
      written += fs.writeSync(fd, bytes, written, bytes.byteLength - written);
    }
    fs.fsyncSync(fd); // the data must be on disk before the rename makes it visible
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw new InputError(`cannot write ${target}: ${describeFsError(err, dir)}`);
  }
  syncDirectory(dir);
}

/** Persist the directory entry created by the rename. Best effort: not every platform allows it. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // e.g. Windows cannot open directories; the file itself is already safely written
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function describeFsError(err: unknown, dir: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `directory ${dir} does not exist`;
    case 'ENOTDIR':
      return `${dir} is not a directory`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied in ${dir}`;
    case 'EROFS':
      return 'read-only file system';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    default: {
      const msg = err instanceof Error ? err.message : String(err);
      return msg.split('\n')[0]!;
    }
  }
}
