/**
 * The HTTP front end of `mnist-gpujs serve`: TorchServe's inference and describe endpoints, the Open Inference
 * Protocol (KServe v2), Prometheus metrics and a small page, all on one port, every prediction going through one
 * dynamic batcher. It knows no command line: `cli/commands/serve.ts` builds the engine and hands it here.
 *
 * Errors are one JSON body `{"error": "..."}` with the status that says what went wrong (400 bad input, 404
 * unknown model or endpoint, 405 wrong method, 413 body too large, 415 content type, 503 queue full, queue timeout
 * or shutting down, 500 the engine failed that batch); the server keeps serving.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type HTTPMethods } from 'fastify';
import multipart from '@fastify/multipart';
import { IMAGE_SIDE, NUM_CLASSES } from '../model/cnn.ts';
import { ServingError, type Batcher } from './batcher.ts';
import type { ServerMetrics } from './metrics.ts';
import { decodeInferRequest, decodePngImage, inferOutputs, modelNames, resolveModel } from './requests.ts';
import { predictionBody } from '../model/outputs.ts';
import { pageHtml } from './page.ts';
import { BUNDLE_FILE, NO_WEB_ASSETS, webFile, type WebAssets } from './web-assets.ts';

/** What the server serves: the batcher in front of the engine, and what to say about it. */
export interface ServingEngine {
  numModels: number;
  batcher: Batcher;
  metrics: ServerMetrics;
  /** false once shutting down (every bucket's plan has been built and run before the server listens) */
  ready(): boolean;
  modelPath: string;
  backend: string;
  adapter: string | null;
  executorKind(): string;
  /** 'single' (one plan run for all models) or 'sequential' (N plan runs) */
  path: string;
  maxBatchSize: number;
  maxBatchDelayMs: number;
}

/** One line of the request log (`--json-log` prints it as JSON). */
export interface RequestLogEntry extends Omit<RequestNotes, 'endpoint'> {
  time: string;
  method: string;
  url: string;
  status: number;
  ms: number;
}

export interface ServerOptions {
  bodyLimitBytes: number;
  version: string;
  /** the page's browser bundle and model files; without them the page computes on the server only */
  web?: WebAssets;
  onRequestLog?: (entry: RequestLogEntry) => void;
}

const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
/** Raw-body content types of a prediction; no content type at all is what `curl -T` sends. */
const RAW_IMAGE_TYPES = new Set(['image/png', 'application/octet-stream']);

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> | unknown;

/** What a handler learned about its request, for the log line and the metrics. */
export interface RequestNotes {
  /** the route's pattern, e.g. /predictions/:model */
  endpoint: string;
  model?: string;
  images?: number;
  queueMs?: number;
  decodeMs?: number;
  computeMs?: number;
  /** images in the plan run that answered it */
  batchImages?: number;
  error?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    notes: RequestNotes;
  }
}

function mediaType(req: FastifyRequest): string | undefined {
  const header = req.headers['content-type'];
  return header === undefined ? undefined : header.split(';')[0]!.trim().toLowerCase();
}

function unsupported(type: string | undefined, wanted: string): ServingError {
  return new ServingError(415, `unsupported content type ${type ?? '(none)'}: send ${wanted}`, 'bad_request');
}

/** The message a client sees for one of fastify's own errors. */
function clientMessage(err: { code?: string; message: string }, bodyLimitBytes: number): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return `the body is larger than the server's limit of ${bodyLimitBytes} bytes (--body-limit)`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `unsupported content type: ${err.message.replace(/^Unsupported Media Type:?\s*/i, '') || 'none'}`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'empty JSON body';
    default:
      return err.code?.includes('JSON') ? `malformed JSON: ${err.message}` : err.message;
  }
}

/**
 * A graceful stop: from now on /ping says Unhealthy and new predictions get 503 at once (a load balancer moves
 * on), while the queued and running requests are answered; then the port closes.
 */
export async function drainAndClose(app: FastifyInstance, batcher: Batcher, markClosing: () => void): Promise<void> {
  markClosing();
  await batcher.close();
  await app.close();
}

/** Registers `url` for the methods given; every other method gets 405 with an Allow header. */
type Router = (url: string, handlers: Partial<Record<HTTPMethods, Handler>>) => void;

/**
 * A fastify app with what every front end of this server shares: the body parsers, one JSON error body for every
 * failure, the request log and (when given) the request counter, and `route`.
 */
async function createApp(opts: ServerOptions, metrics: ServerMetrics | undefined): Promise<{ app: FastifyInstance; route: Router }> {
  const app = Fastify({ logger: false, bodyLimit: opts.bodyLimitBytes, return503OnClosing: true, requestTimeout: 60_000 });
  // multipart bodies are streamed past bodyLimit: their parts are capped instead (one file, a few small fields),
  // and a declared length over the limit is refused before anything is read
  await app.register(multipart, { limits: { fileSize: opts.bodyLimitBytes, fieldSize: opts.bodyLimitBytes, files: 1, fields: 4, parts: 5 } });
  app.addContentTypeParser([...RAW_IMAGE_TYPES], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  // anything else, or no content type: kept as bytes, and the route decides (415 where it does not fit)
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.decorateRequest('notes', null as unknown as RequestNotes);
  app.addHook('onRequest', async (req) => {
    req.notes = { endpoint: req.routeOptions.url ?? 'unknown' };
  });
  app.addHook('onResponse', async (req, reply) => {
    const { endpoint, ...notes } = req.notes;
    metrics?.requests.inc({ endpoint, model: notes.model ?? '', status: String(reply.statusCode) });
    opts.onRequestLog?.({
      time: new Date().toISOString(), method: req.method, url: req.url, status: reply.statusCode,
      ms: Number(reply.elapsedTime.toFixed(3)), ...notes,
    });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ServingError) {
      if (err.retryAfterS !== undefined) void reply.header('Retry-After', String(err.retryAfterS));
      if (req.notes) req.notes.error = err.message;
      return reply.code(err.status).send({ error: err.message });
    }
    const status = err.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      const message = clientMessage(err, opts.bodyLimitBytes);
      if (req.notes) req.notes.error = message;
      return reply.code(status).send({ error: message });
    }
    const message = `internal error: ${err.message}`;
    if (req.notes) req.notes.error = message;
    return reply.code(500).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) => {
    req.notes.error = 'no such endpoint';
    return reply.code(404).send({ error: `no such endpoint: ${req.method} ${req.url.split('?')[0]}` });
  });

  const route: Router = (url, handlers) => {
    const allowed = Object.keys(handlers) as HTTPMethods[];
    for (const method of allowed) app.route({ method, url, handler: handlers[method]! });
    const shown = allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed;
    const others = METHODS.filter((m) => !shown.includes(m));
    app.route({
      method: others, url,
      handler: async (req, reply) => {
        req.notes.error = 'method not allowed';
        return reply.code(405).header('Allow', shown.join(', ')).send({ error: `${req.method} is not allowed here: use ${allowed.join(' or ')}` });
      },
    });
  };
  return { app, route };
}

/**
 * The page at `/` and what it fetches under `/web/`: the browser bundle (when built) and the shipped model files
 * it computes with in the browser. `serverCompute` says whether this server also answers predictions.
 */
function webRoutes(route: Router, web: WebAssets, serverCompute: boolean): void {
  const html = pageHtml({ serverCompute, browserBundle: web.bundle !== null });
  route('/', { GET: async (_req, reply) => reply.type('text/html; charset=utf-8').send(html) });
  route('/web/:file', {
    GET: async (req, reply) => {
      const name = (req.params as { file: string }).file;
      const file = webFile(web, name);
      if (!file) {
        const hint = name === BUNDLE_FILE ? ': the browser bundle is not built (run `npm run build:web`)' : '';
        throw new ServingError(404, `no such file: /web/${name}${hint}`, 'bad_request');
      }
      return reply.type(file.type).header('Cache-Control', 'no-cache').send(createReadStream(file.path));
    },
  });
}

/** A server that computes nothing (`mnist-gpujs web`): the page and its files, for computing in the browser. */
export async function buildWebServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { app, route } = await createApp(opts, undefined);
  route('/ping', { GET: async () => ({ status: 'Healthy' }) });
  webRoutes(route, opts.web ?? NO_WEB_ASSETS, false);
  return app;
}

export async function buildServer(engine: ServingEngine, opts: ServerOptions): Promise<FastifyInstance> {
  const { batcher, metrics, numModels: N } = engine;
  const { app, route } = await createApp(opts, metrics);

  /** The model a path names; 404 for any other. */
  function modelOf(req: FastifyRequest): number | 'ensemble' {
    const name = (req.params as { model: string }).model;
    const model = resolveModel(name, N);
    // only names this server serves become a metrics label: a client's own names would grow it without bound
    if (model === undefined) throw new ServingError(404, `no model named ${JSON.stringify(name)}: this server serves ${modelNames(N).join(', ')}`, 'bad_request');
    req.notes.model = name;
    return model;
  }

  /** Queues the images; rejects when the client goes away while they wait. */
  async function infer(req: FastifyRequest, reply: FastifyReply, x: Float32Array, count: number) {
    const gone = new AbortController();
    const onClose = () => { if (!reply.raw.writableFinished) gone.abort(); };
    // a client that left while its body was read or decoded is not computed for either
    if (req.raw.socket?.destroyed === true) gone.abort();
    reply.raw.once('close', onClose);
    try {
      const r = await batcher.submit(x, count, gone.signal);
      Object.assign(req.notes, { images: count, queueMs: r.queueMs, computeMs: r.computeMs, batchImages: r.batchImages });
      metrics.duration.observe({ phase: 'queue' }, r.queueMs / 1000);
      metrics.duration.observe({ phase: 'compute' }, r.computeMs / 1000);
      return r.logp;
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  function decoded<T>(req: FastifyRequest, decode: () => T): T {
    const t0 = performance.now();
    const value = decode();
    req.notes.decodeMs = performance.now() - t0;
    metrics.duration.observe({ phase: 'decode' }, req.notes.decodeMs / 1000);
    return value;
  }

  /** The PNG of a prediction request: the raw body, or the multipart field `data`. */
  async function pngOf(req: FastifyRequest): Promise<Buffer> {
    if (req.isMultipart()) {
      if (Number(req.headers['content-length']) > opts.bodyLimitBytes) {
        throw new ServingError(413, clientMessage({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: '' }, opts.bodyLimitBytes), 'bad_request');
      }
      for await (const part of req.parts()) {
        if (part.fieldname !== 'data') {
          if (part.type === 'file') await part.toBuffer();
          continue;
        }
        return part.type === 'file' ? part.toBuffer() : Buffer.from(String(part.value), 'latin1');
      }
      throw new ServingError(400, 'the multipart body has no field named "data" (curl -F data=@digit.png)', 'bad_request');
    }
    const type = mediaType(req);
    if (type !== undefined && !RAW_IMAGE_TYPES.has(type)) throw unsupported(type, 'a PNG body (image/png) or multipart/form-data with a field "data"');
    if (!Buffer.isBuffer(req.body)) throw new ServingError(400, 'empty body: send a PNG', 'bad_request');
    return req.body;
  }

  const predict: Handler = async (req, reply) => {
    const model = modelOf(req);
    const png = await pngOf(req);
    const x = decoded(req, () => decodePngImage(png, 'the image'));
    const logp = await infer(req, reply, x, 1);
    const body = predictionBody(logp, 0, 1, N, model);
    const accept = req.headers.accept ?? '';
    if (accept.includes('text/plain') && !accept.includes('application/json')) return reply.type('text/plain').send(String(body.prediction));
    return body;
  };
  route('/predictions/:model', { POST: predict, PUT: predict });

  route('/ping', {
    GET: async (_req, reply) => (engine.ready() ? { status: 'Healthy' } : reply.code(503).send({ status: 'Unhealthy' })),
  });

  const describe = (name: string) => ({
    modelName: name, modelVersion: opts.version, modelUrl: engine.modelPath,
    batchSize: engine.maxBatchSize, maxBatchDelay: engine.maxBatchDelayMs,
    jobQueueStatus: { remainingCapacity: batcher.remainingCapacity, pendingRequests: batcher.pending },
    backend: engine.backend, adapter: engine.adapter, path: engine.path, executorKind: engine.executorKind(),
    ready: engine.ready(),
  });
  route('/models', { GET: async () => ({ models: modelNames(N).map(describe) }) });
  route('/models/:model', {
    GET: async (req) => {
      modelOf(req);
      return [describe((req.params as { model: string }).model)];
    },
  });

  // The Open Inference Protocol (KServe v2): health answers 200 when true, 400 with an empty body when not
  route('/v2', { GET: async () => ({ name: 'mnist-gpujs', version: opts.version, extensions: [] }) });
  route('/v2/health/live', { GET: async () => ({ live: true }) });
  route('/v2/health/ready', { GET: async (_req, reply) => (engine.ready() ? { ready: true } : reply.code(400).send()) });
  route('/v2/models/:model', {
    GET: async (req) => {
      modelOf(req);
      return {
        name: (req.params as { model: string }).model, versions: [opts.version], platform: 'mnist-gpujs',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, IMAGE_SIDE, IMAGE_SIDE] }],
        outputs: [
          { name: 'probabilities', datatype: 'FP32', shape: [-1, NUM_CLASSES] },
          { name: 'prediction', datatype: 'INT64', shape: [-1] },
        ],
      };
    },
  });
  route('/v2/models/:model/ready', {
    GET: async (req, reply) => {
      modelOf(req);
      return engine.ready() ? { name: (req.params as { model: string }).model, ready: true } : reply.code(400).send();
    },
  });
  route('/v2/models/:model/infer', {
    POST: async (req, reply) => {
      const model = modelOf(req);
      const type = mediaType(req);
      if (type !== 'application/json') throw unsupported(type, 'application/json');
      const { id, x, count } = decoded(req, () => decodeInferRequest(req.body, engine.maxBatchSize));
      const logp = await infer(req, reply, x, count);
      return { model_name: (req.params as { model: string }).model, id: id ?? randomUUID(), outputs: inferOutputs(logp, count, N, model) };
    },
  });

  route('/metrics', {
    GET: async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  });
  webRoutes(route, opts.web ?? NO_WEB_ASSETS, true);

  return app;
}
