export { freePort, startNatsCluster, startNatsServer } from './nats-server.ts';
export type { NatsCluster, NatsServer, NatsServerOptions } from './nats-server.ts';
export { deferred, uniqueName, waitFor } from './wait.ts';
