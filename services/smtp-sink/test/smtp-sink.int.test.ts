import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createTransport } from 'nodemailer';
import { spawnSmtpSink, type SmtpSinkProcess } from '../src/mod.ts';

let sink: SmtpSinkProcess;
before(async () => {
  sink = await spawnSmtpSink();
});
after(async () => {
  await sink.stop();
});

test('a mail sent over SMTP can be read over HTTP with its attachment, then deleted', async () => {
  const to = `${randomUUID()}@example.test`;
  const transport = createTransport({
    host: '127.0.0.1',
    port: sink.smtpPort,
    secure: false,
    ignoreTLS: true,
  });
  try {
    await transport.sendMail({
      from: 'shop@example.test',
      to,
      subject: 'Your invoice',
      text: 'Hello',
      headers: { 'X-Orderflow-Kind': 'invoice' },
      attachments: [
        { filename: 'invoice.pdf', content: Buffer.from('%PDF-1.4 fake'), contentType: 'application/pdf' },
      ],
    });
  } finally {
    transport.close();
  }
  const [summary, ...rest] = await sink.messages({ to });
  assert.equal(rest.length, 0);
  assert.equal(summary?.subject, 'Your invoice');
  assert.equal(summary?.headers['x-orderflow-kind'], 'invoice');
  assert.deepEqual(await sink.messages({ to, header: 'x-orderflow-kind: other' }), []);
  const full = await sink.message(summary?.id ?? '');
  assert.equal(Buffer.from(full.attachments[0]?.contentBase64 ?? '', 'base64').toString(), '%PDF-1.4 fake');
  const bytes = await fetch(`${sink.httpUrl}/messages/${full.id}/attachments/0`);
  assert.equal(bytes.headers.get('content-type'), 'application/pdf');
  await sink.clear();
  assert.deepEqual(await sink.messages({ to }), []);
});
