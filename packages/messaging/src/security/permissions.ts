import { MessagingError } from '../errors.ts';

/**
 * Least-privilege NATS permissions derived from what a process declares it does on the bus. Pure:
 * no I/O, so the same declarations yield the server config, the docs table and the tests.
 *
 * Semantics relied on (nats-server 2.9): a user with `publish.allow` / `subscribe.allow` may use only
 * the listed subjects; `deny` wins over `allow`; a subscribe entry `"<subject> <queue>"` allows only
 * queue subscriptions in that queue group; `allow_responses` lets a responder publish one reply to the
 * reply subject of a request it received (within `expires`), which is how `$SRV` discovery and
 * provisioning answers get out without a wide publish allow.
 */

/** A durable pull consumer a process reads (it may pull, ack and look it up, nothing else). */
export interface DurableAccess {
  readonly stream: string;
  readonly durable: string;
}

/** A stream a process reads through ordered (ephemeral) consumers, restricted to one filter. */
export interface OrderedReadAccess {
  readonly stream: string;
  /** Filter subject of every ordered consumer it creates (wildcards allowed), e.g. `orders.*`. */
  readonly filter: string;
}

/** A JetStream KV bucket or object store and whether the process writes it. */
export interface BucketAccess {
  readonly bucket: string;
  readonly write: boolean;
}

/** A request-reply endpoint served in a queue group. */
export interface ServedEndpoint {
  readonly subject: string;
  readonly queue: string;
}

/** What one identity (a service, the provisioner, an operator) does on the bus. */
export interface BusIdentity {
  /** User name; also the private inbox prefix `_INBOX_<name>` ({@link inboxPrefix}). */
  readonly name: string;
  /** What the docs say this identity is for. */
  readonly description: string;
  /** Stream subjects it appends to (JetStream publish with ack). */
  readonly publishes?: readonly string[];
  /** Core NATS subjects it publishes on without a stream (fan-out notifications). */
  readonly broadcasts?: readonly string[];
  /** Core NATS subjects it subscribes to (notifications). */
  readonly listens?: readonly string[];
  /** Endpoint subjects it sends requests to. */
  readonly requests?: readonly string[];
  /** Endpoints it answers, in their queue groups; nobody else may subscribe to these subjects. */
  readonly serves?: readonly ServedEndpoint[];
  /** Name under which it answers `$SRV.PING|INFO|STATS` (default: none). */
  readonly discovery?: string;
  /** Durable pull consumers it reads. */
  readonly consumers?: readonly DurableAccess[];
  /** Dead-letter subjects it writes (one per consumer it handles). */
  readonly deadLetters?: readonly string[];
  /** Streams it reads through ordered consumers (event-store loads, projections). */
  readonly orderedReads?: readonly OrderedReadAccess[];
  /** Streams it looks up (`STREAM.INFO`; also what binding to an existing stream needs). */
  readonly streamInfo?: readonly string[];
  /** Streams whose messages it fetches one by one (`STREAM.MSG.GET`, `DIRECT.GET`). */
  readonly messageGets?: readonly string[];
  /** Streams it deletes single messages from (`STREAM.MSG.DELETE`). */
  readonly messageDeletes?: readonly string[];
  readonly kv?: readonly BucketAccess[];
  readonly objectStores?: readonly BucketAccess[];
  /** Subjects it may send provisioning requests to (see `ProvisioningResponder`). */
  readonly provisioningRequests?: readonly string[];
  /** Subjects it answers provisioning requests on. */
  readonly provisioningServes?: readonly ServedEndpoint[];
  /** The read-only JetStream API: names, lists and info of every stream and consumer (operators). */
  readonly inspects?: boolean;
  /** The whole JetStream API (`$JS.API.>`): only the provisioning identity. */
  readonly jetStreamAdmin?: boolean;
}

/** Publish or subscribe allow/deny lists, as nats-server takes them. */
export interface SubjectPermission {
  readonly allow: readonly string[];
  readonly deny?: readonly string[];
}

/** nats-server's `allow_responses` map: up to `max` messages to the reply subject of each message received, within `expires`. */
export interface ResponsePermission {
  readonly max: number;
  /** A nats-server duration, e.g. `2s`. */
  readonly expires: string;
}

/** The `permissions` block of one nats-server user. */
export interface UserPermissions {
  readonly publish: SubjectPermission;
  readonly subscribe: SubjectPermission;
  /** Replies to requests it received (its endpoints, `$SRV`, provisioning). */
  readonly allow_responses?: ResponsePermission;
}

/**
 * The reply grant of an identity that reads durables. nats-server 2.9 (and 2.10 before
 * nats-io/nats-server#6064) remembers, for a client with `allow_responses`, the reply subject of every
 * message it delivers to it for `expires` — every JetStream delivery too, whose reply subject is its
 * ack subject, and an ack does not use up the grant (acks are allowed by name) — and once it holds more
 * than 4 096 of them walks all of them on every delivery: with the server's default of 2 minutes that
 * was ≈ 75 % of nats-server's CPU under `npm run bench -- orders` (docs/performance.md, item 19). Two
 * seconds keeps a connection below that up to ≈ 2 000 deliveries per second; a service's replies to
 * its endpoints do not depend on it (they go to its callers' inboxes, {@link busPermissions}), only its
 * `$SRV` answers, which are immediate.
 */
export const CONSUMER_REPLY_GRANT: ResponsePermission = { max: 1, expires: '2s' };

/** The reply grant of an identity that reads no durables: nats-server's default (`allow_responses: true`). */
export const REPLY_GRANT: ResponsePermission = { max: 1, expires: '2m' };

/** Everything the toolkit puts under `$JS.API` for JetStream account lookups. */
const JS = '$JS.API';

/** Private inbox prefix of an identity: replies and JetStream pulls come back under it, and only it can read them. */
export function inboxPrefix(name: string): string {
  return `_INBOX_${name}`;
}

/** Subjects of a KV bucket and an object store, and their backing streams (nats.js / nats-server naming). */
export const BucketSubjects = {
  kvStream: (bucket: string) => `KV_${bucket}`,
  kvKeys: (bucket: string) => `$KV.${bucket}.>`,
  objectStream: (bucket: string) => `OBJ_${bucket}`,
  objectChunks: (bucket: string) => `$O.${bucket}.C.>`,
  objectMeta: (bucket: string) => `$O.${bucket}.M.>`,
} as const;

const unique = (subjects: Iterable<string>): string[] => [...new Set(subjects)].sort();

/**
 * The nats-server permissions of one identity. `declaredDurables` are every durable consumer of the
 * system: an identity that reads a stream through ordered consumers needs `CONSUMER.CREATE` and
 * `CONSUMER.DELETE` on that stream by any name (the consumer's name is random), so those calls are
 * denied by the names of the declared durables, and pulling from a durable it does not own is denied
 * the same way.
 */
export function identityPermissions(
  identity: BusIdentity,
  declaredDurables: readonly DurableAccess[] = [],
): UserPermissions {
  if (identity.jetStreamAdmin) {
    return {
      publish: { allow: unique([`${JS}.>`, ...(identity.publishes ?? []), ...(identity.broadcasts ?? [])]) },
      subscribe: {
        allow: unique([
          `${inboxPrefix(identity.name)}.>`,
          ...(identity.provisioningServes ?? []).map((s) => `${s.subject} ${s.queue}`),
        ]),
      },
      allow_responses: REPLY_GRANT,
    };
  }
  const pub = new Set<string>([`${JS}.INFO`]);
  const sub = new Set<string>([`${inboxPrefix(identity.name)}.>`]);
  const denyPub = new Set<string>();

  for (const s of identity.publishes ?? []) pub.add(s);
  for (const s of identity.broadcasts ?? []) pub.add(s);
  for (const s of identity.requests ?? []) pub.add(s);
  for (const s of identity.provisioningRequests ?? []) pub.add(s);
  for (const s of identity.deadLetters ?? []) pub.add(s);
  for (const s of identity.listens ?? []) sub.add(s);
  for (const e of [...(identity.serves ?? []), ...(identity.provisioningServes ?? [])])
    sub.add(`${e.subject} ${e.queue}`);
  if (identity.discovery) {
    sub.add('$SRV.*');
    sub.add(`$SRV.*.${identity.discovery}`);
    sub.add(`$SRV.*.${identity.discovery}.>`);
  }

  const streams = new Set(identity.streamInfo ?? []);
  for (const c of identity.consumers ?? []) {
    streams.add(c.stream);
    pub.add(`${JS}.CONSUMER.INFO.${c.stream}.${c.durable}`);
    pub.add(`${JS}.CONSUMER.MSG.NEXT.${c.stream}.${c.durable}`);
    pub.add(`$JS.ACK.${c.stream}.${c.durable}.>`);
  }
  const orderedStreams = new Set<string>();
  const orderedRead = (stream: string, filter: string): void => {
    streams.add(stream);
    orderedStreams.add(stream);
    pub.add(`${JS}.CONSUMER.CREATE.${stream}.*.${filter}`);
    pub.add(`${JS}.CONSUMER.INFO.${stream}.*`);
    pub.add(`${JS}.CONSUMER.DELETE.${stream}.*`);
    pub.add(`${JS}.CONSUMER.MSG.NEXT.${stream}.*`);
  };
  for (const r of identity.orderedReads ?? []) orderedRead(r.stream, r.filter);
  const messageGet = (stream: string): void => {
    streams.add(stream);
    pub.add(`${JS}.STREAM.MSG.GET.${stream}`);
    pub.add(`${JS}.DIRECT.GET.${stream}`);
    pub.add(`${JS}.DIRECT.GET.${stream}.>`);
  };
  for (const s of identity.messageGets ?? []) messageGet(s);
  for (const s of identity.messageDeletes ?? []) {
    streams.add(s);
    pub.add(`${JS}.STREAM.MSG.DELETE.${s}`);
  }
  for (const kv of identity.kv ?? []) {
    const stream = BucketSubjects.kvStream(kv.bucket);
    messageGet(stream);
    if (kv.write) pub.add(BucketSubjects.kvKeys(kv.bucket));
  }
  for (const os of identity.objectStores ?? []) {
    const stream = BucketSubjects.objectStream(os.bucket);
    messageGet(stream);
    orderedRead(stream, BucketSubjects.objectChunks(os.bucket));
    if (os.write) {
      pub.add(BucketSubjects.objectChunks(os.bucket));
      pub.add(BucketSubjects.objectMeta(os.bucket));
    }
  }
  for (const s of streams) pub.add(`${JS}.STREAM.INFO.${s}`);
  if (identity.inspects) {
    for (const api of ['STREAM.NAMES', 'STREAM.LIST', 'STREAM.INFO.*', 'CONSUMER.NAMES.*', 'CONSUMER.LIST.*'])
      pub.add(`${JS}.${api}`);
    pub.add(`${JS}.CONSUMER.INFO.*.*`);
  }

  // Random consumer names need wildcards: take the declared durables back out of them.
  const own = new Set((identity.consumers ?? []).map((c) => `${c.stream}.${c.durable}`));
  for (const d of declaredDurables) {
    if (!orderedStreams.has(d.stream)) continue;
    denyPub.add(`${JS}.CONSUMER.CREATE.${d.stream}.${d.durable}`);
    denyPub.add(`${JS}.CONSUMER.CREATE.${d.stream}.${d.durable}.>`);
    denyPub.add(`${JS}.CONSUMER.DELETE.${d.stream}.${d.durable}`);
    if (!own.has(`${d.stream}.${d.durable}`)) denyPub.add(`${JS}.CONSUMER.MSG.NEXT.${d.stream}.${d.durable}`);
  }
  if (orderedStreams.size > 0) denyPub.add(`${JS}.CONSUMER.DURABLE.CREATE.>`);

  const answers = (identity.serves?.length ?? 0) + (identity.provisioningServes?.length ?? 0) > 0;
  return {
    publish: { allow: unique(pub), ...(denyPub.size > 0 && { deny: unique(denyPub) }) },
    subscribe: { allow: unique(sub) },
    ...((answers || identity.discovery !== undefined) && {
      allow_responses: (identity.consumers?.length ?? 0) > 0 ? CONSUMER_REPLY_GRANT : REPLY_GRANT,
    }),
  };
}

/**
 * A responder may also publish into the inboxes of the identities that call its endpoints.
 * `allow_responses` is kept by the server the request came through: a reply sent after the
 * responder reconnected to another node of a cluster (a node killed mid-request) was refused as a
 * permission violation. The grant is no wider than the callers: only `_INBOX_<caller>.>` of identities
 * whose `requests` name one of its endpoints.
 */
function withCallerInboxes(
  identity: BusIdentity,
  identities: readonly BusIdentity[],
  permissions: UserPermissions,
): UserPermissions {
  const served = new Set((identity.serves ?? []).map((e) => e.subject));
  if (served.size === 0) return permissions;
  const callers = identities.filter(
    (i) => i.name !== identity.name && (i.requests ?? []).some((r) => served.has(r)),
  );
  if (callers.length === 0) return permissions;
  return {
    ...permissions,
    publish: {
      ...permissions.publish,
      allow: unique([...permissions.publish.allow, ...callers.map((c) => `${inboxPrefix(c.name)}.>`)]),
    },
  };
}

/** Permissions of every identity, with the durables of all of them taken out of each one's wildcards. */
export function busPermissions(identities: readonly BusIdentity[]): Map<string, UserPermissions> {
  const durables = identities.flatMap((i) => i.consumers ?? []);
  const names = new Set<string>();
  const result = new Map<string, UserPermissions>();
  for (const identity of identities) {
    if (names.has(identity.name))
      throw new MessagingError('INVALID_CONFIG', `identity "${identity.name}" is declared twice`);
    names.add(identity.name);
    result.set(
      identity.name,
      withCallerInboxes(identity, identities, identityPermissions(identity, durables)),
    );
  }
  return result;
}
