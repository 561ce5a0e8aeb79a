// The responder process of the request-reply benchmark (spawned by request-reply.bench.ts).
// usage: node --import tsx bench/rpc-responder.ts <nats-url> <raw|toolkit> <subject>
// Prints "ready" once it answers; stops on SIGTERM or when stdin closes.
import { connect } from '@nats-io/transport-node';
import { connectNats, RpcServer } from '@orderflow/messaging';
import { quote, quoteEndpoint, type QuoteRequest } from './fixtures.ts';

const [url, mode, subject] = process.argv.slice(2);
if (!url || !subject || (mode !== 'raw' && mode !== 'toolkit')) {
  console.error('usage: rpc-responder.ts <nats-url> <raw|toolkit> <subject>');
  process.exit(2);
}

const nc =
  mode === 'raw'
    ? await connect({ servers: url, name: 'bench-responder-raw', noAsyncTraces: true })
    : (await connectNats({ servers: url, name: 'bench-responder-toolkit' })).nc;

let stopService: () => Promise<void>;
if (mode === 'raw') {
  // What a good nats.js user writes: a queue subscription with a callback, JSON in and out.
  const sub = nc.subscribe(subject, {
    queue: 'q',
    callback: (error, msg) => {
      if (error) return;
      msg.respond(JSON.stringify(quote(msg.json<QuoteRequest>())));
    },
  });
  stopService = () => sub.drain();
} else {
  const server = new RpcServer(nc, { name: 'bench-responder', version: '0.0.0' });
  server.serve(quoteEndpoint(subject), async (request) => quote(request));
  stopService = () => server.stop();
}
await nc.flush();
process.stdout.write('ready\n');

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await stopService().catch(() => undefined);
  await nc.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
