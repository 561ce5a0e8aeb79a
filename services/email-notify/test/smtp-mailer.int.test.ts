import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { spawnSmtpSink, type SmtpSinkProcess } from '@orderflow/smtp-sink';
import { EmailErrorCode, EmailNotifyError } from '../src/errors.ts';
import { SmtpMailer, type Mail, type SmtpOptions } from '../src/mod.ts';

// The mailer opens its pool's connections itself (Nagle off): they must carry mail, and fail the way
// nodemailer's own did (retryable, within the timeout) when there is no server or it never answers.
let sink: SmtpSinkProcess;
before(async () => {
  sink = await spawnSmtpSink();
});
after(() => sink.stop());

const options = (port: number, timeoutMs = 5_000): SmtpOptions => ({
  host: '127.0.0.1',
  port,
  secure: false,
  user: undefined,
  password: undefined,
  from: 'orders@example.test',
  timeoutMs,
});
const mail = (to: string, n: number): Mail => ({
  key: `order-${n}`,
  kind: 'order_placed',
  to,
  subject: `Order ${n}`,
  text: 'Thank you.',
  messageId: `<m-${n}.${to}>`,
  headers: {},
});

test('mails sent one after the other over the pooled connections all arrive, with their attachment', async () => {
  const mailer = new SmtpMailer(options(sink.smtpPort));
  const to = `pool-${process.pid}@example.test`;
  try {
    for (let n = 0; n < 12; n++) {
      await mailer.send(mail(to, n), [
        { filename: `n${n}.pdf`, contentType: 'application/pdf', content: new Uint8Array(3_000).fill(n) },
      ]);
    }
  } finally {
    mailer.close();
  }
  const received = await sink.messages({ to });
  assert.deepEqual(
    received.map((m) => m.subject),
    Array.from({ length: 12 }, (_, n) => `Order ${n}`),
  );
  assert.deepEqual(
    received.map((m) => m.attachments.map((a) => [a.filename, a.size])),
    Array.from({ length: 12 }, (_, n) => [[`n${n}.pdf`, 3_000]]),
  );
});

/** Rejects with a retryable SMTP_UNAVAILABLE error. */
async function unavailable(sending: Promise<void>): Promise<void> {
  await assert.rejects(sending, (error: unknown) => {
    assert.ok(error instanceof EmailNotifyError, String(error));
    assert.equal(error.code, EmailErrorCode.SmtpUnavailable);
    return true;
  });
}

test('no server on the port: a retryable SMTP_UNAVAILABLE', async () => {
  const closed: Server = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const mailer = new SmtpMailer(options(port));
  try {
    await unavailable(mailer.send(mail('nobody@example.test', 0)));
  } finally {
    mailer.close();
  }
});

test('a server that accepts the connection and never greets: SMTP_UNAVAILABLE after the timeout', async () => {
  const sockets: Socket[] = [];
  const silent: Server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const mailer = new SmtpMailer(options((silent.address() as AddressInfo).port, 300));
  try {
    await unavailable(mailer.send(mail('nobody@example.test', 0)));
    assert.ok(sockets.length >= 1, 'the connection was made');
  } finally {
    mailer.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});
