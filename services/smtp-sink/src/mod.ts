export { startSmtpSink } from './app.ts';
export type { SmtpSink, SmtpSinkOptions } from './app.ts';
export { Mailbox } from './domain/mailbox.ts';
export type { MessageQuery, StoredAttachment, StoredMessage } from './domain/mailbox.ts';
export { spawnSmtpSink } from './testing.ts';
export type { SmtpSinkProcess } from './testing.ts';
