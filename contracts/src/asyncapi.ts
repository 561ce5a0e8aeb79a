import type { MessageContract } from '@orderflow/messaging';
import { DeadLetterHeader, Header } from '@orderflow/messaging';
import { EventCatalog } from './catalog.ts';
import {
  EVENT_PRODUCERS,
  EVENT_SOURCES,
  ORDERING_SERVICES,
  OrderingTopology,
  type EventSource,
  type OrderingService,
} from './topology.ts';

/** Queue group of every request-reply endpoint (the toolkit's `RpcServer` default). */
export const ENDPOINT_QUEUE_GROUP = 'q';

type Json = Record<string, unknown>;
const ref = (path: string): Json => ({ $ref: `#/${path}` });

/** TypeBox schemas are JSON Schema plus symbol-keyed metadata: the JSON round trip keeps the schema only. */
const jsonSchema = (contract: MessageContract): Json => JSON.parse(JSON.stringify(contract.schema)) as Json;

/** The CloudEvents 1.0 binary-mode headers of a message of `type` (what `envelopeHeaders` writes). */
function cloudEventHeaders(type: string): Json {
  return {
    type: 'object',
    required: [Header.SpecVersion, Header.Id, Header.Type, Header.Source, Header.MsgId],
    properties: {
      [Header.SpecVersion]: { type: 'string', const: '1.0', description: 'CloudEvents spec version' },
      [Header.Id]: { type: 'string', description: 'Event id; also the Nats-Msg-Id (de-duplication)' },
      [Header.Type]: { type: 'string', const: type, description: '<name>.v<version> of the contract' },
      [Header.Source]: { type: 'string', description: 'Producer, orderflow/<service>' },
      [Header.Subject]: {
        type: 'string',
        description: 'What the event is about (order or customer id); the ordering key',
      },
      [Header.Time]: { type: 'string', format: 'date-time' },
      [Header.DataContentType]: { type: 'string', const: 'application/json' },
      [Header.CorrelationId]: { type: 'string', description: 'Shared by every message of one business flow' },
      [Header.CausationId]: {
        type: 'string',
        description: 'ce-id of the message whose handling produced this one',
      },
      [Header.TraceParent]: {
        type: 'string',
        pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$',
        description: 'W3C trace context of the producer span',
      },
      [Header.MsgId]: { type: 'string', description: 'JetStream de-duplication id (= ce-id)' },
    },
  };
}

/** Headers of a request to an endpoint: correlation and trace of the caller. */
const requestHeaders: Json = {
  type: 'object',
  properties: {
    [Header.CorrelationId]: { type: 'string' },
    [Header.TraceParent]: { type: 'string', pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$' },
  },
};

/** Headers of an error reply (NATS micro convention). */
const errorReplyHeaders: Json = {
  type: 'object',
  required: ['Nats-Service-Error', 'Nats-Service-Error-Code'],
  properties: {
    'Nats-Service-Error': { type: 'string' },
    'Nats-Service-Error-Code': { type: 'string', description: 'HTTP-like status: 400, 404, 409, 500, 503' },
  },
};

const messageId = (contract: MessageContract): string => contract.type;

/** The service a durable consumer belongs to: durables are named `<service>-<source>`. */
function serviceOf(durable: string): OrderingService | undefined {
  return [...ORDERING_SERVICES]
    .sort((a, b) => b.length - a.length)
    .find((service) => durable.startsWith(`${service}-`));
}

/** Every durable consumer binding the topology declares (nested in `topology.consumers`). */
function consumerBindings(topology: OrderingTopology) {
  const out: { name: string; stream: string; filterSubject?: string }[] = [];
  const walk = (value: unknown): void => {
    if (typeof value !== 'object' || value === null) return;
    if ('name' in value && 'stream' in value && typeof value.name === 'string') {
      out.push(value as { name: string; stream: string; filterSubject?: string });
      return;
    }
    for (const child of Object.values(value)) walk(child);
  };
  walk(topology.consumers);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The AsyncAPI 3.0 document of the ordering context, generated from the contracts (payload JSON
 * Schemas), the topology (subjects, stream, durables, endpoints) and {@link EventCatalog} (who
 * publishes and serves what): channels are subjects, each service's operations send or receive, every
 * stored event carries its CloudEvents headers, and NATS bindings name the queue groups (endpoints)
 * and durable consumers (JetStream, `x-jetstream`). Deterministic: the same inputs give the same JSON.
 */
export function asyncApiDocument(topology: OrderingTopology, options: { version?: string } = {}): Json {
  const channels: Json = {};
  const operations: Json = {};
  const messages: Json = {};
  const schemas: Json = {};

  const addMessage = (contract: MessageContract, headers: Json | undefined, extra: Json = {}): Json => {
    const id = messageId(contract);
    schemas[id] = jsonSchema(contract);
    messages[id] = {
      name: contract.type,
      title: `${contract.name} (v${contract.version})`,
      ...(contract.description !== undefined && { summary: contract.description }),
      contentType: 'application/json',
      ...(headers && { headers }),
      payload: ref(`components/schemas/${id}`),
      ...extra,
    };
    return ref(`components/messages/${id}`);
  };

  // Stored events: one channel per source subject of the ORDERING stream.
  const sourceChannel = (source: EventSource): string => `events-${source}`;
  for (const source of EVENT_SOURCES) {
    const key = EventCatalog.subjectKeys[source];
    const { service: producer, events } = EVENT_PRODUCERS[source];
    const wildcard = topology.filters[source];
    const channelMessages: Json = {};
    for (const event of events) {
      channelMessages[messageId(event)] = addMessage(event, cloudEventHeaders(event.type), {
        correlationId: { location: `$message.header#/${Header.CorrelationId}` },
      });
    }
    channels[sourceChannel(source)] = {
      address: wildcard.replace(/\*$/, `{${key}}`),
      title: `${source} events`,
      description: `Events of ${source}, one subject per ${key}, stored in the ${topology.stream} stream; published by ${producer}.`,
      parameters: { [key]: { description: `The ${key} (ce-subject) the events are about` } },
      messages: channelMessages,
      'x-jetstream': { stream: topology.stream },
    };
    operations[`${producer}.publish.${source}`] = {
      action: 'send',
      channel: ref(`channels/${sourceChannel(source)}`),
      title: `${producer} publishes ${source} events`,
      summary: 'JetStream publish, de-duplicated by Nats-Msg-Id = ce-id; payload validated before sending',
      messages: Object.keys(channelMessages).map((id) =>
        ref(`channels/${sourceChannel(source)}/messages/${id}`),
      ),
      'x-service': producer,
    };
  }

  // Durable consumers: each receives every message of its filter (the whole stream for `all`).
  for (const consumer of consumerBindings(topology)) {
    const service = serviceOf(consumer.name) ?? consumer.name;
    const sources = EVENT_SOURCES.filter(
      (source) => consumer.filterSubject === undefined || consumer.filterSubject === topology.filters[source],
    );
    for (const source of sources) {
      operations[`${consumer.name}.receive.${source}`] = {
        action: 'receive',
        channel: ref(`channels/${sourceChannel(source)}`),
        title: `${service} consumes ${source} events (durable ${consumer.name})`,
        summary:
          'Durable pull consumer, explicit ack, shared by every replica (queue-group semantics), in order per ce-subject; paced retry, then dead letter',
        bindings: { nats: { queue: consumer.name, bindingVersion: '0.1.0' } },
        'x-service': service,
        'x-jetstream': {
          stream: consumer.stream,
          durable: consumer.name,
          ...(consumer.filterSubject !== undefined && { filterSubject: consumer.filterSubject }),
          ackPolicy: 'explicit',
          orderingKey: Header.Subject,
          deadLetterSubject: `deadletter.${consumer.stream}.${consumer.name}`,
        },
      };
    }
  }

  // Request-reply endpoints: the gateway requests, the serving service replies (queue group).
  const errorReply = (id: string): Json => {
    messages[id] = {
      name: 'error',
      title: 'Error reply',
      contentType: 'application/json',
      headers: errorReplyHeaders,
      payload: ref('components/schemas/EndpointError'),
    };
    return ref(`components/messages/${id}`);
  };
  schemas.EndpointError = {
    type: 'object',
    required: ['code', 'message'],
    properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
  };
  const endpointKeys = Object.keys(
    EventCatalog.endpointServers,
  ) as (keyof typeof EventCatalog.endpointServers)[];
  for (const key of [...endpointKeys].sort()) {
    const endpoint = topology.endpoints[key];
    const server = EventCatalog.endpointServers[key];
    const channel = `rpc-${endpoint.name}`;
    const replyChannel = `${channel}-reply`;
    channels[channel] = {
      address: endpoint.subject,
      title: `${endpoint.name} requests`,
      description: `Request-reply endpoint of ${server} (core NATS, outside every stream).`,
      messages: { request: addMessage(endpoint.request, requestHeaders) },
    };
    channels[replyChannel] = {
      address: null,
      title: `${endpoint.name} replies`,
      description: 'The reply inbox the requester names.',
      messages: { reply: addMessage(endpoint.response, undefined), error: errorReply('EndpointErrorReply') },
    };
    const reply = {
      channel: ref(`channels/${replyChannel}`),
      address: {
        location: '$message.header#/reply_to',
        description: 'The NATS reply subject of the request',
      },
      messages: [
        ref(`channels/${replyChannel}/messages/reply`),
        ref(`channels/${replyChannel}/messages/error`),
      ],
    };
    operations[`${server}.serve.${endpoint.name}`] = {
      action: 'receive',
      channel: ref(`channels/${channel}`),
      title: `${server} answers ${endpoint.name}`,
      bindings: { nats: { queue: ENDPOINT_QUEUE_GROUP, bindingVersion: '0.1.0' } },
      messages: [ref(`channels/${channel}/messages/request`)],
      reply,
      'x-service': server,
    };
    operations[`gateway.request.${endpoint.name}`] = {
      action: 'send',
      channel: ref(`channels/${channel}`),
      title: `gateway requests ${endpoint.name}`,
      messages: [ref(`channels/${channel}/messages/request`)],
      reply,
      'x-service': 'gateway',
    };
  }

  // Fan-out notifications (core NATS, best effort).
  const statusChanged = EventCatalog.notifications.statusChanged;
  channels['notify-status-changed'] = {
    address: topology.notifications.statusChangedAll.replace(/\*$/, '{orderId}'),
    title: 'order status changes',
    description: 'Core NATS fan-out, not stored: every listener connected at the time gets a copy.',
    parameters: { orderId: { description: 'The order whose status changed' } },
    messages: {
      [messageId(statusChanged.event)]: addMessage(
        statusChanged.event,
        cloudEventHeaders(statusChanged.event.type),
      ),
    },
  };
  operations[`${statusChanged.producer}.notify.status-changed`] = {
    action: 'send',
    channel: ref('channels/notify-status-changed'),
    'x-service': statusChanged.producer,
  };
  for (const listener of statusChanged.listeners) {
    operations[`${listener}.listen.status-changed`] = {
      action: 'receive',
      channel: ref('channels/notify-status-changed'),
      'x-service': listener,
    };
  }

  // Dead letters: the original message and why it could not be handled.
  channels['dead-letters'] = {
    address: 'deadletter.{stream}.{consumer}',
    title: 'dead letters',
    description:
      'The DEADLETTER stream: the original headers and body, plus why the consumer gave up (redrive: redrive.<stream>.<consumer>).',
    parameters: {
      stream: { description: 'Stream of the original message' },
      consumer: { description: 'Durable that gave up' },
    },
    messages: {
      deadLetter: {
        name: 'dead-letter',
        title: 'Dead letter',
        contentType: 'application/json',
        headers: {
          type: 'object',
          required: [DeadLetterHeader.Reason, DeadLetterHeader.Code, DeadLetterHeader.Consumer],
          properties: Object.fromEntries(Object.values(DeadLetterHeader).map((h) => [h, { type: 'string' }])),
        },
        payload: { description: 'The original body, byte for byte' },
      },
    },
  };

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Orderflow ordering context',
      version: options.version ?? '0.1.0',
      description:
        'Events, commands and request-reply endpoints of Orderflow on NATS. Generated from the contracts and the topology (npm run asyncapi); do not edit.',
    },
    defaultContentType: 'application/json',
    servers: {
      development: {
        host: '127.0.0.1:4222',
        protocol: 'nats',
        description: 'The private nats-server `orderflow up` starts (JetStream enabled)',
      },
    },
    channels,
    operations,
    components: { messages, schemas },
  };
}

/** The committed form of the production document (`docs/asyncapi.json`): 2-space JSON and a newline. */
export function asyncApiText(topology: OrderingTopology = OrderingTopology): string {
  return `${JSON.stringify(asyncApiDocument(topology), null, 2)}\n`;
}
