// Composition root of payment-processor: the only place that reads the environment.
import { orderingTopology } from '@orderflow/contracts';
import { runService, tracingSettingsFromEnv } from '@orderflow/messaging';
import { HttpPaymentGateway } from './adapters/http-psp.ts';
import { startPaymentProcessor } from './app.ts';
import { configFromEnv } from './config.ts';

const config = configFromEnv(process.env);
const topology = orderingTopology({ namespace: config.namespace, streamReplicas: config.streamReplicas });

await runService(
  {
    name: 'payment-processor',
    tracing: tracingSettingsFromEnv(process.env, { serviceName: 'payment-processor' }),
    version: '0.1.0',
    broker: config.broker,
    httpPort: config.httpPort,
    drainDeadlineMs: config.drainDeadlineMs,
    streams: topology.streams,
  },
  (context) =>
    startPaymentProcessor(context, {
      topology,
      psp: new HttpPaymentGateway({ baseUrl: config.pspUrl, timeoutMs: config.pspTimeoutMs }),
      concurrency: config.concurrency,
      maxDeliver: config.maxDeliver,
      ackWaitMs: config.ackWaitMs,
      retry: { initialDelayMs: config.retryInitialDelayMs, maxDelayMs: config.retryMaxDelayMs },
    }),
);
