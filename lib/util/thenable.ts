/** True for promises and other thenables, which the server settles without awaiting inline. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null | undefined)?.then === 'function';
}

/** What `run()` returns, or a promise rejected with what it throws: one way for a caller to see failures. */
export function promised<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run();
  } catch (error) {
    return Promise.reject(error as Error);
  }
}
