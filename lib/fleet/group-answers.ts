import type { Connection } from '../connection/connection.js';

/** One member's answer to a group's call: its output, or why there is none (a timeout, an error reply, a close). */
export type GroupAnswer<T = unknown, D extends Connection = Connection> = {
  /** The member. */
  readonly conn: D;
  /** Its answer, validated. */
  readonly output: T;
  /** None: it answered. */
  readonly error?: undefined;
} | {
  /** The member. */
  readonly conn: D;
  /** Why there is no answer: a `RemoteError`, `ERR_REQUEST_TIMEOUT`, `ERR_CONNECTION_CLOSED`… */
  readonly error: Error;
  /** None: it failed. */
  readonly output?: undefined;
};

/**
 * The answers to one call made to every member of a group, in the order they arrive (socket.io's
 * `timeout().emitWithAck()` to a room, iterable as acks come, which socket.io#5136 asks for): the
 * iteration ends once every member answered, failed or timed out. `all()` collects them.
 */
export class GroupAnswers<T = unknown, D extends Connection = Connection> implements AsyncIterable<GroupAnswer<T, D>> {
  readonly #arrived: Array<GroupAnswer<T, D>> = [];
  #pending: number;
  #wake: (() => void) | undefined;

  /** @param calls each member and its call under way */
  constructor(calls: ReadonlyArray<readonly [D, Promise<T>]>) {
    this.#pending = calls.length;
    for (const [conn, call] of calls) {
      call.then((output) => this.#arrive({ conn, output }), (error: unknown) => this.#arrive({ conn, error: error as Error }));
    }
  }

  /** How many members were called. */
  get size(): number {
    return this.#pending + this.#arrived.length;
  }

  /** The answers as they arrive; ends once every member answered or failed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<GroupAnswer<T, D>, void, undefined> {
    for (;;) {
      const next = this.#arrived.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#pending === 0) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Every answer, once the last has come, in the order they came. */
  async all(): Promise<Array<GroupAnswer<T, D>>> {
    const answers: Array<GroupAnswer<T, D>> = [];
    for await (const answer of this) answers.push(answer);
    return answers;
  }

  #arrive(answer: GroupAnswer<T, D>): void {
    this.#pending--;
    this.#arrived.push(answer);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
