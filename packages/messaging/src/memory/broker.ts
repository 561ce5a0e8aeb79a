import {
  DeadLetterError,
  DeadLetterTopology,
  deadLetterKey,
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterStore,
} from '../dead-letters.ts';
import { ORIGINAL_SEQUENCE_HEADER, ORIGINAL_SUBJECT_HEADER } from '../delivery.ts';
import { Header } from '../envelope.ts';
import { BrokerUnavailableError, ConcurrencyError, ProvisioningError, PublishError } from '../errors.ts';
import { subjectMatches } from '../middleware/producer.ts';
import { StoreUnavailableError } from '../ports/errors.ts';
import type { StreamDeclaration } from '../topology.ts';

/** Header pairs in the order they were set (a name may repeat). */
export type HeaderEntries = readonly (readonly [string, string])[];

/** One message of a {@link MemoryBroker} stream. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  /** Headers as published, without the de-duplication id (that is {@link msgId}). */
  readonly headers: HeaderEntries;
  readonly body: Uint8Array;
  /** The id the stream de-duplicates by (`ce-id`, or a fallback when another message took it). */
  readonly msgId: string;
}

/** A subject and its headers and body, as an ordering key function reads them. */
export interface MessageView {
  readonly subject: string;
  header(name: string): string | undefined;
  readonly body: Uint8Array;
}

/** First value of a header by exact name, else by name in any case (as the other transports read them). */
export function headerValue(headers: HeaderEntries, name: string): string | undefined {
  let folded: string | undefined;
  for (const [key, value] of headers) {
    if (key === name) return value || undefined;
    if (folded === undefined && key.toLowerCase() === name.toLowerCase()) folded = value;
  }
  return folded || undefined;
}

/** Whether two subject patterns can match one subject (`*` one token, `>` the rest). */
function patternsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const s = x[i];
    const t = y[i];
    if (s === '>' || t === '>') return s !== undefined && t !== undefined;
    if (s === undefined || t === undefined) return false;
    if (s !== '*' && t !== '*' && s !== t) return false;
  }
  return true;
}

/** A stream: messages by sequence, the duplicate window, the last sequence per subject. */
class MemoryStream {
  readonly messages: StoredMessage[] = [];
  /** Message id → sequence and time stored, oldest first (a Map keeps insertion order). */
  readonly #ids = new Map<string, { seq: number; at: number }>();
  readonly #lastBySubject = new Map<string, number>();

  constructor(public declaration: StreamDeclaration) {}

  get lastSeq(): number {
    return this.messages.length;
  }

  at(seq: number): StoredMessage | undefined {
    return this.messages[seq - 1];
  }

  /** The message stored under `msgId` within the duplicate window, if any. */
  duplicateOf(msgId: string): StoredMessage | undefined {
    const window = this.declaration.duplicateWindowMs ?? 120_000;
    const now = Date.now();
    for (const [id, { at }] of this.#ids) {
      if (now - at < window) break;
      this.#ids.delete(id);
    }
    const seen = this.#ids.get(msgId);
    return seen && this.at(seen.seq);
  }

  append(
    subject: string,
    headers: HeaderEntries,
    body: Uint8Array,
    msgId: string,
    expectedLastSubjectSequence: number | undefined,
  ): StoredMessage {
    const last = this.#lastBySubject.get(subject) ?? 0;
    if (expectedLastSubjectSequence !== undefined && expectedLastSubjectSequence !== last) {
      throw new ConcurrencyError(subject, expectedLastSubjectSequence);
    }
    const message: StoredMessage = { seq: this.messages.length + 1, subject, headers, body, msgId };
    this.messages.push(message);
    this.#ids.set(msgId, { seq: message.seq, at: Date.now() });
    this.#lastBySubject.set(subject, message.seq);
    return message;
  }
}

/** What a durable needs to know, as a consumer declares it. */
export interface DurableDeclaration {
  stream: string;
  name: string;
  filterSubject?: string;
  deliverPolicy?: 'all' | 'new';
  ackWaitMs: number;
  /** The broker's own delivery cap: a message nak'd after this many deliveries is dropped. */
  maxDeliver: number;
  maxAckPending: number;
  /** Per-key ordering: a key's next message is handed out only once the one before is settled. */
  orderingKey?: ((message: MessageView) => string | undefined) | undefined;
}

/** One process's pull on a durable: it holds at most `capacity` deliveries at once. */
export interface DurableSubscriber {
  readonly capacity: number;
  /** False once the process is gone: what it settles afterwards is ignored. */
  readonly connected: boolean;
  deliver(delivery: BrokerDelivery): void;
}

/** A message waiting in, or handed out by, one durable. */
class Entry implements MessageView {
  deliveries = 0;
  key: string | undefined;
  /** The delivery now outstanding, if any. */
  current: BrokerDelivery | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly message: StoredMessage,
    readonly redriven: boolean,
  ) {}

  get subject(): string {
    return this.message.subject;
  }
  get body(): Uint8Array {
    return this.message.body;
  }
  header(name: string): string | undefined {
    return headerValue(this.message.headers, name);
  }
}

/**
 * One delivery of a message by a durable: what the consumer settles. Settlements of a delivery that is
 * no longer current (it timed out and went to another holder), of a holder that crashed, or made
 * while the broker is down are lost, as an ack on a dropped connection is.
 */
export class BrokerDelivery {
  constructor(
    readonly durable: Durable,
    readonly entry: Entry,
    readonly deliveryCount: number,
    readonly subscriber: DurableSubscriber,
  ) {}

  get message(): StoredMessage {
    return this.entry.message;
  }
  get redriven(): boolean {
    return this.entry.redriven;
  }
  ack(): void {
    this.durable.settle(this, 'ack', 0);
  }
  term(): void {
    this.durable.settle(this, 'term', 0);
  }
  nak(delayMs: number): void {
    this.durable.settle(this, 'nak', delayMs);
  }
  working(): void {
    this.durable.working(this);
  }
}

/**
 * A durable consumer: its cursor in the stream, the messages it handed out and not yet settled (each
 * redelivered after `ackWaitMs` unless extended), the ones nak'd (redelivered after their delay), and
 * its redrive queue. Subscribers compete for its messages, round robin among those with room.
 */
export class Durable {
  #cursor: number;
  readonly #ready: Entry[] = [];
  readonly #inFlight = new Set<Entry>();
  readonly #held = new Map<DurableSubscriber, number>();
  readonly #subscribers: DurableSubscriber[] = [];
  #turn = 0;
  /** The entry holding each key (handed out, or nak'd and waiting for its redelivery). */
  readonly #keyHolder = new Map<string, Entry>();
  /** Entries behind their key's holder, by stream sequence. */
  readonly #waiting = new Map<string, Entry[]>();
  #dispatching = false;

  constructor(
    private readonly broker: MemoryBroker,
    private readonly stream: MemoryStream,
    public declaration: DurableDeclaration,
  ) {
    this.#cursor = declaration.deliverPolicy === 'new' ? stream.lastSeq + 1 : 1;
  }

  subscribe(subscriber: DurableSubscriber): void {
    this.#subscribers.push(subscriber);
    this.#held.set(subscriber, 0);
    this.dispatch();
  }

  /** Stops handing messages to `subscriber`; what it holds stays its own until settled or timed out. */
  unsubscribe(subscriber: DurableSubscriber): void {
    const at = this.#subscribers.indexOf(subscriber);
    if (at !== -1) this.#subscribers.splice(at, 1);
  }

  /** Puts a redriven message on this durable's queue (to this consumer and no other). */
  redrive(message: StoredMessage): void {
    const entry = new Entry(message, true);
    if (this.#claim(entry)) this.#ready.push(entry);
    this.dispatch();
  }

  /** Hands out what it can: to subscribers with room, up to `maxAckPending` outstanding. */
  dispatch(): void {
    if (this.#dispatching || !this.broker.available) return;
    this.#dispatching = true;
    try {
      while (this.#inFlight.size < this.declaration.maxAckPending) {
        const next = this.#nextSubscriber();
        if (!next) break;
        const entry = this.#nextEntry();
        if (!entry) break;
        // The turn moves on only with a message handed out: a dispatch that finds nothing to send
        // (after an ack, say) must not skip a subscriber, or the share can lock onto one instance.
        this.#turn = next.turnAfter;
        this.#handOut(entry, next.subscriber);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  /** The next subscriber in turn with room, and where the turn goes once it got a message. */
  #nextSubscriber(): { subscriber: DurableSubscriber; turnAfter: number } | undefined {
    const count = this.#subscribers.length;
    for (let i = 0; i < count; i++) {
      const subscriber = this.#subscribers[(this.#turn + i) % count]!;
      if ((this.#held.get(subscriber) ?? 0) < subscriber.capacity) {
        return { subscriber, turnAfter: (this.#turn + i + 1) % count };
      }
    }
    return undefined;
  }

  /** Redeliveries and redrives first, then the stream from the cursor. */
  #nextEntry(): Entry | undefined {
    const ready = this.#ready.shift();
    if (ready) return ready;
    const filter = this.declaration.filterSubject;
    while (this.#cursor <= this.stream.lastSeq) {
      const message = this.stream.at(this.#cursor++)!;
      if (filter !== undefined && !subjectMatches(filter, message.subject)) continue;
      const entry = new Entry(message, false);
      if (this.#claim(entry)) return entry;
    }
    return undefined;
  }

  /** Gives the entry its key, or queues it behind the key's holder; true when it may go out now. */
  #claim(entry: Entry): boolean {
    const keyOf = this.declaration.orderingKey;
    if (!keyOf) return true;
    let key: string | undefined;
    try {
      key = keyOf(entry);
    } catch {
      key = undefined; // a key function that throws orders nothing
    }
    entry.key = key;
    if (key === undefined) return true;
    if (!this.#keyHolder.has(key)) {
      this.#keyHolder.set(key, entry);
      return true;
    }
    const queue = this.#waiting.get(key) ?? [];
    let at = queue.length;
    while (at > 0 && queue[at - 1]!.message.seq > entry.message.seq) at--;
    queue.splice(at, 0, entry);
    this.#waiting.set(key, queue);
    return false;
  }

  #release(entry: Entry): void {
    const key = entry.key;
    if (key === undefined || this.#keyHolder.get(key) !== entry) return;
    this.#keyHolder.delete(key);
    const queue = this.#waiting.get(key);
    const next = queue?.shift();
    if (queue?.length === 0) this.#waiting.delete(key);
    if (next) {
      this.#keyHolder.set(key, next);
      this.#ready.push(next);
    }
  }

  #handOut(entry: Entry, subscriber: DurableSubscriber): void {
    entry.deliveries++;
    const delivery = new BrokerDelivery(this, entry, entry.deliveries, subscriber);
    entry.current = delivery;
    this.#inFlight.add(entry);
    this.#held.set(subscriber, (this.#held.get(subscriber) ?? 0) + 1);
    this.#arm(entry);
    subscriber.deliver(delivery);
  }

  #arm(entry: Entry): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.#expire(entry), this.declaration.ackWaitMs);
  }

  /** Not settled within the ack wait: taken back and handed out again. */
  #expire(entry: Entry): void {
    const delivery = entry.current;
    if (!delivery) return;
    this.#takeBack(entry, delivery);
    this.#retry(entry, 0);
  }

  #takeBack(entry: Entry, delivery: BrokerDelivery): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.current = undefined;
    this.#inFlight.delete(entry);
    const held = this.#held.get(delivery.subscriber);
    if (held !== undefined) this.#held.set(delivery.subscriber, held - 1);
    if (!this.#subscribers.includes(delivery.subscriber)) this.#held.delete(delivery.subscriber);
  }

  #retry(entry: Entry, delayMs: number): void {
    if (entry.deliveries >= this.declaration.maxDeliver) {
      // The broker's cap (above the runtime's maxDeliver): never delivered again.
      this.#release(entry);
    } else if (delayMs <= 0) {
      this.#ready.push(entry);
    } else {
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        this.#ready.push(entry);
        this.dispatch();
      }, delayMs);
    }
    this.dispatch();
  }

  settle(delivery: BrokerDelivery, outcome: 'ack' | 'term' | 'nak', delayMs: number): void {
    const entry = delivery.entry;
    if (entry.current !== delivery || !delivery.subscriber.connected || !this.broker.available) return;
    this.#takeBack(entry, delivery);
    if (outcome === 'nak') return this.#retry(entry, delayMs);
    this.#release(entry);
    this.dispatch();
  }

  working(delivery: BrokerDelivery): void {
    const entry = delivery.entry;
    if (entry.current !== delivery || !delivery.subscriber.connected || !this.broker.available) return;
    this.#arm(entry);
  }
}

/** A request on the in-memory bus: the JSON body and the headers that carry correlation and trace. */
export interface BusRequest {
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** An endpoint's answer: the JSON body, and `status` for an error answer. */
export interface BusReply {
  readonly body: string;
  readonly status?: number;
}

/** One instance serving an endpoint subject. */
export interface EndpointBinding {
  /** The answer, or `undefined` when none will come (the instance crashed meanwhile). */
  answer(request: BusRequest): Promise<BusReply | undefined>;
}

/** One fan-out listener. */
export interface ListenerBinding {
  readonly subject: string;
  deliver(subject: string, headers: HeaderEntries, body: Uint8Array): void;
}

/**
 * An in-process broker: streams, durable consumers, request-reply endpoints, fan-out listeners and
 * the dead letters, shared by every {@link MemoryTransport} connected to it (one per simulated
 * process). Nothing survives the object: it is a test double of a broker, not a store.
 *
 * {@link down} simulates an outage: publishes, dead-letter operations and provisioning reject with
 * {@link BrokerUnavailableError}, deliveries stop, settlements are lost (the messages come back after
 * their ack wait), requests wait for {@link up} until their timeout, broadcasts are dropped.
 */
export class MemoryBroker {
  readonly name: string;
  readonly deadLetters: MemoryDeadLetters;
  readonly #streams = new Map<string, MemoryStream>();
  readonly #durables = new Map<string, Durable>();
  /** Redrives of a consumer whose durable does not exist yet. */
  readonly #redrives = new Map<string, StoredMessage[]>();
  readonly #endpoints = new Map<string, { bindings: EndpointBinding[]; turn: number }>();
  readonly #listeners = new Set<ListenerBinding>();
  #available = true;
  #upWaiters: (() => void)[] = [];

  constructor(options: { name?: string } = {}) {
    this.name = options.name ?? 'memory';
    this.deadLetters = new MemoryDeadLetters(this);
  }

  get available(): boolean {
    return this.#available;
  }

  /** Takes the broker down (see the class comment) until {@link up}. */
  down(): void {
    this.#available = false;
  }

  /** Brings the broker back: deliveries resume, waiting requests go out. */
  up(): void {
    if (this.#available) return;
    this.#available = true;
    for (const resolve of this.#upWaiters.splice(0)) resolve();
    for (const durable of this.#durables.values()) durable.dispatch();
  }

  /** Resolves when the broker is available (at once when it is). */
  whenAvailable(): Promise<void> {
    if (this.#available) return Promise.resolve();
    return new Promise((resolve) => this.#upWaiters.push(resolve));
  }

  /** The error a client of this broker raises while it is down. */
  unavailable(what: string): BrokerUnavailableError {
    return new BrokerUnavailableError(this.name, `${what}: broker ${this.name} is unavailable`);
  }

  #ensureUp(what: string): void {
    if (!this.#available) throw this.unavailable(what);
  }

  /** Creates the stream or updates its subjects and limits; `storage` cannot change in place. */
  provision(declaration: StreamDeclaration): void {
    this.#ensureUp(`provision ${declaration.name}`);
    for (const other of this.#streams.values()) {
      if (other.declaration.name === declaration.name) continue;
      for (const subject of declaration.subjects) {
        const clash = other.declaration.subjects.find((s) => patternsOverlap(s, subject));
        if (clash !== undefined) {
          throw new ProvisioningError(
            declaration.name,
            `stream ${declaration.name}: subject ${subject} overlaps ${clash} of stream ${other.declaration.name}`,
          );
        }
      }
    }
    const current = this.#streams.get(declaration.name);
    if (!current) {
      this.#streams.set(declaration.name, new MemoryStream(declaration));
      return;
    }
    const was = current.declaration.storage ?? 'file';
    const wanted = declaration.storage ?? 'file';
    if (was !== wanted) {
      throw new ProvisioningError(
        declaration.name,
        `stream ${declaration.name}: storage is ${was}, declared ${wanted}; the server cannot change this in place (migrate to a new stream)`,
      );
    }
    current.declaration = declaration;
  }

  /**
   * Stores a message in the stream whose subjects cover `subject`. Returns the stored message, or the
   * earlier one with the same `msgId` within the stream's duplicate window (`duplicate: true`).
   */
  publish(
    subject: string,
    headers: HeaderEntries,
    body: Uint8Array,
    msgId: string,
    expectedLastSubjectSequence?: number,
  ): { stream: string; message: StoredMessage; duplicate: boolean } {
    this.#ensureUp(`publish to ${subject}`);
    const stream = [...this.#streams.values()].find((s) =>
      s.declaration.subjects.some((pattern) => subjectMatches(pattern, subject)),
    );
    if (!stream) throw new PublishError(subject, 'no stream captures the subject');
    const name = stream.declaration.name;
    const earlier = stream.duplicateOf(msgId);
    if (earlier) return { stream: name, message: earlier, duplicate: true };
    const message = stream.append(subject, headers, body, msgId, expectedLastSubjectSequence);
    for (const durable of this.#durables.values()) {
      if (durable.declaration.stream === name) durable.dispatch();
    }
    return { stream: name, message, duplicate: false };
  }

  /**
   * Creates the durable, or updates its ack wait, delivery cap and ack-pending limit; its filter and
   * deliver policy cannot change ({@link ProvisioningError}, as on JetStream).
   */
  durable(declaration: DurableDeclaration): Durable {
    this.#ensureUp(`consumer ${declaration.name}`);
    const stream = this.#streams.get(declaration.stream);
    if (!stream) {
      throw new ProvisioningError(
        declaration.stream,
        `cannot create consumer ${declaration.name}: stream ${declaration.stream} not found`,
        { consumer: declaration.name },
      );
    }
    const key = `${declaration.stream}/${declaration.name}`;
    const current = this.#durables.get(key);
    if (!current) {
      const durable = new Durable(this, stream, declaration);
      this.#durables.set(key, durable);
      for (const message of this.#redrives.get(key) ?? []) durable.redrive(message);
      this.#redrives.delete(key);
      return durable;
    }
    const was = current.declaration;
    const immutable = [
      (was.filterSubject ?? '') !== (declaration.filterSubject ?? '') && 'filter_subject',
      (was.deliverPolicy ?? 'all') !== (declaration.deliverPolicy ?? 'all') && 'deliver_policy',
    ].filter(Boolean);
    if (immutable.length > 0) {
      throw new ProvisioningError(
        declaration.stream,
        `consumer ${declaration.name}: cannot change ${immutable.join(', ')} of an existing durable (delete it or use a new name)`,
        { consumer: declaration.name },
      );
    }
    current.declaration = { ...declaration, orderingKey: declaration.orderingKey ?? was.orderingKey };
    return current;
  }

  /** Sends a redriven message to the consumer `stream/consumer` (its durable, now or once it exists). */
  redrive(stream: string, consumer: string, message: StoredMessage): void {
    const key = `${stream}/${consumer}`;
    const durable = this.#durables.get(key);
    if (durable) return durable.redrive(message);
    this.#redrives.set(key, [...(this.#redrives.get(key) ?? []), message]);
  }

  /** Every message of a stream, in order (for tests and inspection). */
  messages(stream: string): readonly StoredMessage[] {
    return this.#streams.get(stream)?.messages ?? [];
  }

  serve(subject: string, binding: EndpointBinding): () => void {
    const served = this.#endpoints.get(subject) ?? { bindings: [], turn: 0 };
    served.bindings.push(binding);
    this.#endpoints.set(subject, served);
    return () => {
      const at = served.bindings.indexOf(binding);
      if (at !== -1) served.bindings.splice(at, 1);
      if (served.bindings.length === 0 && this.#endpoints.get(subject) === served)
        this.#endpoints.delete(subject);
    };
  }

  /** The next instance serving `subject` (round robin), or `undefined` when nobody does. */
  responder(subject: string): EndpointBinding | undefined {
    const served = this.#endpoints.get(subject);
    if (!served || served.bindings.length === 0) return undefined;
    const binding = served.bindings[served.turn % served.bindings.length];
    served.turn = (served.turn + 1) % served.bindings.length;
    return binding;
  }

  listen(binding: ListenerBinding): () => void {
    this.#listeners.add(binding);
    return () => this.#listeners.delete(binding);
  }

  /** Fan-out to every listener whose subject pattern covers `subject`; dropped while down. */
  broadcast(subject: string, headers: HeaderEntries, body: Uint8Array): void {
    if (!this.#available) return;
    for (const listener of this.#listeners) {
      if (subjectMatches(listener.subject, subject)) listener.deliver(subject, headers, body);
    }
  }

  /** Fails with the store's unavailable error while the broker is down. */
  checkDeadLetters(): void {
    if (!this.#available) {
      throw new StoreUnavailableError(DeadLetterTopology.stream, undefined, {
        cause: this.unavailable('dead letters'),
      });
    }
  }
}

/** Headers a dead letter does not copy: the dead-letter ones, and server directives on publish. */
function isCopied(name: string): boolean {
  const lower = name.toLowerCase();
  return (
    !lower.startsWith('orderflow-dl-') &&
    lower !== ORIGINAL_SUBJECT_HEADER.toLowerCase() &&
    lower !== ORIGINAL_SEQUENCE_HEADER.toLowerCase() &&
    lower !== Header.MsgId.toLowerCase() &&
    !lower.startsWith('nats-expected-') &&
    lower !== 'nats-rollup'
  );
}

/**
 * {@link DeadLetterStore} of a {@link MemoryBroker}: one list for every consumer, in arrival order,
 * each letter with a sequence of its own. A redrive reaches only the consumer that failed the message.
 */
export class MemoryDeadLetters implements DeadLetterStore {
  readonly #letters = new Map<number, DeadLetter>();
  /** Keys of every letter written (`deadLetterKey`): a repeated write keeps the first. */
  readonly #written = new Set<string>();
  #seq = 0;

  constructor(private readonly broker: MemoryBroker) {}

  async write(delivery: DeadLetterSource, error: unknown): Promise<void> {
    this.broker.checkDeadLetters();
    const key = deadLetterKey(delivery);
    if (this.#written.has(key)) return;
    this.#written.add(key);
    const headers: Record<string, string> = {};
    for (const [name, value] of delivery.headerEntries()) {
      if (isCopied(name) && !(name in headers)) headers[name] = value;
    }
    const reason = error instanceof Error ? error.message : String(error);
    const code = (error as { code?: unknown })?.code;
    const seq = ++this.#seq;
    this.#letters.set(seq, {
      seq,
      stream: delivery.stream,
      consumer: delivery.consumer,
      subject: delivery.subject,
      streamSequence: delivery.streamSequence,
      deliveries: delivery.deliveryCount,
      reason: reason.replace(/[\r\n]+/g, ' ').slice(0, 2_000),
      code: typeof code === 'string' ? code : 'HANDLER_FAILED',
      deadLetteredAt: new Date().toISOString(),
      headers,
      body: Uint8Array.from(delivery.body),
    });
  }

  async list(filter: { stream?: string; consumer?: string; limit?: number } = {}): Promise<DeadLetter[]> {
    this.broker.checkDeadLetters();
    return [...this.#letters.values()]
      .filter(
        (l) =>
          (filter.stream === undefined || l.stream === filter.stream) &&
          (filter.consumer === undefined || l.consumer === filter.consumer),
      )
      .slice(0, filter.limit ?? 1_000);
  }

  async get(seq: number): Promise<DeadLetter | undefined> {
    this.broker.checkDeadLetters();
    return this.#letters.get(seq);
  }

  async redrive(seq: number): Promise<void> {
    const letter = this.#take(seq);
    const headers = Object.entries(letter.headers).map(([name, value]) => [name, value] as const);
    this.broker.redrive(letter.stream, letter.consumer, {
      seq: letter.streamSequence,
      subject: letter.subject,
      headers,
      body: letter.body,
      msgId: `redrive:${seq}`,
    });
  }

  async redriveAll(filter: { stream?: string; consumer?: string } = {}): Promise<number> {
    const letters = await this.list(filter);
    for (const letter of letters) await this.redrive(letter.seq);
    return letters.length;
  }

  async discard(seq: number): Promise<void> {
    this.#take(seq);
  }

  #take(seq: number): DeadLetter {
    this.broker.checkDeadLetters();
    const letter = this.#letters.get(seq);
    if (!letter) throw new DeadLetterError('DEAD_LETTER_NOT_FOUND', `no dead letter with sequence ${seq}`);
    this.#letters.delete(seq);
    return letter;
  }
}
