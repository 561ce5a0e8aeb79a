import {
  BrokerKind,
  NatsTransport,
  RabbitTransport,
  type DeadLetter,
  type DeadLetterStore,
} from '@orderflow/messaging';
import type { NatsTarget } from '../bus.ts';
import { connectOrderflow } from '../nats.ts';
import { connectAsOperator } from '../rabbit.ts';
import type { UpState } from '../state.ts';

export type DlqAction =
  | { readonly kind: 'list'; readonly consumer?: string; readonly limit: number; readonly verbose: boolean }
  | { readonly kind: 'show'; readonly seq: number }
  | { readonly kind: 'redrive'; readonly seq: number }
  | { readonly kind: 'discard'; readonly seq: number }
  | { readonly kind: 'redrive-all'; readonly consumer?: string };

/** Where the dead letters are: a NATS system's DEADLETTER stream, or a RabbitMQ system's dead-letter queue. */
export type DlqTarget =
  | { readonly kind: typeof BrokerKind.Nats; readonly nats: NatsTarget }
  | { readonly kind: typeof BrokerKind.RabbitMQ; readonly rabbit: NonNullable<UpState['rabbit']> };

/** The dead-letter store of `target`, as the operator, and how to let go of its connection. */
async function openStore(target: DlqTarget): Promise<{ store: DeadLetterStore; close: () => Promise<void> }> {
  const source = 'orderflow/cli';
  if (target.kind === BrokerKind.Nats) {
    const nc = await connectOrderflow(target.nats, 'orderflow-cli');
    const transport = await NatsTransport.create(nc, { source });
    return {
      store: transport.deadLetters,
      close: async () => {
        await transport.close();
        await nc.close();
      },
    };
  }
  const connection = await connectAsOperator(target.rabbit, 'orderflow-cli');
  const transport = await RabbitTransport.create(connection, {
    source,
    identity: 'operator',
    provisioned: true,
  }).catch(async (error: unknown) => {
    await connection.close().catch(() => undefined);
    throw error;
  });
  return {
    store: transport.deadLetters,
    close: async () => {
      await transport.close();
      await connection.close().catch(() => undefined);
    },
  };
}

/**
 * `orderflow dlq list | show <seq> | redrive <seq> | redrive-all | discard <seq>`: dead letters through the
 * toolkit's dead-letter store port (the DEADLETTER stream on NATS, the dead-letter queue on RabbitMQ). A
 * redrive sends the message back to the consumer that failed it, only.
 */
export async function dlq(target: DlqTarget, action: DlqAction): Promise<number> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const { store: letters, close } = await openStore(target);
  try {
    switch (action.kind) {
      case 'list': {
        const list = await listOrEmpty(() =>
          letters.list({ ...(action.consumer && { consumer: action.consumer }), limit: action.limit }),
        );
        if (list.length === 0) {
          say('no dead letters');
          return 0;
        }
        say(
          `${'seq'.padStart(6)}  ${'consumer'.padEnd(30)} ${'type'.padEnd(26)} ${'code'.padEnd(20)} reason`,
        );
        for (const letter of list) {
          say(
            `${String(letter.seq).padStart(6)}  ${letter.consumer.padEnd(30)} ${(letter.headers['ce-type'] ?? '?').padEnd(26)} ` +
              `${letter.code.padEnd(20)} ${letter.reason}`,
          );
          if (action.verbose) describe(letter, say);
        }
        say(`${list.length} dead letter(s); redrive one with: orderflow dlq redrive <seq>`);
        return 0;
      }
      case 'show': {
        const letter = await letters.get(action.seq);
        if (!letter) {
          say(`no dead letter with sequence ${action.seq}`);
          return 1;
        }
        say(
          `dead letter ${letter.seq}: ${letter.headers['ce-type'] ?? '?'} at ${letter.consumer} (stream ${letter.stream})`,
        );
        say(`  code      ${letter.code}`);
        say(`  reason    ${letter.reason}`);
        say(
          `  subject   ${letter.subject} #${letter.streamSequence}, ${letter.deliveries} deliveries, at ${letter.deadLetteredAt}`,
        );
        say('  headers');
        for (const [name, value] of Object.entries(letter.headers)) say(`    ${name}: ${value}`);
        const body = new TextDecoder().decode(letter.body);
        let pretty = body;
        try {
          pretty = JSON.stringify(JSON.parse(body), null, 2);
        } catch {
          // not JSON: shown as it is
        }
        say('  payload');
        for (const line of pretty.split('\n')) say(`    ${line}`);
        return 0;
      }
      case 'discard': {
        const letter = await letters.get(action.seq);
        if (!letter) {
          say(`no dead letter with sequence ${action.seq}`);
          return 1;
        }
        await letters.discard(action.seq);
        say(
          `discarded ${action.seq} (${letter.headers['ce-type'] ?? '?'} at ${letter.consumer}); it is not redriven`,
        );
        return 0;
      }
      case 'redrive': {
        const letter = await letters.get(action.seq);
        if (!letter) {
          say(`no dead letter with sequence ${action.seq}`);
          return 1;
        }
        await letters.redrive(action.seq);
        say(`redriven ${action.seq} to ${letter.consumer} (${letter.subject} #${letter.streamSequence})`);
        return 0;
      }
      case 'redrive-all': {
        const list = await listOrEmpty(() =>
          letters.list({ ...(action.consumer && { consumer: action.consumer }), limit: 100_000 }),
        );
        let done = 0;
        for (const letter of list) {
          await letters.redrive(letter.seq);
          done += 1;
          if (done % 50 === 0 || done === list.length) say(`  redriven ${done}/${list.length}`);
        }
        say(list.length === 0 ? 'no dead letters' : `redriven ${done} dead letter(s)`);
        return 0;
      }
      default:
        return action satisfies never;
    }
  } finally {
    await close();
  }
}

/** An absent DEADLETTER stream (nothing ever dead-lettered, nothing consumed yet) means none. */
async function listOrEmpty(list: () => Promise<DeadLetter[]>): Promise<DeadLetter[]> {
  try {
    return await list();
  } catch (error) {
    if (/stream not found/i.test(error instanceof Error ? error.message : String(error))) return [];
    throw error;
  }
}

function describe(letter: DeadLetter, say: (line: string) => void): void {
  say(
    `        subject ${letter.subject} #${letter.streamSequence}, ${letter.deliveries} deliveries, at ${letter.deadLetteredAt}`,
  );
  say(`        ce-id ${letter.headers['ce-id'] ?? '?'}  ce-subject ${letter.headers['ce-subject'] ?? '?'}`);
  const body = new TextDecoder().decode(letter.body);
  say(`        body ${body.length > 300 ? `${body.slice(0, 300)}…` : body}`);
}
