import createDebug from 'debug';
import type { ContractCaller } from '../contract/router.js';
import type { FrameCodec } from '../codecs/types.js';
import type { Connection } from '../connection/connection.js';
import { kCreate, kDeliver, kSendPayload } from '../connection/owner.js';
import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import { ConnectionGroup } from './groups.js';
import type { Relay, RelayMessage } from './relay.js';

const debug = createDebug('pulsar:fleet:trace');

/** What the fleet surface needs from its server. */
export interface FleetHost {
  /** The server's id in the fleet. */
  readonly instanceId: string;
  /** The server's codec: broadcasts are encoded once with it. */
  readonly codec: FrameCodec;
  /** A frame's payload from what a broadcast or `sendTo` was given (with `messages`, the message encoded). */
  payloadOf(value: unknown): Uint8Array;
  /** Cross-instance delivery, or `null` for a server alone. */
  readonly relay: Relay | null;
  /** What the server sends, checked against its contract, or `null` without one. */
  readonly caller: ContractCaller | null;
  /** The connections that can be written, by id. */
  readonly connections: ReadonlyMap<number, Connection>;
  /** Counts a frame dropped because its connection is gone. */
  dropped(): void;
  /** Reports a problem with the relay. */
  error(error: PulsarError): void;
}

/**
 * The server's reach beyond one connection: named groups with an encode-once broadcast (held weakly, so
 * rooms that empty out do not pile up), `sendTo()` by global id, and the relay that carries both to the
 * other instances of a fleet and delivers what they publish here.
 */
export class Fleet {
  readonly #host: FleetHost;
  /**
   * The groups by name, held weakly: a group lives while it has members (each member's connection holds
   * its groups) or the application holds it.
   */
  readonly #groups = new Map<string, WeakRef<ConnectionGroup>>();
  readonly #forgetGroup = new FinalizationRegistry<{ name: string; ref: WeakRef<ConnectionGroup> }>(({ name, ref }) => {
    if (this.#groups.get(name) === ref) this.#groups.delete(name);
  });
  /** True while relaying fails: reported once per outage, not once per message. */
  #relayFailing = false;

  /** @param host the server */
  constructor(host: FleetHost) {
    this.#host = host;
  }

  /** Starts the relay, if any (`listen()` waits): it learns this instance's id and how to deliver here. */
  async start(): Promise<void> {
    const { relay, instanceId } = this.#host;
    if (relay === null) return;
    try {
      await relay.start({
        instanceId,
        deliver: (message) => this.#deliver(message),
        error: (error) => this.#host.error(error instanceof PulsarError ? error : new PulsarError('ERR_RELAY', messageOf(error), { cause: error })),
      });
    } catch (error) {
      throw error instanceof PulsarError ? error : new PulsarError('ERR_RELAY', `relay.start() failed: ${messageOf(error)}`, { cause: error });
    }
  }

  /** Stops the relay, if any. */
  async stop(): Promise<void> {
    try {
      await this.#host.relay?.stop?.();
    } catch (error) {
      this.#host.error(new PulsarError('ERR_RELAY', `relay.stop() failed: ${messageOf(error)}`, { cause: error }));
    }
  }

  /** See `PulsarServer#group()`. */
  group(name: string): ConnectionGroup {
    const existing = this.#groups.get(name)?.deref();
    if (existing !== undefined) return existing;
    const group = new ConnectionGroup(kCreate, name, {
      payloadOf: (value) => this.#host.payloadOf(value),
      encode: (payload) => this.#host.codec.encode(payload),
      relay: (groupName, payload) => this.#publish({ kind: 'group', group: groupName, origin: this.#host.instanceId, payload }),
      caller: this.#host.caller,
    });
    const ref = new WeakRef(group);
    this.#groups.set(name, ref);
    this.#forgetGroup.register(group, { name, ref });
    return group;
  }

  /** The live groups (with members, or held by the application), by name. */
  get groups(): ReadonlyMap<string, ConnectionGroup> {
    const live = new Map<string, ConnectionGroup>();
    for (const [name, ref] of this.#groups) {
      const group = ref.deref();
      if (group !== undefined) live.set(name, group);
    }
    return live;
  }

  /** See `PulsarServer#sendTo()`. */
  async sendTo(globalId: string, payload: unknown): Promise<boolean> {
    const slash = globalId.lastIndexOf('/');
    const instance = globalId.slice(0, slash);
    const id = Number(globalId.slice(slash + 1));
    if (slash <= 0 || !Number.isSafeInteger(id)) throw new PulsarError('ERR_NO_SUCH_CONNECTION', `'${globalId}' is not a connection id (instance/id)`);
    const encoded = this.#host.payloadOf(payload);
    const bytes = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.length);
    if (instance === this.#host.instanceId) return this.#sendHere(id, bytes);
    const { relay, codec } = this.#host;
    if (relay === null) throw new PulsarError('ERR_NO_SUCH_CONNECTION', `connection ${globalId} is on instance ${instance}, and this server has no relay`);
    if (bytes.length > codec.maxFrameLength) codec.encode(bytes); // throws ERR_FRAME_TOO_LARGE here, not there
    await relay.publish({ kind: 'connection', instance, id, payload: bytes });
    return true;
  }

  /** Sends to a connection of this instance by id; one that is gone gets nothing, counted as dropped. */
  #sendHere(id: number, payload: Buffer): boolean {
    const conn = this.#host.connections.get(id);
    if (conn !== undefined) return conn[kSendPayload](payload);
    const { codec } = this.#host;
    if (payload.length > codec.maxFrameLength) codec.encode(payload); // throws ERR_FRAME_TOO_LARGE, as send() would
    debug('frame for connection %d dropped: it is not open here', id);
    this.#host.dropped();
    return false;
  }

  /** Hands a group broadcast to the other instances without waiting; a failure is reported once per outage. */
  #publish(message: RelayMessage): void {
    const { relay } = this.#host;
    if (relay === null) return;
    relay.publish(message).then(
      () => (this.#relayFailing = false),
      (error: unknown) => {
        if (this.#relayFailing) return;
        this.#relayFailing = true;
        this.#host.error(error instanceof PulsarError ? error : new PulsarError('ERR_RELAY', `relaying failed: ${messageOf(error)}`, { cause: error }));
      },
    );
  }

  /** A message another instance published: delivered to the connections here, never relayed again. */
  #deliver(message: RelayMessage): void {
    if (message.kind === 'group') {
      if (message.origin !== this.#host.instanceId) this.#groups.get(message.group)?.deref()?.[kDeliver](this.#host.codec.encode(message.payload));
      return;
    }
    try {
      this.#sendHere(message.id, message.payload);
    } catch (error) {
      debug('relayed frame for connection %d dropped: %s', message.id, messageOf(error)); // too large for this codec
    }
  }
}
