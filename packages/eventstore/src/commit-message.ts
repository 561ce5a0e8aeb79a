// How a commit becomes a stored message, shared by every EventLog implementation so that one codec
// reads them all: a plain CloudEvent for one event, an `eventstore.commit.v1` CloudEvent listing the
// events otherwise. Internal to the package.
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { createEnvelope, encodeData, envelopeHeaders, type MessageContract } from '@orderflow/messaging';
import { CommitContract } from './codec.ts';
import { EventStoreError, EventStoreErrorCode } from './errors.ts';
import type { NewCommit } from './types.ts';

/** The contract and payload the commit is stored as; validates every event (throws before any I/O). */
export function commitPayload(commit: NewCommit): { contract: MessageContract; data: unknown } {
  const [first, ...rest] = commit.events;
  if (!first) throw new EventStoreError(EventStoreErrorCode.Config, `${commit.subject}: empty commit`);
  if (rest.length === 0) return { contract: first.contract, data: first.contract.parse(first.data) };
  return {
    contract: CommitContract,
    data: { events: commit.events.map((e) => ({ type: e.contract.type, data: e.contract.parse(e.data) })) },
  };
}

/** The commit as CloudEvent headers (as entries) and JSON body, as JetStream would store it. */
export function commitMessage(
  source: string,
  commit: NewCommit,
  commitId: string,
): { entries: [string, string][]; body: Uint8Array } {
  const { contract, data } = commitPayload(commit);
  const envelope = createEnvelope({
    type: contract.type,
    source,
    data,
    id: commitId,
    subject: commit.aggregateId,
    causedBy: commit.causedBy,
  });
  const h = envelopeHeaders(envelope);
  const entries = [...h.keys()].flatMap((k) => h.values(k).map((v): [string, string] => [k, v]));
  return { entries, body: new TextEncoder().encode(encodeData(data)) };
}

/** Headers back from their entries. */
export function headersOf(entries: readonly (readonly [string, string])[]): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of entries) h.append(k, v);
  return h;
}

const escape = (token: string) => token.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

/**
 * A NATS subject filter (`*` = one token, `>` = the rest) as a regular expression that JavaScript and
 * PostgreSQL (`~`) read alike; `undefined` when the filter has no wildcard (compare with `=`).
 */
export function subjectPattern(filter: string): string | undefined {
  const tokens = filter.split('.');
  if (!tokens.some((t) => t === '*' || t === '>')) return undefined;
  return `^${tokens.map((t) => (t === '*' ? '[^.]+' : t === '>' ? '.+' : escape(t))).join('\\.')}$`;
}

/** Whether `subject` matches `filter`. */
export function subjectMatches(filter: string): (subject: string) => boolean {
  const pattern = subjectPattern(filter);
  if (pattern === undefined) return (subject) => subject === filter;
  const re = new RegExp(pattern);
  return (subject) => re.test(subject);
}
