/** One labelled progress bar: `warm-up ██████░░░░ 6/10`. */
import { Box, Text } from 'ink';

export interface ProgressBarProps {
  label: string;
  done: number;
  total: number;
  /** characters of the bar itself */
  width: number;
  /** columns reserved for the label, so bars in a column line up */
  labelWidth?: number;
  color?: string;
}

const FILLED = '█';
const EMPTY = '░';

/** The filled and empty parts of a bar `width` characters wide; an empty phase (total 0) reads as complete. */
export function barParts(done: number, total: number, width: number): [filled: string, empty: string] {
  const w = Math.max(0, Math.floor(width));
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.round(fraction * w);
  return [FILLED.repeat(filled), EMPTY.repeat(w - filled)];
}

export function ProgressBar({ label, done, total, width, labelWidth, color = 'cyan' }: ProgressBarProps) {
  const [filled, empty] = barParts(done, total, width);
  const complete = total === 0 || done >= total;
  return (
    <Box>
      <Box width={labelWidth ?? label.length + 1} flexShrink={0}>
        <Text>{label}</Text>
      </Box>
      {/* one line whatever the width: a stale, too-long bar is cut rather than wrapped */}
      <Text wrap="truncate-end">
        <Text color={complete ? 'green' : color} dimColor={total === 0}>{filled}</Text>
        <Text dimColor>{empty}</Text>
        <Text>{` ${total === 0 ? 'none' : `${done}/${total}`}`}</Text>
      </Text>
    </Box>
  );
}
