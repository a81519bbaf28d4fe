// custom-heartbeat: a HeartbeatPolicy whose heartbeat carries the server's time, sent to every client
// silent for an interval.
//
// Run:  node examples/custom-heartbeat.mjs [port] [interval-ms]   (defaults 8080, 2000)
// Try:  nc 127.0.0.1 8080 | xxd   -> a frame 'TIME 2026-…Z' every 2 s while you stay silent
// Stop: Ctrl+C.
import { PulsarServer } from 'pulsar';

class ClockHeartbeat {
  #interval;
  #timer;

  constructor(interval) {
    this.#interval = interval;
  }

  start(host) {
    this.stop();
    const lastPing = new WeakMap();
    this.#timer = setInterval(() => {
      const now = host.now();
      for (const conn of host.connections()) {
        const since = Math.max(conn.lastSeen, lastPing.get(conn) ?? 0);
        if (now - since < this.#interval) continue;
        lastPing.set(conn, now);
        host.ping(conn, Buffer.from(`TIME ${new Date(now).toISOString()}`));
      }
    }, this.#interval / 4);
    this.#timer.unref();
  }

  stop() {
    clearInterval(this.#timer);
  }
}

const server = new PulsarServer({
  port: Number(process.argv[2] ?? 8080),
  heartbeat: new ClockHeartbeat(Number(process.argv[3] ?? 2000)),
});
server.on('listening', ({ address, port }) => console.log(`listening on ${address}:${port}`));
server.on('heartbeat', (conn) => console.log(`time sent to ${conn.remote}`));
process.once('SIGINT', () => void server.close());
await server.listen();
