import type { ContractRegistry } from '../contract.ts';
import { readEnvelope } from '../envelope.ts';
import type { Middleware } from '../types.ts';

/**
 * Validation: reads the CloudEvent, finds its contract and checks the payload against the schema.
 * Throws DecodeError / ValidationError (both permanent) so the message is dead-lettered with the reason
 * and never reaches a handler.
 */
export function decodeAndValidate(registry: ContractRegistry): Middleware {
  return (next) => async (delivery) => {
    const envelope = readEnvelope(delivery, delivery.body);
    const contract = registry.resolve(envelope.type);
    contract.parse(envelope.data);
    delivery.envelope = envelope;
    delivery.contract = contract;
    return next(delivery);
  };
}
