export { freePort, startNatsCluster, startNatsServer } from './nats-server.ts';
export type {
  ClusterNode,
  NatsCluster,
  NatsClusterOptions,
  NatsServer,
  NatsServerOptions,
} from './nats-server.ts';
export { deferred, uniqueName, waitFor } from './wait.ts';
