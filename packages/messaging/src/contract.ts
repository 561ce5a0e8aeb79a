import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { DecodeError, ErrorCode, ValidationError } from './errors.ts';

export type MessageKind = 'event' | 'command';

/**
 * A message contract: the one definition of an event or command that producers and consumers import.
 * `type` (the CloudEvents `ce-type`) is `<name>.v<version>`, so two versions of one message are two
 * contracts and a consumer states which versions it understands.
 */
export interface MessageContract<TName extends string = string, S extends TSchema = TSchema> {
  readonly kind: MessageKind;
  /** Past tense for events (`order.placed`), imperative for commands (`order.place`). */
  readonly name: TName;
  readonly version: number;
  /** `ce-type` on the wire: `${name}.v${version}`. */
  readonly type: string;
  /** TypeBox schema; it is JSON Schema, so AsyncAPI/OpenAPI documents are generated from it. */
  readonly schema: S;
  readonly description: string | undefined;
  /** True when `data` matches the schema. */
  is(data: unknown): data is Static<S>;
  /** Returns `data` typed, or throws {@link ValidationError} listing every problem. */
  parse(data: unknown): Static<S>;
}

/** The payload type of a contract. */
export type PayloadOf<C> = C extends MessageContract<string, infer S> ? Static<S> : never;

export interface ContractDefinition<TName extends string, S extends TSchema> {
  name: TName;
  version?: number;
  schema: S;
  description?: string;
}

function define<TName extends string, S extends TSchema>(
  kind: MessageKind,
  definition: ContractDefinition<TName, S>,
): MessageContract<TName, S> {
  const version = definition.version ?? 1;
  const type = `${definition.name}.v${version}`;
  let compiled: TypeCheck<S> | undefined;
  const check = (): TypeCheck<S> => (compiled ??= TypeCompiler.Compile(definition.schema));
  return {
    kind,
    name: definition.name,
    version,
    type,
    schema: definition.schema,
    description: definition.description,
    is: (data): data is Static<S> => check().Check(data),
    parse(data) {
      const checker = check();
      if (checker.Check(data)) return data;
      const issues = [...checker.Errors(data)]
        .slice(0, 20)
        .map((e) => ({ path: e.path, message: e.message }));
      throw new ValidationError(type, issues);
    },
  };
}

/** Defines an event (something that happened; past tense name). */
export function defineEvent<const TName extends string, S extends TSchema>(
  definition: ContractDefinition<TName, S>,
): MessageContract<TName, S> {
  return define('event', definition);
}

/** Defines a command (a request to do something; imperative name). */
export function defineCommand<const TName extends string, S extends TSchema>(
  definition: ContractDefinition<TName, S>,
): MessageContract<TName, S> {
  return define('command', definition);
}

const RECORDED_TYPE = /^(.+)\.v([1-9][0-9]*)$/;
const recordedContracts = new Map<string, MessageContract>();

/**
 * The contract of a message validated against its own contract when it was recorded (an outbox row,
 * a commit of an event log) and forwarded later by code that does not know that contract: its
 * `ce-type` is `type` and any payload passes. Throws a {@link DecodeError} (`UNKNOWN_TYPE`) when
 * `type` is not `<name>.v<version>`.
 */
export function recordedContract(type: string): MessageContract {
  const known = recordedContracts.get(type);
  if (known) return known;
  const match = RECORDED_TYPE.exec(type);
  if (!match) throw new DecodeError(ErrorCode.UnknownType, `"${type}" is not a message type (<name>.v<n>)`);
  const contract = define('event', {
    name: match[1] ?? '',
    version: Number(match[2]),
    schema: Type.Unknown(),
    description: 'forwarded as recorded',
  });
  recordedContracts.set(type, contract);
  return contract;
}

/** Looks contracts up by `ce-type`, telling an unknown message apart from an unsupported version of a known one. */
export class ContractRegistry {
  readonly #byType = new Map<string, MessageContract>();
  readonly #versionsByName = new Map<string, number[]>();

  constructor(contracts: Iterable<MessageContract>) {
    for (const contract of contracts) {
      this.#byType.set(contract.type, contract);
      const versions = this.#versionsByName.get(contract.name) ?? [];
      versions.push(contract.version);
      this.#versionsByName.set(contract.name, versions);
    }
  }

  get types(): string[] {
    return [...this.#byType.keys()];
  }

  /** Returns the contract for `ceType` or throws a {@link DecodeError} saying why there is none. */
  resolve(ceType: string): MessageContract {
    const contract = this.#byType.get(ceType);
    if (contract) return contract;
    const match = /^(.*)\.v(\d+)$/.exec(ceType);
    const known = match ? this.#versionsByName.get(match[1] ?? '') : undefined;
    if (match && known) {
      throw new DecodeError(
        ErrorCode.UnsupportedVersion,
        `unsupported version ${match[2]} of ${match[1]} (this consumer reads v${known.join(', v')})`,
      );
    }
    throw new DecodeError(ErrorCode.UnknownType, `unknown message type "${ceType}"`);
  }
}
