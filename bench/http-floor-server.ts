/**
 * The floor under `bench:serve --overhead-rounds`: a bare fastify server on a free loopback port that answers
 * `PUT /hold` with a small JSON body after busy-waiting the milliseconds its `x-hold-ms` header asks for. Holding a
 * request as long as a plan run takes, it shows what a loopback HTTP round trip costs on this host around a
 * handler of that length, with no decoding, queue or engine: on a shared VM, a client that sleeps for milliseconds
 * wakes late. Prints `listening on <url>` and serves until killed.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.addContentTypeParser('image/png', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
/** Longest hold: a plan run of the bench takes milliseconds; a wild header must not wedge the server. */
const MAX_HOLD_MS = 10_000;

app.put('/hold', async (req) => {
  const asked = Number(req.headers['x-hold-ms'] ?? 0);
  const holdMs = Number.isFinite(asked) ? Math.min(Math.max(asked, 0), MAX_HOLD_MS) : 0;
  const start = performance.now();
  // busy, as the server's main thread is not while a plan runs on the workers: the client's wait is the same
  while (performance.now() - start < holdMs);
  return { prediction: 0, probabilities: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1] };
});
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('http-floor-server: no TCP address');
process.stdout.write(`listening on http://127.0.0.1:${address.port}\n`);
