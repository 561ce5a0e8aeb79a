export { BroadcastStatusFeed } from './adapters/broadcast-status-feed.ts';
export {
  DEFAULT_AUDIENCE,
  DEV_ALGORITHM,
  DEV_ISSUER,
  DevIssuer,
  ensureDevSigningKey,
  readDevSigningKey,
} from './adapters/dev-issuer.ts';
export type { DevIssuerOptions } from './adapters/dev-issuer.ts';
export { ASYMMETRIC_ALGORITHMS, JwtAuthenticator } from './adapters/jwt-authenticator.ts';
export type {
  AsymmetricAlgorithm,
  Authenticator,
  JwtAuthenticatorOptions,
} from './adapters/jwt-authenticator.ts';
export { natsOperations } from './adapters/nats-operations.ts';
export { ObjectStoreInvoices } from './adapters/object-store-invoices.ts';
export type { InvoicePdfs } from './adapters/object-store-invoices.ts';
export { createGateway, defaultLimits, PlaceOrderBody, problemFor, RegisterCustomerBody } from './app.ts';
export type {
  CustomerTokenIssuer,
  GatewayLimits,
  GatewayOptions,
  StatusChange,
  StatusChangeFeed,
} from './app.ts';
export { consoleApi } from './console.ts';
export type { ConsoleOptions, Operations } from './console.ts';
export { configFromEnv } from './config.ts';
export type { AuthConfig, GatewayConfig } from './config.ts';
export { Access, OPERATOR_SCOPE } from './domain/access.ts';
export type { Principal } from './domain/access.ts';
export { toCloudEvents } from './domain/cloudevents.ts';
export type { CloudEventJson, HistoryEntry } from './domain/cloudevents.ts';
export { openApiDocument } from './domain/openapi.ts';
export { invalidFields, invalidRequest, problem, PROBLEM_CONTENT_TYPE } from './domain/problem.ts';
export type { InvalidField, Problem } from './domain/problem.ts';
export { RateLimiter } from './domain/rate-limit.ts';
export type { RateDecision, RateLimitOptions } from './domain/rate-limit.ts';
export { AuthenticationError, DevKeyError, GatewayErrorCode } from './errors.ts';
export { BASELINE_SECURITY_HEADERS, defaultServerTimeouts, listen } from './server.ts';
export type { FetchApp, ServerTimeouts } from './server.ts';
export { statusChangeStream } from './sse.ts';
export type { StatusChangeStreamOptions } from './sse.ts';
