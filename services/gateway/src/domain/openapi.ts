import {
  CancelOrderReply,
  CustomerRegisteredReply,
  CustomerReply,
  OrderPage,
  OrderView,
  PlaceOrderReply,
} from '@orderflow/contracts';
import type { TSchema } from '@sinclair/typebox';
import { OPERATOR_SCOPE } from './access.ts';

/** TypeBox schemas are JSON Schema; this strips TypeBox's symbol keys (JSON drops them anyway). */
const json = (schema: TSchema): unknown => JSON.parse(JSON.stringify(schema));

const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', description: 'Stable machine-readable reason' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { field: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};

const problems = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      String(status),
      {
        description: 'Problem (RFC 7807)',
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      },
    ]),
  );
const ok = (description: string, schema: unknown, type = 'application/json') => ({
  description,
  content: { [type]: { schema } },
});
const healthSchema = {
  type: 'object',
  required: ['status'],
  properties: { status: { const: 'ok' } },
};
const readySchema = (ready: boolean) => ({
  type: 'object',
  required: ['ready'],
  properties: { ready: { const: ready } },
});
const idSchema = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' };

/**
 * Who may call an operation (every operation states it; the gateway's guards do the same, and the
 * authorization matrix test checks one against the other): `[]` anyone; `bearer` with no scope a
 * customer (their own resources only) or an operator; `bearer` with the operator scope operators only.
 */
const security = {
  public: [] as const,
  authenticated: [{ bearer: [] }],
  operator: [{ bearer: [OPERATOR_SCOPE] }],
};
const refused = (...statuses: number[]) => problems(...statuses);
const idParam = [{ name: 'id', in: 'path', required: true, schema: idSchema }];

/** The OpenAPI 3.1 document of the gateway, generated from the contract schemas. */
export function openApiDocument(bodies: {
  PlaceOrderBody: TSchema;
  RegisterCustomerBody: TSchema;
  /** Whether `POST /customers` is public and answers a token (the gateway has a development issuer). */
  signUpIsPublic: boolean;
}) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Orderflow gateway',
      version: '0.1.0',
      description:
        'Every error is application/problem+json (RFC 7807) with a stable `code`. A method a path does not ' +
        'serve is answered 405 METHOD_NOT_ALLOWED with an `Allow` header; an unknown path 404 NOT_FOUND.',
    },
    security: security.authenticated,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            "A JWT of the configured issuer (development: the token `POST /customers` answers, or `orderflow token --operator`). Checked: signature by the issuer's keys, the pinned algorithms, iss, aud, exp. `sub` is the customer id; the `" +
            OPERATOR_SCOPE +
            '` scope makes an operator.',
        },
      },
      schemas: {
        Problem: problemSchema,
        PlaceOrder: json(bodies.PlaceOrderBody),
        PlaceOrderReply: json(PlaceOrderReply.schema),
        RegisterCustomer: json(bodies.RegisterCustomerBody),
        CustomerRegistered: {
          ...(json(CustomerRegisteredReply.schema) as Record<string, unknown>),
          properties: {
            ...(json(CustomerRegisteredReply.schema) as { properties: Record<string, unknown> }).properties,
            token: {
              type: 'string',
              description:
                "Bearer token of the new customer (development issuer only); send it as 'Authorization: Bearer <token>'",
            },
          },
        },
        Customer: json(CustomerReply.schema),
        OrderView: json(OrderView),
        CancelOrderReply: json(CancelOrderReply.schema),
      },
    },
    paths: {
      '/customers': {
        post: {
          summary: bodies.signUpIsPublic
            ? 'Sign up: register a customer and get their token'
            : 'Register a customer (operators: the identity provider issues the tokens)',
          security: bodies.signUpIsPublic ? security.public : security.operator,
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/RegisterCustomer' } } },
          },
          responses: {
            '201': {
              ...ok('Registered (with `token` when signing up)', {
                $ref: '#/components/schemas/CustomerRegistered',
              }),
              headers: {
                Location: { description: 'The customer: `/customers/{id}`', schema: { type: 'string' } },
              },
            },
            ...problems(400, 409, 413, 415, 429, 503),
            ...(bodies.signUpIsPublic ? {} : refused(401, 403)),
          },
        },
      },
      '/customers/{id}': {
        get: {
          summary: 'A customer as registered (a customer: only themself; another is a 404)',
          security: security.authenticated,
          parameters: idParam,
          responses: {
            '200': ok('The customer', { $ref: '#/components/schemas/Customer' }),
            ...problems(400, 401, 404, 503),
          },
        },
      },
      '/orders': {
        post: {
          summary: "Place an order (idempotent by the customer's Idempotency-Key)",
          security: security.authenticated,
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: true,
              schema: { type: 'string', maxLength: 200 },
            },
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/PlaceOrder' } } },
          },
          responses: {
            '201': ok('Placed (or the same order again)', { $ref: '#/components/schemas/PlaceOrderReply' }),
            ...problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
          },
        },
      },
      '/orders/{id}': {
        get: {
          summary: 'Status view of an order',
          security: security.authenticated,
          parameters: idParam,
          responses: {
            '200': ok('The order', { $ref: '#/components/schemas/OrderView' }),
            ...problems(400, 401, 404, 503),
          },
        },
      },
      '/orders/{id}/events': {
        get: {
          summary:
            "The order's whole history as CloudEvents: every service's events about it, in stream order",
          description:
            'Events of orders/payments/invoices/deliveries.<id>, each a structured CloudEvent whose `source` is ' +
            'the producing service (`orderflow/payment-processor`…) and whose `sequence` extension is its ' +
            '1-based position in this history.',
          security: security.authenticated,
          parameters: idParam,
          responses: {
            '200': ok(
              'CloudEvents (structured JSON)',
              { type: 'array', items: { type: 'object' } },
              'application/cloudevents-batch+json',
            ),
            ...problems(400, 401, 404, 503),
          },
        },
      },
      '/orders/{id}/invoice.pdf': {
        get: {
          summary: 'The invoice PDF (404 until it exists)',
          security: security.authenticated,
          parameters: idParam,
          responses: {
            '200': ok('PDF', { type: 'string', format: 'binary' }, 'application/pdf'),
            ...problems(400, 401, 404, 503),
          },
        },
      },
      '/orders/{id}/credit-note.pdf': {
        get: {
          summary:
            'The credit note PDF that cancels the invoice of a refunded order (404 when there is none)',
          security: security.authenticated,
          description:
            'An invoiced order that is refunded (cancelled after payment) gets a credit note with its own ' +
            'gapless number series (`CN-<year>-<sequence>`, `creditNoteNumber` on the order view). 404 ' +
            '`CREDIT_NOTE_NOT_FOUND` for an order without one: not refunded, refunded before it was ' +
            'invoiced, or not issued yet.',
          parameters: idParam,
          responses: {
            '200': ok('PDF', { type: 'string', format: 'binary' }, 'application/pdf'),
            ...problems(400, 404, 503),
          },
        },
      },
      '/orders/{id}/cancel': {
        post: {
          summary: 'Ask to cancel an order (until a courier is assigned)',
          security: security.authenticated,
          parameters: idParam,
          responses: {
            '202': ok('Cancellation accepted', { $ref: '#/components/schemas/CancelOrderReply' }),
            ...problems(400, 401, 404, 409, 429, 503),
          },
        },
      },
      '/status-changes': {
        get: {
          summary:
            "Live status changes of the caller's orders (an operator's: all; server-sent events; best effort, nothing replayed)",
          security: security.authenticated,
          description:
            'One `status-changed` event per change, its data the `order.status-changed` notification of ' +
            'order-status as JSON (orderId, customerId, status, previousStatus, cause, version, changedAt). A reconnecting ' +
            'client should reload the orders it shows: changes sent while it was away are not repeated.',
          parameters: [
            {
              name: 'orderId',
              in: 'query',
              required: false,
              description: 'Only these orders (repeat the parameter, at most 100); all orders when absent',
              schema: { type: 'array', maxItems: 100, items: idSchema },
              style: 'form',
              explode: true,
            },
          ],
          responses: {
            '200': ok(
              'An event stream (`event: status-changed`, `data: <JSON>`)',
              { type: 'string' },
              'text/event-stream',
            ),
            ...problems(400, 401, 429, 503),
          },
        },
      },
      '/': {
        get: {
          summary: 'The dashboard page',
          security: security.public,
          responses: { '200': ok('HTML', { type: 'string' }, 'text/html') },
        },
      },
      '/dashboard': {
        get: {
          summary: 'The dashboard page',
          security: security.public,
          responses: { '200': ok('HTML', { type: 'string' }, 'text/html') },
        },
      },
      '/dashboard/{file}': {
        get: {
          summary: "The dashboard's script and style sheet",
          security: security.public,
          parameters: [
            {
              name: 'file',
              in: 'path',
              required: true,
              schema: { enum: ['dashboard.mjs', 'dashboard.css'] },
            },
          ],
          responses: { '200': { description: 'the file' }, ...problems(404) },
        },
      },
      '/asyncapi.json': {
        get: {
          summary: 'The messaging API of this deployment (AsyncAPI 3.0)',
          security: security.public,
          responses: { '200': ok('AsyncAPI 3.0', { type: 'object' }) },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          security: security.public,
          responses: { '200': ok('OpenAPI 3.1', { type: 'object' }) },
        },
      },
      '/healthz': {
        get: {
          summary: 'Alive: the process answers',
          security: security.public,
          responses: { '200': ok('Alive', healthSchema) },
        },
      },
      '/readyz': {
        get: {
          summary: 'Ready to serve requests (200) or not (503)',
          security: security.public,
          responses: {
            '200': ok('Ready', readySchema(true)),
            '503': ok('Not ready', readySchema(false)),
          },
        },
      },
      ...consolePaths(),
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (operators)',
          security: security.operator,
          responses: {
            ...refused(401, 403),
            '200': ok(
              'Prometheus text exposition format 0.0.4',
              { type: 'string' },
              'text/plain; version=0.0.4; charset=utf-8',
            ),
          },
        },
      },
    },
  };
}

/** The operations console's API (`console.ts`): operators only, JSON or server-sent events. */
function consolePaths() {
  const anyJson = { type: 'object' };
  const events = (description: string) => ok(description, { type: 'string' }, 'text/event-stream');
  const op = (
    summary: string,
    response: ReturnType<typeof ok>,
    more: object = {},
    errors: number[] = [],
  ) => ({
    summary,
    security: security.operator,
    ...more,
    responses: { ...refused(401, 403, ...errors), '200': response },
  });
  const seqParam = [{ name: 'seq', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } }];
  const query = (name: string, schema: object) => ({ name, in: 'query', required: false, schema });
  return {
    '/console/topology': {
      get: op(
        'Services (declared, with their $SRV replicas and health), streams, consumers with pending/ack-pending/lag',
        ok('The topology', anyJson),
        {},
        [503],
      ),
    },
    '/console/consumers/live': {
      get: op('Every consumer position, as server-sent events `consumers` every 2 s', events('Event stream')),
    },
    '/console/orders': {
      get: op(
        'A page of every order (order.list), newest first',
        ok('The page', json(OrderPage)),
        {
          parameters: [
            query('status', { type: 'string' }),
            query('offset', { type: 'integer', minimum: 0 }),
            query('limit', { type: 'integer', minimum: 1, maximum: 100 }),
          ],
        },
        [400, 503],
      ),
    },
    '/console/orders/{id}/timeline': {
      get: op(
        "The order's timeline across services with trace ids (and links), and its dead letters",
        ok('The timeline', anyJson),
        { parameters: idParam },
        [400, 404, 503],
      ),
    },
    '/console/dead-letters': {
      get: op('Dead letters with reason and payload', ok('The dead letters', anyJson), {}, [400, 503]),
    },
    '/console/dead-letters/redrive': {
      post: op(
        'Redrive every dead letter; progress as server-sent events `progress` {done,total}, then `done`',
        events('Event stream'),
      ),
    },
    '/console/dead-letters/{seq}/redrive': {
      post: op(
        'Redrive one dead letter to its consumer',
        ok('Redriven', anyJson),
        { parameters: seqParam },
        [400, 404],
      ),
    },
    '/console/dead-letters/{seq}/discard': {
      post: op('Discard one dead letter', ok('Discarded', anyJson), { parameters: seqParam }, [400, 404]),
    },
    '/console/mailbox': {
      get: op("The development SMTP sink's mails", ok('As the sink answers them', anyJson), {}, [502, 503]),
    },
    '/console/ledger': {
      get: op("The fake PSP's ledger", ok('As the PSP answers it', anyJson), {}, [502, 503]),
    },
  };
}
