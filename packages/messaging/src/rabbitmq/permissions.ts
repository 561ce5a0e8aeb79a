import { DeadLetterTopology } from '../dead-letters.ts';
import { MessagingError } from '../errors.ts';
import type { BusIdentity } from '../security/permissions.ts';
import { RABBIT_EXCHANGES, RabbitTopology } from './topology.ts';

/**
 * Least-privilege RabbitMQ permissions derived from the same {@link BusIdentity} declarations as the
 * NATS permissions (`identityPermissions`), so the two cannot drift. Pure: no I/O.
 *
 * Semantics relied on (RabbitMQ 3.10, AMQP 0-9-1): a user's permissions in a vhost are three regexes
 * matched against exchange and queue names — `configure` (declare, delete), `write` (publish to an
 * exchange; be the destination of a binding), `read` (consume or get from a queue; be the source of
 * a binding). Passive declares need none. Publishing to the default exchange is a write on
 * `amq.default`. A topic permission (per user and topic exchange) adds a `write` regex on the routing
 * key of a publish and a `read` regex on the binding key of a queue binding; with none set for an
 * exchange every routing key is allowed, so every identity gets one on every exchange of
 * {@link RABBIT_EXCHANGES}, `^$` where it may do nothing.
 */

/** A topic permission of one user on one topic exchange. */
export interface RabbitTopicPermission {
  readonly exchange: string;
  readonly write: string;
  readonly read: string;
}

/** What one RabbitMQ user may do in the vhost. */
export interface RabbitUserPermissions {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
  readonly topics: readonly RabbitTopicPermission[];
}

const NONE = '^$';
const ANY = '.*';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A NATS subject pattern as a regex over routing (or binding) keys: `*` is one token (a literal `*`
 * in a binding key, a topic wildcard of one token, is one too), `>` the rest; `#` is never a token.
 */
export function subjectRegex(subject: string): string {
  return subject
    .split('.')
    .map((token) => (token === '*' ? '[^.#]+' : token === '>' ? '.+' : escape(token)))
    .join('\\.');
}

/** One anchored regex matching any of `alternatives` (already regexes), or nothing. */
function anyOf(alternatives: Iterable<string>): string {
  const list = [...new Set(alternatives)].sort();
  return list.length === 0 ? NONE : `^(?:${list.join('|')})$`;
}

const REDRIVE_PREFIX = `${DeadLetterTopology.redriveSubject('', '').split('.')[0] ?? 'redrive'}.`;

/** The RabbitMQ permissions of one identity (a `jetStreamAdmin` identity is the provisioner: everything). */
export function rabbitPermissions(identity: BusIdentity): RabbitUserPermissions {
  if (identity.jetStreamAdmin) {
    return {
      configure: ANY,
      write: ANY,
      read: ANY,
      topics: RABBIT_EXCHANGES.map((e) => ({ exchange: e.name, write: ANY, read: ANY })),
    };
  }
  const privateQueues = `${escape(RabbitTopology.privatePrefix(identity.name))}.+`;
  const served = (identity.serves ?? []).map((e) => e.subject);
  const servedQueues = served.map((s) => escape(RabbitTopology.endpointQueue(s)));
  const events = (identity.publishes ?? []).filter((s) => !s.startsWith(REDRIVE_PREFIX));
  const redrives = (identity.publishes ?? []).filter((s) => s.startsWith(REDRIVE_PREFIX));
  // `$SRV.>` and provisioning requests are NATS-only: no exchange carries them.
  const requests = (identity.requests ?? []).filter((s) => !s.startsWith('$'));
  const consumed = (identity.consumers ?? []).filter((c) => c.stream !== DeadLetterTopology.stream);
  const readsDeadLetters = (identity.messageGets ?? []).includes(DeadLetterTopology.stream);
  const redrivesDeadLetters = (identity.messageDeletes ?? []).includes(DeadLetterTopology.stream);

  const configure = [privateQueues, ...servedQueues];
  const write = [privateQueues, ...servedQueues];
  // Every process has a reply queue bound to the replies exchange.
  const read = [privateQueues, ...servedQueues, escape(RabbitTopology.replies)];
  const exchange = (name: string, when: boolean, list: string[]) => when && list.push(escape(name));
  exchange(RabbitTopology.events, events.length > 0, write);
  exchange(RabbitTopology.broadcast, (identity.broadcasts ?? []).length > 0, write);
  exchange(RabbitTopology.broadcast, (identity.listens ?? []).length > 0, read);
  exchange(RabbitTopology.rpc, requests.length > 0, write);
  exchange(RabbitTopology.rpc, served.length > 0, read);
  exchange(RabbitTopology.replies, served.length > 0, write);
  exchange(RabbitTopology.deadLetterExchange, (identity.deadLetters ?? []).length > 0, write);
  exchange(RabbitTopology.retry, consumed.length > 0, write);
  exchange(RabbitTopology.redrive, redrivesDeadLetters, write);
  for (const c of consumed) read.push(escape(RabbitTopology.consumerQueue(c.stream, c.durable)));
  if (readsDeadLetters || redrivesDeadLetters) read.push(escape(RabbitTopology.deadLetterQueue));

  const topic = (
    name: string,
    writes: readonly string[],
    reads: readonly string[],
  ): RabbitTopicPermission => ({
    exchange: name,
    write: anyOf(writes),
    read: anyOf(reads),
  });
  const topics: Record<(typeof RABBIT_EXCHANGES)[number]['name'], RabbitTopicPermission> = {
    [RabbitTopology.events]: topic(RabbitTopology.events, events.map(subjectRegex), []),
    [RabbitTopology.broadcast]: topic(
      RabbitTopology.broadcast,
      (identity.broadcasts ?? []).map(subjectRegex),
      (identity.listens ?? []).map(subjectRegex),
    ),
    [RabbitTopology.rpc]: topic(RabbitTopology.rpc, requests.map(subjectRegex), served.map(escape)),
    // A server answers whoever asked (like NATS `allow_responses`); each reads only its own replies.
    [RabbitTopology.replies]: topic(
      RabbitTopology.replies,
      served.length > 0 ? [`${escape(RabbitTopology.privateRoot)}.+`] : [],
      [privateQueues],
    ),
    [RabbitTopology.deadLetterExchange]: topic(
      RabbitTopology.deadLetterExchange,
      (identity.deadLetters ?? []).map(subjectRegex),
      [],
    ),
    [RabbitTopology.retry]: topic(
      RabbitTopology.retry,
      consumed.map((c) => escape(RabbitTopology.retryQueue(c.stream, c.durable))),
      [],
    ),
    [RabbitTopology.redrive]: topic(
      RabbitTopology.redrive,
      redrivesDeadLetters ? redrives.map(subjectRegex) : [],
      [],
    ),
  };
  return {
    configure: anyOf(configure),
    write: anyOf(write),
    read: anyOf(read),
    topics: RABBIT_EXCHANGES.map((e) => topics[e.name]),
  };
}

/** Permissions of every identity, by name. */
export function rabbitBusPermissions(identities: readonly BusIdentity[]): Map<string, RabbitUserPermissions> {
  const result = new Map<string, RabbitUserPermissions>();
  for (const identity of identities) {
    if (result.has(identity.name))
      throw new MessagingError('INVALID_CONFIG', `identity "${identity.name}" is declared twice`);
    result.set(identity.name, rabbitPermissions(identity));
  }
  return result;
}
