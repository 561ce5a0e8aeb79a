// The README's example (run by test/example.int.test.ts): a counter aggregate and its command handler.
import { Type } from '@sinclair/typebox';
import { connectNats, defineEvent, ensureStream } from '@orderflow/messaging';
import {
  AggregateStore,
  commandHandler,
  defineAggregate,
  DomainError,
  JetStreamEventLog,
  KvSnapshotStore,
  type EventOf,
} from '@orderflow/eventstore';

const Incremented = defineEvent({
  name: 'counter.incremented',
  schema: Type.Object({ by: Type.Integer() }),
});

export const counter = defineAggregate<{ total: number }, { by: number }, EventOf<typeof Incremented>>({
  name: 'counter',
  stream: 'COUNTERS',
  subjectPrefix: 'counters', // instance subjects: counters.<id>
  events: [Incremented],
  snapshotVersion: 1, // bump when evolve or the state shape changes
  initialState: () => ({ total: 0 }),
  evolve: (state, event) => ({ total: state.total + event.data.by }),
  decide: (command) => {
    if (command.by < 1) throw new DomainError('NOT_POSITIVE', 'increment by at least 1');
    return [{ type: 'counter.incremented', data: { by: command.by } }];
  },
});

export async function main(servers: string): Promise<number> {
  const { nc } = await connectNats({ servers, name: 'counter-service' });
  const log = await JetStreamEventLog.create(nc, { source: 'orderflow/counter-service' });
  await ensureStream(log.jsm, counter.streamDeclaration());
  const store = new AggregateStore(counter, { log, snapshots: await KvSnapshotStore.create(nc) });
  const handle = commandHandler(store); // load → decide → append, retried on a version conflict

  await handle('c1', { by: 2 });
  const { state } = await handle('c1', { by: 3 });
  await nc.close();
  return state.total;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  console.log(await main(process.env.NATS_URL ?? 'nats://127.0.0.1:4222'));
}
