/**
 * The dashboard: header, the two serving paths side by side (stacked on a narrow terminal), the speedup, the
 * other engines with --peers, an error line when there is one, and the footer. State comes from a DashboardController; keys go to it.
 */
import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { Box, Text, useApp, useInput, useStdout, type Key } from 'ink';
import { ONE_MODEL_NOTE } from '../bench/harness.ts';
import type { DashboardController } from './controller.ts';
import type { DashboardState, RunPhase } from './dashboard-state.ts';
import { Footer } from './Footer.tsx';
import { Header } from './Header.tsx';
import { PathPanel } from './PathPanel.tsx';
import { PeersTable } from './PeersTable.tsx';
import { EXIT_INTERRUPTED } from '../exit-codes.ts';

const RUNNING: ReadonlySet<RunPhase> = new Set(['loading', 'compiling', 'warmup', 'timed']);

/** Below this many columns the panels are stacked instead of side by side. */
export const WIDE_COLUMNS = 96;

export type KeyAction =
  | { kind: 'models'; delta: number }
  | { kind: 'batch' }
  | { kind: 'rerun' }
  | { kind: 'quit'; exitCode: number };

/** What a key press does; `=` and `_` are `+` and `-` without shift. */
export function keyAction(input: string, key: Pick<Key, 'ctrl'>): KeyAction | undefined {
  // raw mode delivers Ctrl-C as a key: it quits like q, with the exit status of an interrupted command
  if (key.ctrl) return input === 'c' ? { kind: 'quit', exitCode: EXIT_INTERRUPTED } : undefined;
  switch (input) {
    case '+': case '=': return { kind: 'models', delta: 1 };
    case '-': case '_': return { kind: 'models', delta: -1 };
    case 'b': return { kind: 'batch' };
    case 'r': return { kind: 'rerun' };
    case 'q': return { kind: 'quit', exitCode: 0 };
    default: return undefined;
  }
}

/**
 * The terminal's width, updated when it is resized. A terminal that reflows on resize (tmux, most emulators)
 * rewraps the frame already drawn, and Ink erases only as many lines as that frame had, leaving pieces of it
 * on screen. So when the width changes, a real terminal is cleared first (this listener runs before Ink's,
 * whose redraw then lands on a clean screen) and frames are drawn from the top.
 */
export function useColumns(): number {
  const { stdout } = useStdout();
  const [columns, setColumns] = useState(stdout.columns || 80);
  useEffect(() => {
    let current = stdout.columns || 80;
    const onResize = () => {
      const next = stdout.columns || 80;
      if (next === current) return;
      current = next;
      if (stdout.isTTY) stdout.write('\x1b[2J\x1b[H');
      setColumns(next);
    };
    stdout.prependListener('resize', onResize);
    return () => { stdout.off('resize', onResize); };
  }, [stdout]);
  return columns;
}

function Summary({ state }: { state: DashboardState }) {
  const { speedup, agreement, phase, numModels } = state;
  const final = phase === 'done';
  // at N = 1 the ratio is noise (ONE_MODEL_NOTE), so it is neither green nor red
  const oneModel = numModels === 1;
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Text dimColor>speedup   </Text>
        {speedup === undefined ? <Text dimColor>–</Text> : (
          <Text>
            <Text bold color={oneModel ? undefined : speedup >= 1 ? 'green' : 'red'}>{`${speedup.toFixed(2)}×`}</Text>
            <Text dimColor>{oneModel
              ? ` (${ONE_MODEL_NOTE})`
              : ` single dispatch over sequential (mean latency${final ? '' : ', so far'})`}</Text>
          </Text>
        )}
      </Text>
      {agreement && (
        <Text dimColor wrap="truncate-end">
          {`agreement same predictions on both paths, max |difference| ${agreement.maxAbsDiff === 0 ? '0' : agreement.maxAbsDiff.toExponential(2)}`
            + ` (tolerance ${agreement.tolerance.toExponential()})`}
        </Text>
      )}
    </Box>
  );
}

export function App({ controller }: { controller: DashboardController }) {
  const state = useSyncExternalStore(controller.subscribe, controller.getState);
  const columns = useColumns();
  const { exit } = useApp();
  // set by q / Ctrl-C: one more frame is drawn (it stays on the terminal, so it says "stopped"), then exit.
  // React runs the exiting effect a little later; the ref makes keys pressed meanwhile do nothing.
  const [exitCode, setExitCode] = useState<number | undefined>(undefined);
  const quitting = useRef(false);
  useEffect(() => {
    if (exitCode !== undefined) exit(exitCode);
  }, [exitCode, exit]);

  useInput((input, key) => {
    const action = keyAction(input, key);
    if (!action || quitting.current) return;
    if (action.kind === 'models') controller.changeModels(action.delta);
    else if (action.kind === 'batch') controller.cycleBatchSize();
    else if (action.kind === 'rerun') controller.rerun();
    else {
      // abort now; the caller awaits the run's end (and frees the device) after the app has unmounted
      quitting.current = true;
      void controller.stop();
      setExitCode(action.exitCode);
    }
  });

  const wide = columns >= WIDE_COLUMNS;
  const panelWidth = wide ? Math.floor(columns / 2) : columns;
  // widths come from the flex layout under Ink's root (the terminal's width); `columns` only sizes bars
  return (
    <Box flexDirection="column">
      <Header {...state} />
      <Box flexDirection={wide ? 'row' : 'column'}>
        <PathPanel title="sequential" view={state.paths.sequential} width={panelWidth} grow={wide} color="yellow"
          active={state.activePath === 'sequential'} />
        <PathPanel title="single dispatch" view={state.paths.singleDispatch} width={panelWidth} grow={wide} color="cyan"
          active={state.activePath === 'singleDispatch'} />
      </Box>
      <Summary state={state} />
      {state.peers && <PeersTable peers={state.peers} />}
      {state.error !== undefined && <Text color="red">{`✖ ${state.error}`}</Text>}
      <Footer {...state} phase={exitCode !== undefined && RUNNING.has(state.phase) ? 'stopped' : state.phase} />
    </Box>
  );
}
