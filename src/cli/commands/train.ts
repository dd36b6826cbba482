/**
 * `mnist-gpujs train`: the PyTorch example's training run on the GPU.js engine, for one model or K models
 * trained together, stacked (one kernel call per layer for all K). Logs in the example's shape; `--json` prints one JSON line per
 * epoch on stdout (logs then go to stderr). `--save-model` writes the model file and a checkpoint after every
 * epoch, atomically; Ctrl-C stops between batches and keeps the last finished epoch.
 */
import fs from 'node:fs';
import { dirname } from 'node:path';
import { openDevice } from '../device.ts';
import { maxStackedModels } from '../../engine/shapes.ts';
import { ADADELTA_DEFAULTS, type OptimizerConfig } from '../../engine/optimizer.ts';
import { Trainer, type EvalReport } from '../../engine/trainer.ts';
import { loadMnist } from '../../data/mnist.ts';
import { checkpointPathFor, readCheckpoint, writeCheckpoint, type Checkpoint } from '../../io/checkpoint.ts';
import { writeModelFile } from '../../io/model-file.ts';
import { EXIT_INTERRUPTED } from '../../exit-codes.ts';
import { UsageError, type CliIO, type TrainOptions, type Writer } from '../options.ts';
import { ProgressLine, formatDuration } from '../progress.ts';

export type { TrainOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

export async function run(opts: TrainOptions, io: CliIO = processIO): Promise<number> {
  if (opts.saveModel) checkWritable(opts.modelPath);
  const resume = opts.resume ? readCheckpoint(opts.resume) : undefined;
  if (resume) checkResumeSettings(opts, resume);
  const data = loadMnist({ dataDir: opts.dataDir, limit: opts.limit, testLimit: opts.testLimit });
  const optimizer: OptimizerConfig = opts.optimizer === 'adadelta'
    ? { ...ADADELTA_DEFAULTS, weightDecay: opts.weightDecay }
    : { kind: 'sgd', momentum: opts.momentum, weightDecay: opts.weightDecay };
  const device = await openDevice(opts.backend, io);
  const K = opts.numModels;
  const maxModels = maxStackedModels(device);
  if (K > maxModels) {
    device.destroy();
    throw new UsageError(`--num-models ${K}: at most ${maxModels} models train together on ${device.backend} (one stacked kernel holds at most that many)`);
  }
  const trainer = new Trainer(device, {
    numModels: K, seed: opts.seed, batchSize: opts.batchSize, testBatchSize: opts.testBatchSize,
    lr: opts.lr, gamma: opts.gamma, optimizer, dryRun: opts.dryRun,
  }, resume);
  if (opts.batchSize > trainer.net.maxBatch()) {
    device.destroy();
    throw new UsageError(`--batch-size ${opts.batchSize} with ${K} model(s) exceeds the ${trainer.net.maxBatch()} one training pass holds on ${device.backend}`);
  }
  // with --json, stdout carries only the JSON lines
  const log: Writer = opts.json ? io.stderr : io.stdout;
  log.write(`Training ${K} model(s) on ${data.source}: ${data.train.count} training / ${data.test.count} test digits; `
    + `backend ${device.description}; ${opts.optimizer}, lr ${opts.lr}, gamma ${opts.gamma}, batch ${opts.batchSize}`
    + (resume ? `; resuming after epoch ${resume.epochsDone}` : '') + '\n');

  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(EXIT_INTERRUPTED); // a second Ctrl-C does not wait for the batch
    stop = true;
    io.stderr.write('\nmnist-gpujs: interrupted; stopping after this batch (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    if (trainer.epochsDone >= opts.epochs) {
      log.write(`Nothing to do: ${trainer.epochsDone} epoch(s) already done and --epochs is ${opts.epochs}.\n`);
      return 0;
    }
    while (trainer.epochsDone < opts.epochs) {
      const epoch = trainer.epochsDone + 1;
      const lr = trainer.lr;
      const bar = new ProgressLine(io.stderr, `Epoch ${epoch}/${opts.epochs}`, opts.dryRun ? opts.batchSize : data.train.count);
      const lossSum = new Float64Array(K);
      let batches = 0;
      const t0 = performance.now();
      const finished = await trainer.trainEpoch(data.train, (r) => {
        batches++;
        r.loss.forEach((l, i) => { lossSum[i] += l; });
        if (r.batchIndex % opts.logInterval === 0) {
          bar.clear();
          const batch = Math.min(opts.batchSize, r.total);
          log.write(`Train Epoch: ${r.epoch} [${r.batchIndex * batch}/${r.total} (${(100 * r.batchIndex / r.batches).toFixed(0)}%)]\t`
            + `Loss: ${formatLoss(r.loss)}\n`);
        }
        bar.update(r.seen);
      }, () => stop);
      bar.clear();
      if (!finished) {
        log.write(`Interrupted in epoch ${epoch}; ${trainer.epochsDone === 0 ? 'no epoch was finished' : `the last finished epoch is ${trainer.epochsDone}`}`
          + (opts.saveModel && trainer.epochsDone > (resume?.epochsDone ?? 0) ? ` (saved in ${opts.modelPath})` : '') + '.\n');
        return EXIT_INTERRUPTED;
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      const ev = await trainer.evaluate(data.test);
      log.write(formatEval(ev));
      const imagesPerSecond = (opts.dryRun ? Math.min(opts.batchSize, data.train.count) : data.train.count) * K / trainSeconds;
      log.write(`Epoch ${epoch} took ${formatDuration(trainSeconds)} (${imagesPerSecond.toFixed(0)} images/s over ${K} model(s))\n`);
      if (opts.saveModel) {
        // the weights only change between epochs, so these arrays are stable while being encoded
        writeModelFile(opts.modelPath, trainer.net.params, K, { epochs: String(epoch), seed: String(opts.seed) });
        const ckpt = checkpointPathFor(opts.modelPath);
        writeCheckpoint(ckpt, {
          numModels: K, epochsDone: trainer.epochsDone, params: trainer.net.params, optimizerState: trainer.optimizer.state,
          settings: runSettings(opts),
        });
        log.write(`Saved ${opts.modelPath} and checkpoint ${ckpt}\n`);
      }
      if (opts.json) {
        io.stdout.write(JSON.stringify({
          epoch, lr, backend: device.backend, adapter: device.adapterLabel, num_models: K,
          train_loss: Array.from(lossSum, (s) => s / batches),
          test_loss: ev.loss, test_accuracy: ev.correct.map((c) => c / ev.total),
          ensemble_accuracy: ev.ensembleCorrect / ev.total,
          seconds: trainSeconds, images_per_second: imagesPerSecond,
        }) + '\n');
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
    device.destroy();
  }
}

/** The settings that shape a run's trajectory: a resumed run must keep them to continue it exactly. */
function runSettings(opts: TrainOptions): Record<string, string> {
  return {
    seed: String(opts.seed), optimizer: opts.optimizer, lr: String(opts.lr), gamma: String(opts.gamma),
    momentum: String(opts.momentum), weight_decay: String(opts.weightDecay), batch_size: String(opts.batchSize),
    limit: String(opts.limit ?? 'all'), data: opts.dataDir ?? 'bundled',
  };
}

function checkResumeSettings(opts: TrainOptions, resume: Checkpoint): void {
  if (resume.numModels !== opts.numModels) {
    throw new UsageError(`${opts.resume} holds ${resume.numModels} model(s); resume it with --num-models ${resume.numModels}`);
  }
  const now = runSettings(opts);
  const differ = Object.keys(now).filter((k) => resume.settings[k] !== undefined && resume.settings[k] !== now[k]);
  if (differ.length > 0) {
    throw new UsageError(`${opts.resume} was trained with ${differ.map((k) => `${k} ${resume.settings[k]}`).join(', ')}; `
      + `resume with the same settings (now: ${differ.map((k) => `${k} ${now[k]}`).join(', ')})`);
  }
}

function checkWritable(modelPath: string): void {
  const dir = dirname(modelPath);
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UsageError(`--model-path ${modelPath}: directory ${dir} does not exist or is not writable`);
  }
  if (fs.existsSync(modelPath) && fs.statSync(modelPath).isDirectory()) {
    throw new UsageError(`--model-path ${modelPath} is a directory`);
  }
}

function formatLoss(loss: Float32Array): string {
  if (loss.length === 1) return loss[0].toFixed(6);
  const mean = loss.reduce((a, b) => a + b, 0) / loss.length;
  return `${mean.toFixed(6)} (models: ${Array.from(loss, (l) => l.toFixed(4)).join(', ')})`;
}

function formatEval(ev: EvalReport): string {
  const pct = (c: number) => `${(100 * c / ev.total).toFixed(1)}%`;
  const lines = ev.correct.map((c, i) =>
    `Test set${ev.correct.length > 1 ? ` (model ${i})` : ''}: Average loss: ${ev.loss[i].toFixed(4)}, Accuracy: ${c}/${ev.total} (${pct(c)})`);
  if (ev.correct.length > 1) {
    const mean = ev.correct.reduce((a, b) => a + b, 0) / ev.correct.length;
    lines.push(`Ensemble (mean of probabilities): Accuracy: ${ev.ensembleCorrect}/${ev.total} (${pct(ev.ensembleCorrect)}); mean of the models: ${pct(mean)}`);
  }
  return `\n${lines.join('\n')}\n\n`;
}
