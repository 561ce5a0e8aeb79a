import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RabbitVhost {
  /** `amqp://guest:guest@127.0.0.1:5672/<vhost>` (or on `AMQP_URL`'s host). */
  readonly url: string;
  readonly name: string;
  /** Deletes the vhost with every exchange, queue and message in it. */
  dispose(): Promise<void>;
}

/**
 * A fresh vhost on the local RabbitMQ (created with `rabbitmqctl`, guest given full rights), so a test
 * run's exchanges and queues cannot meet another run's. Needs `rabbitmqctl` and the broker on 5672.
 */
export async function createRabbitVhost(options: { base?: string } = {}): Promise<RabbitVhost> {
  const base = options.base ?? 'amqp://guest:guest@127.0.0.1:5672';
  const name = `test-${randomUUID().slice(0, 8)}`;
  await run('rabbitmqctl', ['add_vhost', name]);
  await run('rabbitmqctl', ['set_permissions', '-p', name, 'guest', '.*', '.*', '.*']);
  return {
    url: `${base}/${encodeURIComponent(name)}`,
    name,
    async dispose() {
      await run('rabbitmqctl', ['delete_vhost', name]);
    },
  };
}
