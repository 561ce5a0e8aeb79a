// Composition root of create-invoice: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { blobStoresFor, runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { openServiceStore } from '@orderflow/sql';
import { ObjectStorePdfArchive } from './adapters/object-store-pdfs.ts';
import { invoiceMigrations, SqlInvoiceBook } from './adapters/sql-invoice-book.ts';
import { startCreateInvoice } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openServiceStore(config, 'create-invoice', invoiceMigrations);

await runService(
  {
    name: 'create-invoice',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'create-invoice' }),
    version: '0.1.0',
    broker: config.broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) => {
    context.onStop(() => store.close());
    await startCreateInvoice(context, {
      topology,
      book: new SqlInvoiceBook(store, { consumer: topology.consumers.createInvoice.all.name }),
      // The JetStream object store on NATS; on RabbitMQ the files in BLOB_DIR.
      pdfs: await ObjectStorePdfArchive.open(
        blobStoresFor(context.broker, config.blobDir),
        topology.objectStores.invoices,
        { replicas: config.objectStoreReplicas },
      ),
      seller: config.seller,
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
  },
);
