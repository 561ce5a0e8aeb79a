// Composition root of the fake PSP: the only place that reads the environment.
import { pino } from 'pino';
import { JsonlLedgerStore } from './adapters/jsonl-ledger.ts';
import { startPaymentProvider } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const logger = pino({ name: 'payment-provider', level: config.logLevel });
const store = await JsonlLedgerStore.open(config.dataDir);
const provider = await startPaymentProvider({
  store,
  faults: config.faults,
  port: config.port,
  host: config.host,
  logger,
});
logger.warn(
  { host: config.host, port: config.port },
  'development only: a fake PSP whose ledger and /admin endpoints have no authentication; keep it on 127.0.0.1',
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    provider.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  });
}
