/** The dashboard's compact table of the other engines (`--peers`), filled in once our paths have finished. */
import { Box, Text } from 'ink';
import type { DashboardState } from './dashboard-state.ts';
import { ms, rate } from '../format.ts';
import { ENGINE_LABEL } from '../bench/peers.ts';

export function PeersTable({ peers }: { peers: NonNullable<DashboardState['peers']> }) {
  if (peers.results.length === 0) {
    return <Text dimColor>{peers.running ? 'peers   timing the other engines on the same models…' : 'peers   after our paths finish'}</Text>;
  }
  return (
    <Box flexDirection="column">
      {peers.results.map((p) => (p.error !== undefined ? (
        <Text key={p.engine} wrap="truncate-end" color="red">{`${ENGINE_LABEL[p.engine].padEnd(12)}failed: ${p.error}`}</Text>
      ) : (
        <Text key={p.engine} wrap="truncate-end">
          <Text dimColor>{`${ENGINE_LABEL[p.engine].padEnd(12)}`}</Text>
          {`sequential ${ms(p.sequential.meanMs)} ms (${rate(p.sequential.modelEvaluationsPerSecond)}/s)   `
            + `stacked ${ms(p.stacked.meanMs)} ms (${rate(p.stacked.modelEvaluationsPerSecond)}/s)`}
          <Text dimColor>{`   ${p.version}, ${p.backend}, ${p.threads} thread${p.threads === 1 ? '' : 's'}; max |diff| ${p.agreement.maxAbsDiff.toExponential(1)}`}</Text>
        </Text>
      )))}
    </Box>
  );
}
