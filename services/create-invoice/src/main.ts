// Composition root of create-invoice: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { NatsBlobStores, requireNatsBroker, runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { ObjectStorePdfArchive } from './adapters/object-store-pdfs.ts';
import { invoiceMigrations, SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
import { startCreateInvoice } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const broker = requireNatsBroker(config.broker, 'create-invoice', [
  'the invoice PDF archive (JetStream object store)',
]);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'create-invoice', invoiceMigrations);

await runService(
  {
    name: 'create-invoice',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'create-invoice' }),
    version: '0.1.0',
    broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) => {
    context.onStop(() => store.close());
    await startCreateInvoice(context, {
      topology,
      book: new SqlInvoiceBook(store, { consumer: topology.consumers.createInvoice.all.name }),
      pdfs: await ObjectStorePdfArchive.open(
        new NatsBlobStores(context.broker.nc),
        topology.objectStores.invoices,
        {
          replicas: config.objectStoreReplicas,
        },
      ),
      seller: config.seller,
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
