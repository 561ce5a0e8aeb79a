// Composition root of email-notify: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { blobStoresFor, runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { migrate, openSqlStore } from '@orderflow/sql';
import { ObjectStorePdfs } from './adapters/object-store-pdfs.ts';
import { SmtpMailer } from './adapters/smtp-mailer.ts';
import { emailMigrations, SqlMailLog } from './adapters/sql-mail-log.ts';
import { startEmailNotify } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });
const store = await openSqlStore({
  ...(config.databaseUrl !== undefined && { databaseUrl: config.databaseUrl }),
  dataDir: config.dataDir,
  schema: config.dbSchema,
});
await migrate(store, emailMigrations, { component: 'email-notify' });
const mailer = new SmtpMailer({ ...config.smtp, from: config.mailFrom });

await runService(
  {
    name: 'email-notify',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'email-notify' }),
    version: '0.1.0',
    broker: config.broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  async (context) => {
    context.onStop(() => store.close());
    context.onStop(() => mailer.close());
    await startEmailNotify(context, {
      topology,
      log: new SqlMailLog(store, { leaseMs: config.claimLeaseMs }),
      mailer,
      // The JetStream object store on NATS; on RabbitMQ the files in BLOB_DIR create-invoice writes.
      pdfs: new ObjectStorePdfs(blobStoresFor(context.broker, config.blobDir)),
      maxDeliver: config.maxDeliver,
    });
  },
);
