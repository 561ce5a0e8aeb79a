// Tracing with the real OpenTelemetry SDK exporting to a real OTLP/HTTP receiver.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import {
  deferred,
  OtlpSpanKind,
  startNatsServer,
  startOtlpReceiver,
  uniqueName,
  waitFor,
  type NatsServer,
  type OtlpReceiver,
  type ReceivedSpan,
} from '@orderflow/testing';
import {
  defineCommand,
  defineEndpoint,
  defineEvent,
  MessagingError,
  on,
  runService,
  tracingSettingsFromEnv,
  type RunningService,
} from '../src/mod.ts';

const Ping = defineEvent({ name: 'tracing-test.pinged', schema: Type.Object({ n: Type.Integer() }) });
const Pong = defineEvent({ name: 'tracing-test.ponged', schema: Type.Object({ n: Type.Integer() }) });

describe('tracing settings from the standard OTEL_* variables', () => {
  test('off when no endpoint and no exporter is configured, or when disabled', () => {
    assert.equal(tracingSettingsFromEnv({}, { serviceName: 's' }), undefined);
    assert.equal(
      tracingSettingsFromEnv(
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' },
        { serviceName: 's' },
      ),
      undefined,
    );
    assert.equal(tracingSettingsFromEnv({ OTEL_TRACES_EXPORTER: 'none' }, { serviceName: 's' }), undefined);
  });

  test('the base endpoint gets /v1/traces, the per-signal one is used as it is; defaults follow the spec', () => {
    const base = tracingSettingsFromEnv(
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' },
      { serviceName: 'svc' },
    );
    assert.equal(base?.url, 'http://c:4318/v1/traces');
    assert.equal(base?.protocol, 'http/protobuf');
    assert.equal(base?.serviceName, 'svc');
    assert.deepEqual(base?.sampler, { kind: 'always_on', parentBased: true, ratio: 1 });
    const own = tracingSettingsFromEnv(
      {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/custom',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'renamed',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,team=a%20b',
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20x',
      },
      { serviceName: 'svc' },
    );
    assert.equal(own?.url, 'http://t:1/custom');
    assert.equal(own?.protocol, 'http/json');
    assert.equal(own?.serviceName, 'renamed');
    assert.deepEqual(own?.resourceAttributes, { 'deployment.environment.name': 'test', team: 'a b' });
    assert.deepEqual(own?.headers, { authorization: 'Bearer x' });
    assert.equal(
      tracingSettingsFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' }, { serviceName: 's' })?.url,
      'http://localhost:4318/v1/traces',
    );
  });

  test('every problem is reported at once, as a typed error', () => {
    assert.throws(
      () =>
        tracingSettingsFromEnv(
          {
            OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
            OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
            OTEL_TRACES_SAMPLER: 'traceidratio',
            OTEL_TRACES_SAMPLER_ARG: '2',
            OTEL_BSP_SCHEDULE_DELAY: 'soon',
          },
          { serviceName: 's' },
        ),
      (error: unknown) =>
        error instanceof MessagingError &&
        error.code === 'INVALID_CONFIG' &&
        /grpc/.test(error.message) &&
        /SAMPLER_ARG/.test(error.message) &&
        /OTEL_BSP_SCHEDULE_DELAY/.test(error.message),
    );
  });
});

describe('spans exported over OTLP/HTTP', () => {
  let server: NatsServer;
  let receiver: OtlpReceiver;
  before(async () => {
    server = await startNatsServer();
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
    await server.dispose();
  });

  /** A service whose request → publish → consume → publish → consume flow runs once; `done` when it did. */
  const service = async (
    protocol: 'http/json' | 'http/protobuf',
    stream: string,
  ): Promise<{ running: RunningService; done: Promise<void> }> => {
    const done = deferred();
    const Echo = defineEndpoint({
      name: 'echo',
      subject: `${stream}.rpc.echo`,
      request: defineCommand({ name: 'tracing-test.echo', schema: Type.Object({ n: Type.Integer() }) }),
      response: defineEvent({ name: 'tracing-test.echoed', schema: Type.Object({ n: Type.Integer() }) }),
    });
    const running = await runService(
      {
        name: 'tracing-test',
        version: '1.0.0',
        broker: { kind: 'nats', servers: server.url },
        handleSignals: false,
        logger: pino({ level: 'silent' }),
        streams: [{ name: stream, subjects: [`${stream}.events.>`] }],
        tracing: tracingSettingsFromEnv(
          {
            OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
            OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
            OTEL_BSP_SCHEDULE_DELAY: '50',
          },
          { serviceName: 'tracing-test' },
        ),
      },
      async ({ transport }) => {
        transport.serve(Echo, async ({ n }) => {
          await transport.publish(Ping, { n }, { subject: `${stream}.events.ping`, about: `o${n}` });
          return { n };
        });
        await transport.consume({
          name: 'pinger',
          stream,
          filterSubject: `${stream}.events.ping`,
          handlers: [
            on(Ping, async (event, ctx) => {
              await ctx.publish(
                Pong,
                { n: event.data.n },
                { subject: `${stream}.events.pong`, about: `o${event.data.n}` },
              );
            }),
          ],
        });
        await transport.consume({
          name: 'ponger',
          stream,
          filterSubject: `${stream}.events.pong`,
          handlers: [on(Pong, async () => done.resolve())],
        });
        // The caller: a request from outside any span starts the trace.
        setImmediate(() => void transport.request(Echo, { n: 1 }, { timeoutMs: 5_000 }));
      },
    );
    return { running, done: done.promise };
  };

  test('http/json: request-reply, publish and consume form one trace with parent links', async () => {
    const stream = uniqueName('TRACE');
    const { running } = await service('http/json', stream);
    try {
      const find = (name: string, kind: number): ReceivedSpan | undefined =>
        receiver.spans.find((s) => s.name === name && s.kind === kind);
      await waitFor(() => find('process tracing-test.ponged.v1', OtlpSpanKind.Consumer), {
        timeoutMs: 20_000,
        message: 'the last consumer span is exported',
      });
      const client = find('echo', OtlpSpanKind.Client);
      const serverSpan = find('echo', OtlpSpanKind.Server);
      const sendPing = find('send tracing-test.pinged.v1', OtlpSpanKind.Producer);
      const processPing = find('process tracing-test.pinged.v1', OtlpSpanKind.Consumer);
      const sendPong = find('send tracing-test.ponged.v1', OtlpSpanKind.Producer);
      const processPong = find('process tracing-test.ponged.v1', OtlpSpanKind.Consumer);
      assert.ok(
        client && serverSpan && sendPing && processPing && sendPong && processPong,
        JSON.stringify(receiver.spans),
      );
      assert.equal(client.parentSpanId, '', 'the request is the root');
      const chain = [client, serverSpan, sendPing, processPing, sendPong, processPong];
      for (const span of chain) assert.equal(span.traceId, client.traceId, `${span.name} is in the trace`);
      for (let i = 1; i < chain.length; i++)
        assert.equal(
          chain[i]!.parentSpanId,
          chain[i - 1]!.spanId,
          `${chain[i]!.name} is a child of ${chain[i - 1]!.name}`,
        );
      assert.equal(client.service, 'tracing-test');
      assert.equal(sendPing.attributes['messaging.system'], 'nats');
      assert.equal(sendPing.attributes['messaging.operation.type'], 'send');
      assert.equal(sendPing.attributes['messaging.destination.name'], `${stream}.events.ping`);
      assert.equal(typeof sendPing.attributes['messaging.message.id'], 'string');
      assert.equal(processPing.attributes['messaging.operation.type'], 'process');
      assert.equal(
        processPing.attributes['messaging.message.id'],
        sendPing.attributes['messaging.message.id'],
      );
      assert.equal(processPing.attributes['messaging.consumer.group.name'], 'pinger');
      assert.equal(serverSpan.attributes['rpc.method'], 'echo');
    } finally {
      await running.stop();
    }
  });

  test('http/protobuf: the export is protobuf and carries the trace', async () => {
    const before = receiver.exports.length;
    const { running, done } = await service('http/protobuf', uniqueName('TRACEPB'));
    await done;
    await running.stop(); // shutdown exports what is buffered
    const exports = receiver.exports.slice(before);
    assert.ok(exports.length > 0, 'an export arrived');
    for (const e of exports) assert.equal(e.contentType, 'application/x-protobuf');
    const body = Buffer.concat(exports.map((e) => e.body));
    for (const name of ['echo', 'send tracing-test.pinged.v1', 'tracing-test']) {
      assert.ok(body.includes(Buffer.from(name)), `the protobuf export names "${name}"`);
    }
  });
});
