import type { Connection, ConnectionData } from '../connection/connection.js';
import type { GroupAnswers } from '../fleet/group-answers.js';
import type { ConnectionGroup } from '../fleet/groups.js';
import type { RequestOptions, StreamOptions } from '../messages/settings.js';
import type { CallInput, CallOutput, Contract, EmitValue, MessageNames, RequestNames, StreamInput, StreamItem, StreamNames } from './contract.js';

/** Marks a view typed by a contract (types only: nothing at run time carries it). */
declare const kContract: unique symbol;

/**
 * What the untyped `call()`/`emit()` of a connection or a group ask of `this`: not to be a contract's typed
 * view, so that on a view only the contract's signatures apply (a wrong name or value does not compile).
 */
export interface Untyped {
  /** Absent: this is no contract's view. */
  readonly [kContract]?: never;
}

/**
 * A connection as a server with a contract hands it to routes and events: `call()` and `emit()` take the
 * names and values of the contract's `server` side and resolve with its outputs. It is a `Connection<D>` in
 * every other way, and passes wherever one is expected.
 */
export type ContractConnection<D extends ConnectionData = ConnectionData, C extends Contract = Contract> = Connection<D> & {
  /** The contract this view is typed by. */
  readonly [kContract]: C;
  /** Sends the contract's request `name` and resolves with its output, validated on arrival (a name the contract lacks takes no input). */
  call<K extends string>(name: K, input: K extends RequestNames<C['server']> ? CallInput<C['server'], K> : never, options?: RequestOptions): Promise<CallOutput<C['server'], K>>;
  /** Sends the contract's message `name`. @returns as `send()` */
  emit<K extends string>(name: K, value: K extends MessageNames<C['server']> ? EmitValue<C['server'], K> : never): boolean;
  /**
   * Calls the contract's stream `name` on the client: loop over its items (typed, validated on arrival);
   * `break` cancels. Without a contract the compiler knows, `stream(value, options)`.
   */
  stream: string extends keyof C['server']
    ? <T = unknown>(value: unknown, options?: StreamOptions) => AsyncIterable<T>
    : <K extends string>(name: K, input: K extends StreamNames<C['server']> ? StreamInput<C['server'], K> : never, options?: StreamOptions) => AsyncIterable<StreamItem<C['server'], K>>;
};

/** A group as a server with a contract gives it: `emit()` and `call()` typed by the contract's `server` side. */
export type ContractGroup<D extends ConnectionData = ConnectionData, C extends Contract = Contract> = ConnectionGroup<D> & {
  /** The contract this view is typed by. */
  readonly [kContract]: C;
  /** Sends the contract's message `name` to every member, encoded once. @returns how many members here it was queued for */
  emit<K extends string>(name: K, value: K extends MessageNames<C['server']> ? EmitValue<C['server'], K> : never, options?: { except?: Connection<D> }): number;
  /** Calls the contract's request `name` on every member here; yields their answers (typed outputs) as they arrive. */
  call<K extends string>(name: K, input: K extends RequestNames<C['server']> ? CallInput<C['server'], K> : never, options?: RequestOptions): GroupAnswers<CallOutput<C['server'], K>, Connection<D>>;
};
