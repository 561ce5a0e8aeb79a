// The README's example: a producer and a consumer built with the toolkit (CI runs it, and
// examples/readme.unit.test.ts checks that the README shows exactly the lines between the markers).
// readme:start
import { Type } from '@sinclair/typebox';
import { connectNats, defineEvent, NatsTransport, on } from '@orderflow/messaging';

const GreetingSent = defineEvent({
  name: 'greeting.sent',
  schema: Type.Object({ to: Type.String({ minLength: 1 }), text: Type.String() }),
});

export async function main(servers: string): Promise<string> {
  const { nc } = await connectNats({ servers, name: 'quickstart' });
  const transport = await NatsTransport.create(nc, { source: 'orderflow/quickstart' });
  await transport.provision([{ name: 'GREETINGS', subjects: ['greetings.>'] }]);

  let greet: (line: string) => void = () => {};
  const received = new Promise<string>((resolve) => (greet = resolve));
  await transport.consume({
    name: 'greeter',
    stream: 'GREETINGS',
    handlers: [on(GreetingSent, async (event) => greet(`${event.data.text}, ${event.data.to}`))],
  });
  await transport.publish(GreetingSent, { to: 'Ada', text: 'Hello' }, { subject: 'greetings.ada' });

  const line = await received;
  await transport.close();
  await nc.close();
  return line;
}
// readme:end

if (process.argv[1] === new URL(import.meta.url).pathname) {
  console.log(await main(process.env.NATS_URL ?? 'nats://127.0.0.1:4222'));
}
