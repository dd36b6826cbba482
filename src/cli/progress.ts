/**
 * A one-line progress bar for long work on a terminal (stderr): bar, count, rate and ETA, redrawn in place.
 * On a non-TTY stream it prints nothing, so CI logs and pipes stay clean.
 */
import type { Writer } from './options.ts';

export class ProgressLine {
  private readonly out: Writer;
  private readonly enabled: boolean;
  private readonly label: string;
  private readonly total: number;
  private readonly unit: string;
  private readonly started = performance.now();
  private lastDraw = 0;
  private shown = false;

  constructor(out: Writer, label: string, total: number, unit = 'img') {
    this.out = out;
    this.enabled = out.isTTY === true;
    this.label = label;
    this.total = total;
    this.unit = unit;
  }

  update(done: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (done < this.total && now - this.lastDraw < 100) return; // at most 10 redraws a second
    this.lastDraw = now;
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60));
    const filled = Math.round((width * done) / this.total);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    this.out.write(`\r\x1b[2K${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.total}`
      + `  ${rate.toFixed(1)} ${this.unit}/s  ETA ${formatDuration(eta)}`);
    this.shown = true;
  }

  /** Clears the bar so a log line can be printed; the next update redraws it. */
  clear(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}
