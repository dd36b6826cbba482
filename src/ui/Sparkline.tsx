/** A one-line chart of recent values (per-chunk mean latencies), scaled to their own min..max. */
import { Text } from 'ink';

const LEVELS = '▁▂▃▄▅▆▇█';

/** The last `width` values as block characters; equal values sit mid-height. */
export function sparkline(values: readonly number[], width: number): string {
  const shown = values.slice(-Math.max(0, Math.floor(width)));
  if (shown.length === 0) return '';
  const lo = Math.min(...shown);
  const hi = Math.max(...shown);
  const top = LEVELS.length - 1;
  return shown.map((v) => LEVELS[hi > lo ? Math.round(((v - lo) / (hi - lo)) * top) : Math.floor(top / 2)]).join('');
}

export interface SparklineProps {
  values: readonly number[];
  width: number;
  color?: string;
  /** shown while there are no values yet */
  placeholder?: string;
}

export function Sparkline({ values, width, color, placeholder = 'no chunk finished yet' }: SparklineProps) {
  if (values.length === 0) return <Text dimColor>{placeholder}</Text>;
  return <Text color={color}>{sparkline(values, width)}</Text>;
}
