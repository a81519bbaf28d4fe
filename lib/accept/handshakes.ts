import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { CidrList } from '../admission/address-rules.js';
import { peerOf } from '../admission/address-rules.js';
import { PulsarError } from '../errors.js';
import type { ResolvedServerOptions } from '../server/options.js';
import { withTlsDefaults } from './tls-options.js';
import { ProxyHeaderParser, type ProxiedAddress, type ProxyInfo, type ProxyProtocolOptions } from './proxy-protocol.js';

/** What the accept path hands a socket to once it knows who the client is. */
export interface AcceptHost {
  /** Whether new sockets are still taken in (not shutting down). */
  accepting(): boolean;
  /** A socket ready to be judged by admission: its client (`null`: the socket's own peer), the PROXY details, the bytes read after the header. */
  admit(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, rest: Buffer | null): void;
  /**
   * A socket turned away before it became a connection: bad or untrusted PROXY header, failed TLS
   * handshake (`screened`: after {@link screen} let it through, so its place is given back).
   */
  refuse(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, error: PulsarError, screened: boolean): void;
  /**
   * Judges the client by its address, before TLS or any read of its own (`connectionRate`,
   * `maxConnections` counting `pending` handshakes, the address rules and caps): `true` when it is refused
   * (the host has turned the socket away), `false` to go on.
   */
  screen(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, pending: number): boolean;
  /** Whether `maxConnections` are held, counting `pending` handshakes: `true` when the socket was turned away. */
  full(socket: Socket, pending: number): boolean;
  /** A socket {@link screen} let through, from `address`, went away before it was served: its place is given back. */
  gone(address: string): void;
}

function ignoreError(): void {}

/**
 * The accept path, from the listener to a socket admission can judge: the TCP or TLS listener, the
 * PROXY protocol header (from trusted proxies only), and TLS after the header (TLS passthrough behind a
 * balancer), each bounded in time. Listeners and timers live only until the socket is handed on, so
 * nothing of this stays per connection.
 */
export class AcceptPath {
  readonly #options: ResolvedServerOptions;
  readonly #host: AcceptHost;
  readonly #trustedProxies: CidrList;
  /** Sockets still sending their PROXY header or TLS handshake: not connections yet. */
  readonly #pending = new Set<Socket>();
  /** The TLS options in force (changed by {@link reloadTls}), or `false`. */
  #tls: tls.TlsOptions | false;
  /** The `tls` option when it is a function: called again by {@link reloadTls}. */
  readonly #tlsSource: (() => tls.TlsOptions) | null;
  /** Their context, made once, for TLS this path starts itself (after a PROXY header or a rate check). */
  #secureContext: tls.SecureContext | undefined;
  /** The listener, once made: a `tls.Server` takes new certificates through `setSecureContext()`. */
  #listener: net.Server | undefined;
  /** Accept errors since the last one reported, and when that was (see {@link failed}). */
  readonly #acceptFailures = { count: 0, reportedAt: 0 };

  /**
   * @param options the server's options (`tls`, `proxyProtocol`, `trustedProxies`)
   * @param host where sockets go next
   * @param tlsSource the `tls` option when it is a function, or `null`
   */
  constructor(options: ResolvedServerOptions, host: AcceptHost, tlsSource: (() => tls.TlsOptions) | null = null) {
    this.#options = options;
    this.#host = host;
    this.#tlsSource = tlsSource;
    this.#trustedProxies = new CidrList('PulsarServer', 'trustedProxies', options.trustedProxies);
    this.#tls = options.tls;
  }

  /**
   * Re-reads the TLS options (calls the `tls` function again, else applies the same options): new
   * connections get the renewed certificate; established ones keep theirs.
   * @throws Node's error for options that make no valid context (bad PEM, a key that does not match), or
   * what the function threw: the options in force stay
   */
  reloadTls(): void {
    const options = this.#tlsSource === null ? this.#tls : withTlsDefaults(this.#tlsSource());
    if (options === false) return;
    const context = tls.createSecureContext(options);
    if (this.#listener instanceof tls.Server) this.#listener.setSecureContext(options);
    this.#secureContext = context;
    this.#tls = options;
  }

  /**
   * A TCP listener, or a TLS one whose failed handshakes are refusals; every socket comes to {@link accept}.
   * With the PROXY protocol or a `connectionRate`, a TLS server listens on TCP and starts TLS itself, after
   * the header and the rate check: a client refused for its rate costs no handshake.
   */
  createListener(): net.Server {
    const socketOptions = { allowHalfOpen: true, noDelay: true };
    const accept = (socket: Socket): void => this.accept(socket);
    const { proxyProtocol } = this.#options;
    const tlsOptions = this.#tls;
    // Node's TLS server starts the handshake before any code of ours sees the socket: a TCP listener and a
    // handshake we start ourselves let every refusal (rate, caps, rules) come first and cost no handshake.
    if (!tlsOptions || proxyProtocol || this.#screensAtAccept()) return (this.#listener = net.createServer(socketOptions, accept));
    const server = tls.createServer({ ...tlsOptions, ...socketOptions }, accept);
    server.on('tlsClientError', (error, socket) => {
      // Node's TLS server shakes hands before accept() sees the socket: it was never screened, holds no place.
      this.#host.refuse(socket, null, null, new PulsarError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${error.message}`, { cause: error }), false);
    });
    return (this.#listener = server);
  }

  /** Takes in a socket the listener accepted: to admission at once, or after its PROXY header. */
  accept(socket: Socket): void {
    // Reset before it was accepted (a balancer's probe): its address is gone and nothing came from it.
    if (socket.remoteAddress === undefined && this.#options.path === null) {
      socket.destroy();
      return;
    }
    const { proxyProtocol } = this.#options;
    if (!this.#host.accepting()) {
      socket.on('error', ignoreError);
      socket.destroy(); // closing: nothing is accepted, nothing reported
    } else if (!proxyProtocol) {
      if (this.#host.screen(socket, null, null, this.#pending.size)) return;
      this.#handOn(socket, null, null, null, this.#handshakeTimeout());
    } else if (this.#trustedProxies.empty || this.#trustedProxies.contains(socket.remoteAddress ?? '')) {
      // Who the client is waits for its header, but the socket holds a descriptor from now on.
      if (this.#host.full(socket, this.#pending.size)) return;
      this.#readProxyHeader(socket, proxyProtocol);
    } else {
      const untrusted = `refused, ${socket.remoteAddress} is not a trusted proxy (trustedProxies): its PROXY header would not be believed`;
      this.#host.refuse(socket, null, null, new PulsarError('ERR_PROXY_PROTOCOL', untrusted), false);
    }
  }

  /**
   * An error of the listener, as the server should report it, or `null` for none now. Accept errors
   * (`EMFILE`, `ENFILE`: out of descriptors) come once per attempt, thousands a second in a flood: they are
   * `ERR_ACCEPT` with the system's code at most once a second, counting the rest. Accepting does not spin
   * meanwhile: libuv closes what waits in the backlog (its EMFILE trick).
   */
  failed(error: NodeJS.ErrnoException): Error | null {
    if (error.syscall !== 'accept') return error;
    const failures = this.#acceptFailures;
    failures.count++;
    const now = Date.now();
    if (now - failures.reportedAt < 1000) return null;
    const more = failures.count - 1;
    failures.count = 0;
    failures.reportedAt = now;
    const since = more > 0 ? ` (and ${more} more since the last report)` : '';
    return new PulsarError('ERR_ACCEPT', `accepting a connection failed: ${error.code ?? error.message}${since}`, { cause: error });
  }

  /** Drops every socket still in its header or handshake (the server is closing: nothing was accepted from them). */
  destroyPending(): void {
    for (const socket of this.#pending) socket.destroy();
  }

  /**
   * Reads a PROXY header, then (with `tls`) runs the TLS handshake on what follows. With `tls`,
   * `handshakeTimeout` bounds the header and the handshake together.
   */
  #readProxyHeader(socket: Socket, { timeout, maxHeaderLength }: Required<ProxyProtocolOptions>): void {
    const parser = new ProxyHeaderParser(maxHeaderLength);
    // The proxy's own address, read now: a health check that resets right after its header would
    // leave nothing to read later.
    const direct = peerOf(socket);
    const acceptedAt = Date.now();
    const tlsOptions = this.#tls;
    const handshakeTimeout = tlsOptions ? tlsOptions.handshakeTimeout ?? timeout : timeout;
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', done);
      socket.off('error', done);
      this.#pending.delete(socket);
    };
    const refuse = (error: PulsarError): void => {
      done();
      this.#host.refuse(socket, direct, null, error, false);
    };
    const onData = (chunk: Buffer): void => {
      let header;
      try {
        header = parser.push(chunk);
      } catch (error) {
        refuse(error as PulsarError);
        return;
      }
      if (header === null) return;
      done();
      const { source, destination, tlvs, rest } = header;
      const proxy = { destination, tlvs };
      if (this.#host.screen(socket, source ?? direct, proxy, this.#pending.size)) return;
      this.#handOn(socket, source ?? direct, proxy, rest, acceptedAt + handshakeTimeout - Date.now());
    };
    const limit = Math.min(timeout, handshakeTimeout);
    const timer = setTimeout(() => refuse(new PulsarError('ERR_PROXY_TIMEOUT', `no complete PROXY header within ${limit} ms`)), limit);
    this.#pending.add(socket);
    socket.on('data', onData);
    socket.on('close', done); // gone before its header: nothing was accepted from it
    socket.on('error', done);
  }

  /**
   * A socket whose client is known goes on: to admission, or first through the TLS handshake when the
   * listener is TCP and the server TLS. `source` is `null` for the socket's own peer (no PROXY header).
   */
  #handOn(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, rest: Buffer | null, remainingMs: number): void {
    if (!this.#tls || socket instanceof tls.TLSSocket) this.#host.admit(socket, source, proxy, rest);
    else this.#secure(socket, source, proxy, rest, remainingMs);
  }

  /** Whether an option refuses clients by address at accept (then TLS starts only after that judgement). */
  #screensAtAccept(): boolean {
    const { connectionRate, maxConnections, maxConnectionsPerAddress, allow, deny } = this.#options;
    return connectionRate !== null || maxConnections !== Infinity || maxConnectionsPerAddress !== Infinity || allow.length > 0 || deny.length > 0;
  }

  /** `handshakeTimeout` of the `tls` option (5 s unless set). */
  #handshakeTimeout(): number {
    return this.#tls ? this.#tls.handshakeTimeout ?? 5000 : 0;
  }

  /**
   * The TLS handshake on a TCP socket, after a PROXY header or a rate check: the bytes read with the
   * header (the start of the ClientHello, often) are put back first. Within `remainingMs`, else
   * `ERR_TLS_HANDSHAKE`.
   */
  #secure(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, rest: Buffer | null, remainingMs: number): void {
    const client = source ?? peerOf(socket); // read while connected: a closed socket may no longer say
    socket.pause();
    if (rest !== null && rest.length > 0) socket.unshift(rest);
    const secure = new tls.TLSSocket(socket, { isServer: true, ...this.#tlsSocketOptions() });
    const done = (): void => {
      clearTimeout(timer);
      secure.off('secure', onSecure);
      secure.off('error', onError);
      secure.off('end', onGone);
      secure.off('close', onGone);
      this.#pending.delete(secure);
    };
    const onError = (error: Error): void => {
      done();
      secure.destroy();
      this.#host.refuse(secure, client, proxy, new PulsarError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${error.message}`, { cause: error }), true);
    };
    const onSecure = (): void => {
      done();
      this.#host.admit(secure, source, proxy, null);
    };
    // A health check that left mid-handshake: nothing was accepted from it. Its FIN alone closes nothing (the
    // listener allows half-open sockets), so 'end' counts as gone too, or its place would wait for the timeout.
    const onGone = (): void => {
      done();
      secure.destroy();
      this.#host.gone(client.address);
    };
    const timer = setTimeout(() => onError(new Error(proxy === null ? 'TLS handshake timeout' : 'TLS handshake timeout (the PROXY header included)')), Math.max(0, remainingMs));
    this.#pending.add(secure);
    secure.on('secure', onSecure);
    secure.on('error', onError);
    secure.on('end', onGone);
    secure.on('close', onGone);
  }

  /** What a server-side TLSSocket needs from the `tls` option: its secure context and client-certificate settings. */
  #tlsSocketOptions(): tls.TLSSocketOptions {
    const options = this.#tls as tls.TlsOptions;
    this.#secureContext ??= tls.createSecureContext(options);
    const { requestCert, rejectUnauthorized, ALPNProtocols, SNICallback } = options;
    return { secureContext: this.#secureContext, requestCert, rejectUnauthorized, ALPNProtocols, SNICallback };
  }
}
