import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Mailbox } from '../src/mod.ts';

test('given a full mailbox, when another mail arrives, then the oldest is dropped', () => {
  const mailbox = new Mailbox(2);
  for (const id of ['a', 'b', 'c'])
    mailbox.add({
      id,
      receivedAt: '',
      envelope: { from: '', to: [] },
      messageId: undefined,
      from: '',
      to: [],
      subject: id,
      text: '',
      html: undefined,
      headers: {},
      attachments: [],
    });
  assert.deepEqual(
    mailbox.list().map((m) => m.id),
    ['b', 'c'],
  );
});
