export { freePort, startNatsCluster, startNatsServer } from './nats-server.ts';
export type {
  ClusterNode,
  NatsCluster,
  NatsClusterOptions,
  NatsServer,
  NatsServerOptions,
} from './nats-server.ts';
export { deferred, uniqueName, waitFor } from './wait.ts';
export { OtlpSpanKind, startOtlpReceiver } from './otlp-receiver.ts';
export type { OtlpReceiver, ReceivedExport, ReceivedSpan } from './otlp-receiver.ts';
export { createRabbitVhost, type RabbitVhost } from './rabbitmq.ts';
