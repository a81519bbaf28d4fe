// custom-registry: a Registry that keeps per-client statistics and rewrites a JSON status file whenever
// a client comes or goes (asynchronously: the server never waits on it to serve frames).
//
// Run:  node examples/custom-registry.mjs [port] [status-file]   (defaults 8080, ./pulsar-status.json)
// Try:  nc 127.0.0.1 8080, then `cat pulsar-status.json` in another terminal; close nc and look again.
// Stop: Ctrl+C.
import { writeFile } from 'node:fs/promises';
import { PulsarServer } from 'pulsar';

class StatusFileRegistry {
  #live = new Map();
  #visits = new Map(); // client address -> connections so far
  #file;
  #writing = Promise.resolve();

  constructor(file) {
    this.#file = file;
  }

  add(conn) {
    this.#live.set(conn.id, conn);
    this.#visits.set(conn.remoteAddress, (this.#visits.get(conn.remoteAddress) ?? 0) + 1);
    return this.#save();
  }

  remove(conn) {
    this.#live.delete(conn.id);
    return this.#save();
  }

  snapshot() {
    const now = Date.now();
    return [...this.#live.values()].map((conn) => conn.snapshot(now));
  }

  /** Writes one after the other, so the file always ends with the latest state. */
  #save() {
    const status = { updated: new Date().toISOString(), live: this.snapshot(), visits: Object.fromEntries(this.#visits) };
    this.#writing = this.#writing
      .then(() => writeFile(this.#file, `${JSON.stringify(status, null, 2)}\n`))
      .then(() => console.log(`status written: ${status.live.length} live`));
    return this.#writing;
  }
}

const file = process.argv[3] ?? 'pulsar-status.json';
const server = new PulsarServer({ port: Number(process.argv[2] ?? 8080), registry: new StatusFileRegistry(file) });
server.on('listening', ({ address, port }) => console.log(`listening on ${address}:${port}, status in ${file}`));
server.on('error', (error) => console.error(`registry error: ${error.message}`));
process.once('SIGINT', () => void server.close());
await server.listen();
