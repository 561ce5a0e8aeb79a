import { on, type EventHandler, type HandlerRegistration, type MessageContract } from '@orderflow/messaging';
import { LegacyOrderingEvents, OrderingEvents, OrderPlaced, OrderPlacedV1 } from './events.ts';

/**
 * Registrations that ack the given events without doing anything. A consumer dead-letters every type
 * it has no handler for, so a consumer that reads a whole source (or `all`) states explicitly which of
 * its events it does not care about.
 */
export function ignore(...contracts: readonly MessageContract[]): HandlerRegistration[] {
  return contracts.map((contract) => on(contract, async () => undefined));
}

/**
 * `handlers` plus an ignoring registration for every other event of `among` (default: every event of
 * the ORDERING stream). For fan-in consumers on `all`: a message of an unknown type or version is still
 * dead-lettered.
 */
export function ignoringOthers(
  handlers: readonly HandlerRegistration[],
  among: readonly MessageContract[] = [...OrderingEvents, ...LegacyOrderingEvents],
): HandlerRegistration[] {
  const handled = new Set(handlers.map((h) => h.contract.type));
  return [...handlers, ...ignore(...among.filter((c) => !handled.has(c.type)))];
}

/**
 * Handles `order.placed` in every version a consumer may still find in the stream: v2, and v1 read
 * as v2 (v1 is v2 plus the payment token, which the handler does not see in its type).
 */
export function onOrderPlaced(handle: EventHandler<typeof OrderPlaced>): HandlerRegistration[] {
  return [
    on(OrderPlaced, handle),
    on(OrderPlacedV1, handle as unknown as EventHandler<typeof OrderPlacedV1>),
  ];
}
