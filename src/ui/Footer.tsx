/** The dashboard's footer: what the run is doing, and the keys. */
import { Box, Text } from 'ink';
import { nextBatchSize, type DashboardState, type RunPhase } from './dashboard-state.ts';
import { PATH_LABEL } from '../bench/harness.ts';
import { seconds } from '../format.ts';

export type FooterProps = Pick<DashboardState, 'phase' | 'activePath' | 'numModels' | 'batchSize' | 'elapsedMs'>;

export function statusText(p: FooterProps): string {
  const path = p.activePath ? PATH_LABEL[p.activePath] : '';
  const texts: Record<RunPhase, string> = {
    loading: 'loading the model file and image…',
    compiling: 'first request on both paths: compiling kernels, checking that the outputs agree…',
    warmup: `warming up ${path}…`,
    timed: `timing both paths, alternating (${path} now)… ${seconds(p.elapsedMs)}`,
    done: `done in ${seconds(p.elapsedMs)}`,
    stopped: 'stopped',
    error: 'the run failed',
  };
  return texts[p.phase];
}

const PHASE_COLOR: Record<RunPhase, string> = {
  loading: 'yellow', compiling: 'yellow', warmup: 'yellow', timed: 'yellow', done: 'green', stopped: 'gray', error: 'red',
};

function Key({ k, children }: { k: string; children: string }) {
  return (
    <Text>
      <Text bold inverse>{` ${k} `}</Text>
      <Text>{` ${children}   `}</Text>
    </Text>
  );
}

export function Footer(p: FooterProps) {
  const running = p.phase === 'loading' || p.phase === 'compiling' || p.phase === 'warmup' || p.phase === 'timed';
  return (
    <Box flexDirection="column">
      <Text color={PHASE_COLOR[p.phase]} wrap="truncate-end">{`${running ? '●' : p.phase === 'done' ? '✔' : '■'} ${statusText(p)}`}</Text>
      <Box flexWrap="wrap">
        <Key k="+/-">{`models (N=${p.numModels})`}</Key>
        <Key k="b">{`batch size ${p.batchSize}→${nextBatchSize(p.batchSize)}`}</Key>
        <Key k="r">rerun</Key>
        <Key k="q">quit</Key>
      </Box>
    </Box>
  );
}
