/**
 * One serving path's panel: warm-up and timed progress, latency (mean, p50, p95), throughput, the history of
 * per-chunk means and each model's prediction for the image.
 */
import type { ReactNode } from 'react';
import { Box, Text } from 'ink';
import type { PathView } from './dashboard-state.ts';
import { ms, plural, rate } from '../format.ts';
import { ProgressBar } from './ProgressBar.tsx';
import { Sparkline } from './Sparkline.tsx';

export interface PathPanelProps {
  title: string;
  view: PathView;
  /**
   * columns the panel is expected to get, border included; sizes the bar and the history. The panel itself
   * is sized by the parent's flex layout, so a frame drawn with a stale value (Ink redraws on resize before
   * React has the new width) stays inside the terminal.
   */
  width: number;
  /** share the row equally with its sibling (side-by-side layout) */
  grow?: boolean;
  color: string;
  /** the harness is running this path now */
  active: boolean;
}

const LABEL = 10;
/** border and padding on each side */
const FRAME = 4;
/** room after the bar for ` 1000/1000` */
const COUNT = 11;
/** predictions listed digit by digit up to this many models, then as counts */
const LIST_MAX = 32;

/** `7 7 1` for a few models; `7×60 1×4` (most frequent first) for many. */
export function formatPredictions(predictions: readonly number[]): string {
  if (predictions.length <= LIST_MAX) return predictions.join(' ');
  const counts = new Map<number, number>();
  for (const d of predictions) counts.set(d, (counts.get(d) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([d, n]) => `${d}×${n}`).join(' ');
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Box>
      <Box width={LABEL} flexShrink={0}>
        <Text dimColor>{label}</Text>
      </Box>
      <Box flexGrow={1}>{children}</Box>
    </Box>
  );
}

export function PathPanel({ title, view, width, color, active, grow = false }: PathPanelProps) {
  const inner = Math.max(1, width - FRAME);
  const bar = Math.max(4, inner - LABEL - COUNT);
  const s = view.stats;
  const planRuns = view.planRunsPerRequest;
  const hist = view.history;
  const shown = hist.slice(-Math.max(1, inner - LABEL - 20));
  return (
    <Box flexDirection="column" flexGrow={grow ? 1 : 0} flexBasis={grow ? 0 : 'auto'} minWidth={0}
      borderStyle="round" borderColor={active ? color : 'gray'} paddingX={1}>
      <Box>
        <Text bold color={color}>{title}</Text>
        {planRuns !== undefined && (
          <Text dimColor wrap="truncate-end">
            {`  ${plural(planRuns, 'plan run')} per request${view.executorKind ? ` · ${view.executorKind}` : ''}`}
          </Text>
        )}
      </Box>
      <ProgressBar label="warm-up" labelWidth={LABEL} done={view.warmup.done} total={view.warmup.total} width={bar} color={color} />
      <ProgressBar label="timed" labelWidth={LABEL} done={view.timed.done} total={view.timed.total} width={bar} color={color} />
      <Row label="latency">
        {s ? (
          <Text wrap="truncate-end">
            <Text bold>{ms(s.meanMs)} ms</Text> mean  p50 {ms(s.p50Ms)}  p95 {ms(s.p95Ms)}
          </Text>
        ) : <Text dimColor>–</Text>}
      </Row>
      <Row label="rate">
        {s ? (
          <Text wrap="truncate-end">{rate(s.requestsPerSecond)} req/s  {rate(s.modelEvaluationsPerSecond)} model evals/s</Text>
        ) : <Text dimColor>–</Text>}
      </Row>
      <Row label="history">
        <Box>
          <Sparkline values={shown} width={shown.length} color={color} />
          {shown.length > 0 && (
            <Text dimColor wrap="truncate-end">{` ${ms(Math.min(...shown))}–${ms(Math.max(...shown))} ms`}</Text>
          )}
        </Box>
      </Row>
      <Row label="digits">
        {view.predictions ? <Text>{formatPredictions(view.predictions)}</Text> : <Text dimColor>–</Text>}
      </Row>
    </Box>
  );
}
