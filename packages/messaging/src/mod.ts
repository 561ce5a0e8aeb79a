export { defaultRetryPolicy, retryDelay } from './backoff.ts';
export { CoreBroadcaster } from './broadcast.ts';
export { BrokerKind, BrokerUnsupportedError, requireNatsBroker } from './broker.ts';
export type {
  BrokerConfig,
  BrokerConnection,
  BrokerConnections,
  ConnectionOf,
  NatsBrokerConfig,
  NatsBrokerConnection,
  RabbitBrokerConfig,
  RabbitBrokerConnection,
} from './broker.ts';
export { compareVersions, connectionInboxPrefix, connectNats, serverFeatures } from './connection.ts';
export type { ConnectionConfig, ServerFeatures } from './connection.ts';
export { ConsumerRuntime, PULL_EXPIRES_MS } from './consumer.ts';
export { ContractRegistry, defineCommand, defineEvent, recordedContract } from './contract.ts';
export type { ContractDefinition, MessageContract, MessageKind, PayloadOf } from './contract.ts';
export {
  DeadLetterError,
  DeadLetterHeader,
  DeadLetters,
  DeadLetterTopology,
  deadLetterStream,
  writeDeadLetter,
} from './dead-letters.ts';
export type { DeadLetter, DeadLetterSource, DeadLetterStore } from './dead-letters.ts';
export type { BlobStore, BlobStores } from './ports/blob-store.ts';
export type { KeyValueEntry, KeyValueStore, KeyValueStores } from './ports/key-value.ts';
export {
  StoreConflictError,
  StoreError,
  StoreErrorCode,
  StoreInvalidNameError,
  StoreNotFoundError,
  StoreUnavailableError,
} from './ports/errors.ts';
export { checkBucketName, checkItemName, checkRevision } from './ports/names.ts';
export { NatsBlobStore, NatsBlobStores, NatsKeyValueStore, NatsKeyValueStores } from './nats/stores.ts';
export { FileBlobStores } from './fs/blob-store.ts';
export { blobDirProblems, blobStoresFor } from './blob-choice.ts';
export { MemoryBlobStores, MemoryKeyValueStores } from './memory/stores.ts';
export { ORIGINAL_SEQUENCE_HEADER, ORIGINAL_SUBJECT_HEADER } from './delivery.ts';
export {
  createEnvelope,
  currentTraceparent,
  decodeEnvelope,
  decodeHeaderValue,
  encodeData,
  encodeHeaderValue,
  envelopeHeaders,
  envelopeSubject,
  Header,
  readEnvelope,
  STRUCTURED_CONTENT_TYPE,
} from './envelope.ts';
export type { Envelope, EnvelopeInit, HeaderSource } from './envelope.ts';
export {
  BrokerUnavailableError,
  ConcurrencyError,
  ConfigError,
  DecodeError,
  EndpointError,
  ErrorCode,
  isPermanent,
  MessagingError,
  NoRespondersError,
  PermanentError,
  ProducerError,
  ProvisioningError,
  AccessRefusedError,
  PublishError,
  RemoteError,
  TimeoutError,
  TransientError,
  isBrokerUnavailable,
  isTransient,
  ValidationError,
} from './errors.ts';
export type { ValidationIssue } from './errors.ts';
export { consumerPositions, discoverServices, streamSummaries } from './inspect.ts';
export type { ConsumerPosition, EndpointStats, ServiceInstance, StreamSummary } from './inspect.ts';
export { decodeAndValidate } from './middleware/decode.ts';
export { MaxDeliveriesExceededError, retryAndDeadLetter } from './middleware/dead-letter.ts';
export type { DeadLetterWriter } from './middleware/dead-letter.ts';
export { logging } from './middleware/logging.ts';
export { checkProducer, subjectMatches } from './middleware/producer.ts';
export { consumerMetrics, metrics } from './middleware/metrics.ts';
export type { ConsumerMetrics } from './middleware/metrics.ts';
export { tracing } from './middleware/tracing.ts';
export { fallbackMsgId, isOwnCopy, JetStreamPublisher } from './publisher.ts';
export type { JetStreamPublisherOptions } from './publisher.ts';
export {
  defineEndpoint,
  RpcClient,
  RpcServer,
  SERVICE_ERROR_CODE_HEADER,
  SERVICE_ERROR_HEADER,
} from './rpc.ts';
export type { ServiceIdentity } from './rpc.ts';
export { runService } from './runner.ts';
export { BucketSubjects, busPermissions, identityPermissions, inboxPrefix } from './security/permissions.ts';
export type {
  BucketAccess,
  BusIdentity,
  DurableAccess,
  OrderedReadAccess,
  ResponsePermission,
  ServedEndpoint,
  SubjectPermission,
  UserPermissions,
} from './security/permissions.ts';
export { ProvisioningResponder, ProvisioningTopology, RemoteProvisioner } from './security/provisioning.ts';
export type { ConsumerGrant } from './security/provisioning.ts';
export { ensureBusSecrets, readSeedFile } from './security/secrets.ts';
export type { BusSecrets, BusSecretsOptions, BusTlsFiles, IdentityKey } from './security/secrets.ts';
export { natsServerConfig } from './security/server-config.ts';
export type {
  NatsServerConfigOptions,
  NkeyUser,
  ServerCluster,
  ServerTls,
} from './security/server-config.ts';
export { OtlpProtocol, startTracing, tracingSettingsFromEnv } from './telemetry.ts';
export type { SamplerSettings, TracingHandle, TracingSettings } from './telemetry.ts';
export {
  endSpanWhen,
  formatTraceparent,
  MessagingAttribute,
  messagingTracer,
  parentContext,
  parseTraceparent,
  sendInSpan,
  tracingOff,
} from './trace-context.ts';
export type { SendSpanInit } from './trace-context.ts';
export { brokerSettings, EnvSettings, natsAuthSettings, serviceSettings } from './service-settings.ts';
export type { NatsAuth, ServiceSettings } from './service-settings.ts';
export type { Readiness, RunningService, ServiceConfig, ServiceContext, SetupContext } from './runner.ts';
export { consumerConfig, ensureConsumer, ensureStream, streamConfig } from './topology.ts';
export type { ConsumerDeclaration, EnsureConsumer, StreamDeclaration } from './topology.ts';
export { NatsTransport } from './transport.ts';
export type { NatsTransportOptions, Transport } from './transport.ts';
export { consumerPipeline } from './pipeline.ts';
export type { PipelineOptions } from './pipeline.ts';
export { bindingKey, RabbitDeadLetters, RabbitTopology, RabbitTransport } from './rabbitmq/transport.ts';
export type { RabbitTransportOptions } from './rabbitmq/transport.ts';
export {
  declareRabbitBase,
  declareRabbitConsumer,
  declareRabbitStream,
  RABBIT_EXCHANGES,
  serverMaxDeliverOf,
} from './rabbitmq/topology.ts';
export type { RabbitConsumerDeclaration } from './rabbitmq/topology.ts';
export { rabbitBusPermissions, rabbitPermissions, subjectRegex } from './rabbitmq/permissions.ts';
export type { RabbitTopicPermission, RabbitUserPermissions } from './rabbitmq/permissions.ts';
export {
  ensureRabbitPasswords,
  provisionRabbit,
  rabbitDefinitions,
  rabbitPasswordFile,
  rabbitPasswordHash,
  rabbitUrl,
  readRabbitPassword,
  removeRabbitUsers,
} from './rabbitmq/provisioning.ts';
export type {
  ProvisionRabbitOptions,
  RabbitIdentityAccess,
  RabbitUserDefinition,
} from './rabbitmq/provisioning.ts';
export { MemoryBroker, MemoryDeadLetters } from './memory/broker.ts';
export type { StoredMessage } from './memory/broker.ts';
export { MemoryTransport } from './memory/transport.ts';
export type { MemoryTransportOptions } from './memory/transport.ts';
export { connectRabbit, redactedUrl } from './rabbitmq/connection.ts';
export type { RabbitConnectionConfig } from './rabbitmq/connection.ts';
export { on } from './types.ts';
export type {
  BatchItem,
  Broadcaster,
  ConsumerSpec,
  Delivery,
  DeliveryHandler,
  EndpointContract,
  EndpointHandler,
  EventHandler,
  EventPublisher,
  HandlerContext,
  HandlerRegistration,
  Middleware,
  ProducerDeclaration,
  PublishOptions,
  PublishReceipt,
  RecordedAttributes,
  Requester,
  RequestContext,
  RequestOptions,
  RetryPolicy,
  RunningConsumer,
} from './types.ts';
