import type { TlsOptions } from 'node:tls';
import { messageOf } from '../util/format.js';
import { invalidOption } from '../util/validate.js';

const OWNER = 'PulsarServer';

/** The `tls` option resolved: a function called for its first answer, pulsar's defaults applied; `false` stays. */
export function resolveTls(option: TlsOptions | (() => TlsOptions) | false): TlsOptions | false {
  if (option === false) return false;
  const given = typeof option === 'function' ? readTls(option) : option;
  if (typeof given !== 'object' || given === null) throw invalidOption(OWNER, 'tls', 'must be tls.createServer() options, a function returning them, or false', given);
  return withTlsDefaults(given);
}

/** Calls a `tls` function; what it throws is an `ERR_INVALID_OPTION` naming `tls`. */
function readTls(source: () => TlsOptions): TlsOptions {
  try {
    return source();
  } catch (error) {
    throw invalidOption(OWNER, 'tls', `function failed: ${messageOf(error)}`, 'a function');
  }
}

/** TLS options with pulsar's default `handshakeTimeout` (5 s; Node's is 120 s). */
export function withTlsDefaults(options: TlsOptions): TlsOptions {
  return { handshakeTimeout: 5000, ...options };
}
