import { PulsarError } from '../errors.js';

/**
 * The Standard Schema interface (standardschema.dev, v1), as zod ≥ 3.24, valibot ≥ 1 and arktype ≥ 2
 * implement it; copied here as the spec asks, so that no validation library is a dependency.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The spec's properties. */
  readonly '~standard': {
    /** The spec's version. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Validates a value: the output, or the issues. Sync or async. */
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    /** The types, for inference only. */
    readonly types?: {
      /** What the schema takes. */
      readonly input: Input;
      /** What it gives. */
      readonly output: Output;
    } | undefined;
  };
}

/** What a Standard Schema's `validate` answers. */
export type StandardResult<Output> =
  | {
    /** The valid value, as the schema outputs it. */
    readonly value: Output;
    /** None: the value is valid. */
    readonly issues?: undefined;
  }
  | {
    /** What is wrong with the value. */
    readonly issues: ReadonlyArray<StandardIssue>;
  };

/** One problem a Standard Schema found. */
export interface StandardIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where, in the value. */
  readonly path?: ReadonlyArray<PropertyKey | {
    /** One step of the path. */
    readonly key: PropertyKey;
  }> | undefined;
}

/** Whether `value` is a Standard Schema (has `~standard.validate`). */
export function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  return typeof (value as StandardSchemaV1 | null | undefined)?.['~standard']?.validate === 'function';
}

/** The output type of a Standard Schema. */
export type SchemaOutput<S> = S extends StandardSchemaV1<unknown, infer O> ? O : unknown;

/** One validation issue, as pulsar reports it: the path as text (`items.2.name`, `''` for the whole message) and the message. */
export interface MessageIssue {
  /** Where, dot-separated; `''` for the message itself. */
  readonly path: string;
  /** What is wrong, in the validator's words. */
  readonly message: string;
}

/** A message the schema refused (`ERR_INVALID_MESSAGE`), with the validator's issues. */
export class InvalidMessageError extends PulsarError {
  /** What the validator found wrong. */
  readonly issues: readonly MessageIssue[];

  /**
   * @param message what happened
   * @param issues the validator's issues
   */
  constructor(message: string, issues: readonly MessageIssue[]) {
    super('ERR_INVALID_MESSAGE', message);
    this.issues = issues;
  }
}

/**
 * Validates `value` with `schema`: its output, at once when the validator is synchronous (no promise per
 * message then), else a promise.
 * @throws {InvalidMessageError} (or rejects with it) when the schema refuses the value
 */
export function validate<S extends StandardSchemaV1>(schema: S, value: unknown): SchemaOutput<S> | Promise<SchemaOutput<S>> {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) return result.then((settled) => outputOf(settled) as SchemaOutput<S>);
  return outputOf(result) as SchemaOutput<S>;
}

function outputOf<O>(result: StandardResult<O>): O {
  if (result.issues === undefined) return result.value;
  const issues = result.issues.map(({ message, path }) => ({ path: (path ?? []).map((part) => String(typeof part === 'object' ? part.key : part)).join('.'), message }));
  const listed = issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`)).join('; ');
  throw new InvalidMessageError(`invalid message: ${listed}`, issues);
}
