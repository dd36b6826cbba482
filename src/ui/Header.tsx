/** The dashboard's header: what runs where: backend, N, B, timing, the model file and the image. */
import { Box, Text } from 'ink';
import type { DashboardState } from './dashboard-state.ts';
import { plural } from '../format.ts';

export type HeaderProps = Pick<DashboardState,
  'backend' | 'modelPath' | 'imagePath' | 'fileModels' | 'image' | 'notes' | 'numModels' | 'batchSize' | 'warmup' | 'iters' | 'chunks'>;

function Field({ label, children }: { label: string; children: string }) {
  return (
    <Box>
      <Box width={8} flexShrink={0}>
        <Text dimColor>{label}</Text>
      </Box>
      {/* paths can be long: keep both ends, on one line */}
      <Text wrap="truncate-middle">{children}</Text>
    </Box>
  );
}

export function Header(p: HeaderProps) {
  const file = p.fileModels === undefined ? ''
    : `  (holds ${plural(p.fileModels, 'model')}${p.fileModels === 1 && p.numModels > 1 ? `, replicated ×${p.numModels}` : ''})`;
  const image = p.image ? `  (${p.image.width}x${p.image.height}${p.image.inverted ? ', inverted' : ''})` : '';
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Text bold>mnist-gpujs dashboard</Text>
        <Text>{'  backend '}</Text><Text bold color="magenta">{p.backend}</Text>
        <Text>{'  N='}</Text><Text bold>{p.numModels}</Text>
        <Text>{` model${p.numModels === 1 ? '' : 's'}  B=`}</Text><Text bold>{p.batchSize}</Text>
        <Text dimColor>{` image${p.batchSize === 1 ? '' : 's'} per request`}</Text>
      </Text>
      <Field label="model">{p.modelPath + file}</Field>
      <Field label="image">{p.imagePath + image}</Field>
      <Field label="timing">{`${p.warmup} warm-up + ${plural(p.iters, 'timed call')} per path, alternating in ${plural(p.chunks, 'chunk')}`}</Field>
      {p.notes.map((note) => (
        <Text key={note} color="yellow" wrap="truncate-end">{`note: ${note}`}</Text>
      ))}
    </Box>
  );
}
