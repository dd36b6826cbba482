/**
 * The real CLI in a real terminal: `mnist-gpujs dashboard` (and `bench`, which opens the dashboard on a terminal)
 * run inside a detached tmux session of a fixed size, one tmux server (own socket) per test. The test reads the screen with `capture-pane`, waits until
 * both panels' timed bars are complete, presses keys with `send-keys`, and reads the exit status that the shell
 * prints after the app ends (`; echo EXIT=$?`).
 *
 * The commands run from a scratch directory, not the repository: that is how `npx mnist-gpujs` runs in a user's
 * project, and it is where loading the TypeScript sources depends on nothing the working directory happens to hold.
 *
 * Needs tmux (Debian: `apt-get install -y --no-install-recommends tmux`). Without it the suite is skipped with a
 * note, except under CI (CI set), where it fails: CI installs tmux, so a missing one is a broken setup.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initParams } from '../src/engine/init.ts';
import { writeModelFile } from '../src/io/model-file.ts';

const run = promisify(execFile);

const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));
const COLUMNS = 120; // wide layout: the two panels side by side (WIDE_COLUMNS is 96)
const ROWS = 40;
const WARMUP = 2;
const ITERS = 20;
/** How long one run (kernel compilation on cpu included) may take before the test gives up; a quiet machine needs ~10 s. */
const RUN_DEADLINE_MS = 40_000;
/** How long the app may take to exit after `q`. */
const EXIT_DEADLINE_MS = 10_000;
const POLL_MS = 250;
/** Safety net: if this process dies without killing the tmux server, the app still ends (exit 124) after this long. */
const APP_TIMEOUT_S = 120;

function tmuxVersion(): string | undefined {
  try {
    return execFileSync('tmux', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

const TMUX = tmuxVersion();
const IN_CI = Boolean(process.env.CI);
const SKIP_REASON = TMUX === undefined && !IN_CI
  ? 'tmux is not on PATH (apt-get install -y --no-install-recommends tmux); the real-terminal tests are skipped'
  : undefined;
if (SKIP_REASON !== undefined) console.warn(`test/dashboard-tty.test.ts: ${SKIP_REASON}`);

/** A word for `sh -c`: single-quoted. */
const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One tmux server (its own socket) holding one session that runs one shell command. */
class Terminal {
  private started = false;

  /** `socket`: a path of its own (tmux -S), in the scratch directory, so it goes away with it. */
  constructor(private readonly socket: string) {}

  private tmux(...args: string[]): Promise<{ stdout: string }> {
    // -f /dev/null: no user or system configuration, so the size and the keys are ours
    return run('tmux', ['-S', this.socket, '-f', '/dev/null', ...args], { encoding: 'utf8', timeout: 10_000 });
  }

  async start(command: string, cwd: string): Promise<void> {
    this.started = true;
    await this.tmux('new-session', '-d', '-s', 'main', '-x', String(COLUMNS), '-y', String(ROWS), '-c', cwd, command);
  }

  /** The visible screen as plain text (no colours), lines right-trimmed. */
  async screen(): Promise<string> {
    const { stdout } = await this.tmux('capture-pane', '-p', '-t', 'main');
    return stdout.split('\n').map((l) => l.trimEnd()).join('\n').trimEnd();
  }

  /** Types `text` literally (no key-name lookup). */
  async type(text: string): Promise<void> {
    await this.tmux('send-keys', '-t', 'main', '-l', text);
  }

  /**
   * Polls the screen until `ready` holds and returns it. Fails at once, with the screen, when the app has
   * ended early (EXIT= shown while waiting for something else), or after `deadlineMs`.
   */
  async waitFor(what: string, ready: (screen: string) => boolean, deadlineMs = RUN_DEADLINE_MS): Promise<string> {
    const until = Date.now() + deadlineMs;
    let last = '';
    for (;;) {
      last = await this.screen();
      if (ready(last)) return last;
      if (exitStatus(last) !== undefined) {
        throw new Error(`the app ended while waiting for ${what}; screen:\n${last}`);
      }
      if (Date.now() > until) throw new Error(`no ${what} within ${deadlineMs} ms; screen:\n${last}`);
      await sleep(POLL_MS);
    }
  }

  /** Kills the server and everything running in it (the app gets SIGHUP). Safe to call twice. */
  async kill(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.tmux('kill-server').catch(() => {});
  }
}

/** The exit status the shell printed after the app, or undefined while it runs. */
function exitStatus(screen: string): number | undefined {
  const m = /^EXIT=(\d+)$/m.exec(screen);
  return m ? Number(m[1]) : undefined;
}

/** Both panels' timed bars at `ITERS/ITERS` and the footer's ✔: the run has finished. */
function runDone(screen: string): boolean {
  const timed = screen.match(new RegExp(`timed +█+ ${ITERS}/${ITERS}\\b`, 'g')) ?? [];
  const warm = screen.match(new RegExp(`warm-up +█+ ${WARMUP}/${WARMUP}\\b`, 'g')) ?? [];
  return timed.length === 2 && warm.length === 2 && /^✔ done in \d+\.\d s$/m.test(screen);
}

/** The header's N (`... backend cpu  N=3 models  B=1 ...`). */
function headerN(screen: string): number | undefined {
  const m = /^mnist-gpujs dashboard +backend \S+ +N=(\d+) models?\b/m.exec(screen);
  return m ? Number(m[1]) : undefined;
}

describe.skipIf(SKIP_REASON !== undefined)(SKIP_REASON ?? `the CLI in a real terminal (${TMUX ?? 'tmux missing'})`, {
  timeout: 2 * RUN_DEADLINE_MS + EXIT_DEADLINE_MS + 10_000,
}, () => {
  let dir = '';
  let modelPath = '';
  const terminals: Terminal[] = [];
  let launched = 0;

  beforeAll(() => {
    if (TMUX === undefined) {
      throw new Error('tmux is not on PATH and CI is set: .ci/run must install it (apt-get install -y --no-install-recommends tmux)');
    }
    dir = mkdtempSync(join(tmpdir(), 'mnist-gpujs-tty-'));
    modelPath = join(dir, 'model.safetensors');
    writeModelFile(modelPath, initParams(7), 1);
  });

  afterEach(async () => {
    await Promise.all(terminals.splice(0).map((t) => t.kill()));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `mnist-gpujs <args>` in a fresh terminal, in the scratch directory. */
  async function launch(args: string[]): Promise<Terminal> {
    const t = new Terminal(join(dir, `tmux-${++launched}.sock`));
    terminals.push(t);
    const app = ['timeout', '--foreground', String(APP_TIMEOUT_S), process.execPath, BIN, ...args].map(sh).join(' ');
    await t.start(`${app}; echo EXIT=$?; sleep 30`, dir);
    return t;
  }

  const runArgs = () => ['--model-path', modelPath, '--warmup', String(WARMUP), '--iters', String(ITERS), '--backend', 'cpu'];

  it('dashboard: both paths run to completion, + adds a model and runs again, q exits 0', async () => {
    const t = await launch(['dashboard', ...runArgs()]);

    const first = await t.waitFor('completed run with N=2', (s) => runDone(s) && headerN(s) === 2);
    expect(first).toMatch(/^│ sequential +2 plan runs per request[^│]* +││ single dispatch +1 plan run per request[^│]* +│$/m);
    expect(first).toContain('per request · stepwise'); // how the cpu backend runs a plan
    expect(first).toContain(`(holds 1 model, replicated ×2)`);
    expect(first).toMatch(/^speedup +\d+\.\d\d× single dispatch over sequential \(mean latency\)$/m);
    expect(first).toMatch(/^agreement same predictions on both paths/m);
    expect(first).toContain('models (N=2)');
    expect(first).not.toMatch(/ERROR|✖/);

    await t.type('+');
    const second = await t.waitFor('completed run with N=3 after +', (s) => runDone(s) && headerN(s) === 3);
    expect(second).toMatch(/^│ sequential +3 plan runs per request[^│]* +│/m);
    expect(second).toContain(`(holds 1 model, replicated ×3)`);
    expect(second).toContain('models (N=3)');
    expect(second).not.toMatch(/ERROR|✖/);

    await t.type('q');
    const last = await t.waitFor('EXIT= after q', (s) => exitStatus(s) !== undefined, EXIT_DEADLINE_MS);
    expect(exitStatus(last), last).toBe(0);
    // the last frame stays on the screen above the shell's line
    expect(last).toMatch(/^✔ done in \d+\.\d s$/m);
  });

  it('bench without --no-ui opens the dashboard on a terminal; q exits 0', async () => {
    const t = await launch(['bench', ...runArgs()]);

    const done = await t.waitFor('completed dashboard run', (s) => runDone(s) && headerN(s) === 2);
    // the dashboard, not bench's plain report
    expect(done).not.toContain('Avg time taken');
    expect(done).not.toMatch(/ERROR|✖/);

    await t.type('q');
    const last = await t.waitFor('EXIT= after q', (s) => exitStatus(s) !== undefined, EXIT_DEADLINE_MS);
    expect(exitStatus(last), last).toBe(0);
  });
});
