import { ProducerError } from '../errors.ts';
import type { Middleware, ProducerDeclaration } from '../types.ts';

/** True when the NATS subject `subject` is covered by `pattern` (`*` one token, `>` the rest). */
export function subjectMatches(pattern: string, subject: string): boolean {
  return tokensMatch(pattern.split('.'), subject.split('.'));
}

function tokensMatch(want: readonly string[], have: readonly string[]): boolean {
  for (let i = 0; i < want.length; i++) {
    const token = want[i];
    if (token === '>') return have.length > i;
    if (i >= have.length || (token !== '*' && token !== have[i])) return false;
  }
  return want.length === have.length;
}

/**
 * Producer check, a second line behind the broker's permissions: every decoded event must be on a
 * subject some declaration covers, carry that declaration's `ce-source` and one of its types. Anything
 * else is a {@link ProducerError} (permanent: dead-lettered with code `UNEXPECTED_PRODUCER`) and never
 * reaches the consumer's own middleware or a handler, so a forged event cannot mark the real one as seen
 * in an inbox.
 * Runs on the decoded envelope, whichever CloudEvents mode it came in.
 */
export function checkProducer(producers: readonly ProducerDeclaration[]): Middleware {
  const declarations = producers.map((p) => ({
    declared: p,
    tokens: p.subjects.split('.'),
    types: p.types && new Set(p.types),
  }));
  const describe = ({ declared: p }: (typeof declarations)[number]): string =>
    `${p.subjects} is published by ${p.source}${p.types ? ` (${p.types.join(', ')})` : ''}`;
  return (next) => (delivery) => {
    const envelope = delivery.envelope;
    if (envelope) {
      const tokens = delivery.subject.split('.');
      const owner = declarations.find((p) => tokensMatch(p.tokens, tokens));
      const fault = !owner
        ? `no producer is declared for subject ${delivery.subject}`
        : owner.declared.source !== envelope.source
          ? `ce-source ${envelope.source} is not the owner of ${delivery.subject}: ${describe(owner)}`
          : owner.types && !owner.types.has(envelope.type)
            ? `${envelope.type} is not an event of ${delivery.subject}: ${describe(owner)}`
            : undefined;
      if (fault !== undefined) {
        return Promise.reject(
          new ProducerError(
            `${envelope.type} ${envelope.id} on ${delivery.subject} from ${envelope.source}: ${fault}`,
            { subject: delivery.subject, source: envelope.source, type: envelope.type },
          ),
        );
      }
    }
    return next(delivery);
  };
}

/** True when `envelope` on `subject` fails {@link checkProducer} for `producers`. */
export function isForged(
  producers: readonly ProducerDeclaration[],
  subject: string,
  envelope: { source: string; type: string },
): boolean {
  const owner = producers.find((p) => subjectMatches(p.subjects, subject));
  return (
    !owner ||
    owner.source !== envelope.source ||
    (owner.types !== undefined && !owner.types.includes(envelope.type))
  );
}
