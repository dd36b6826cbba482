/**
 * The server's Prometheus metrics, on a registry of its own (several servers in one process, as in tests, do not
 * share counters). Latency buckets start at 0.5 ms: one forward of this CNN takes a few milliseconds, so
 * prom-client's default buckets (from 5 ms) would put every request in one or two of them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RejectReason } from './batcher.ts';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export interface ServerInfo {
  backend: string;
  adapter: string;
  executorKind: string;
  numModels: number;
  path: string;
  /** plan runs one batch takes: 1 in single dispatch, N sequentially */
  planRunsPerBatch: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'mnist_gpujs_requests_total', help: 'HTTP requests answered, by endpoint, model and status code',
    labelNames: ['endpoint', 'model', 'status'] as const, registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'mnist_gpujs_request_duration_seconds',
    help: 'Where a prediction request\'s time went: waiting in the queue, decoding its input, the plan run that answered it',
    labelNames: ['phase'] as const, buckets: LATENCY_BUCKETS_S, registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'mnist_gpujs_batch_images', help: 'Images in each plan run, before padding to a bucket',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [this.registry],
  });
  readonly planRuns = new Counter({
    name: 'mnist_gpujs_plan_runs_total', help: 'Plan runs on the engine (a batch is one in single dispatch, N sequentially)',
    registers: [this.registry],
  });
  readonly rejections = new Counter({
    name: 'mnist_gpujs_rejections_total', help: 'Prediction requests the engine did not answer, by reason',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly queueDepth: Gauge;
  readonly inFlight: Gauge;
  private batches = 0;
  private batchedImages = 0;

  constructor(private readonly info: ServerInfo, live: { queueDepth: () => number; inFlight: () => number }) {
    this.queueDepth = new Gauge({
      name: 'mnist_gpujs_queue_depth', help: 'Requests waiting for a plan run', registers: [this.registry],
      collect() { this.set(live.queueDepth()); },
    });
    this.inFlight = new Gauge({
      name: 'mnist_gpujs_in_flight', help: 'Plan runs in progress (0 or 1)', registers: [this.registry],
      collect() { this.set(live.inFlight()); },
    });
    new Gauge({
      name: 'mnist_gpujs_info', help: 'What this server runs: backend, adapter, executor kind, models and path (always 1)',
      labelNames: ['backend', 'adapter', 'executor_kind', 'num_models', 'path'] as const, registers: [this.registry],
    }).set({ backend: info.backend, adapter: info.adapter, executor_kind: info.executorKind, num_models: String(info.numModels), path: info.path }, 1);
    collectDefaultMetrics({ register: this.registry });
  }

  reject(reason: RejectReason): void {
    this.rejections.inc({ reason });
  }

  /** One batch the engine ran. */
  batch(images: number): void {
    this.batchSize.observe(images);
    this.planRuns.inc(this.info.planRunsPerBatch);
    this.batches++;
    this.batchedImages += images;
  }

  /** Mean images per batch so far (0 before the first), for the status line. */
  meanBatchImages(): number {
    return this.batches > 0 ? this.batchedImages / this.batches : 0;
  }
}
