import type { ContractRegistry } from '../contract.ts';
import { readEnvelope } from '../envelope.ts';
import type { Middleware } from '../types.ts';

/**
 * Validation: reads the CloudEvent, finds its contract and checks the payload against the schema.
 * Throws DecodeError / ValidationError (both permanent) so the message is dead-lettered with the reason
 * and never reaches a handler.
 */
export function decodeAndValidate(registry: ContractRegistry): Middleware {
  // Not an async function: it has nothing to do after `next`, and an async wrapper would add a
  // promise and three microtask turns per message. Failures are still rejections, never throws.
  return (next) => (delivery) => {
    try {
      const envelope = readEnvelope(delivery, delivery.body);
      const contract = registry.resolve(envelope.type);
      contract.parse(envelope.data);
      delivery.envelope = envelope;
      delivery.contract = contract;
    } catch (error) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what was thrown, as an async function would reject
      return Promise.reject(error);
    }
    return next(delivery);
  };
}
