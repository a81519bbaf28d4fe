/** What went wrong, from anything thrown or rejected (an `Error`'s message, or the value as text). */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `host:port` as logs and URLs write it: an IPv6 address in brackets (`[::1]:8080`). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
