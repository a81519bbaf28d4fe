// `npm run soak -- --seconds N`: many clients with mixed behaviour against one pulsar server (server.mjs,
// its own process) for N seconds, reconnecting as they go. Prints, every tenth of the run, the server's
// connections and memory, and at the end the frames echoed, what the clients verified, the errors the
// server reported by code, and RSS and heap at start and end. Not part of `npm test`.
//
//   echo        pipeline frames of 0 B to 60 KiB, 8 in flight, check every echo in order, end gracefully
//   keepalive   stay connected, answer each heartbeat with a frame, check its echo
//   silent      send nothing: get heartbeats, then be reaped by the idle timeout
//   slow        send 1.5 MiB at once, read it back one chunk every 50 ms, check all of it
//   reset       send frames and half a frame, then reset the connection
//   oversized   announce a frame over the server's 64 KiB limit
//   hoarder     send all of a 60 KiB frame but its last byte, and hold it: closed by the frame timeout
//   trickler    send a frame one byte every 100 ms (slowloris on the payload): closed by the frame timeout
//   listener    subscribe to the server's broadcast feed (16 KiB every 10 ms), check every feed frame arrives
//   deaf        subscribe to the feed and never read: closed as a slow consumer
//
// Exit status 1 if an echo was lost or wrong, the server reported an unexpected error or crashed.
import { fork } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));
const { values: flags } = parseArgs({ options: { seconds: { type: 'string', default: '60' } } });
const seconds = Number(flags.seconds);
if (!(seconds > 0)) throw new Error('--seconds must be a positive number');

const MIX = { echo: 20, keepalive: 30, silent: 30, slow: 4, reset: 4, oversized: 2, hoarder: 10, trickler: 4, listener: 4, deaf: 4 };
const EXPECTED_ERRORS = new Set(['ERR_IDLE_TIMEOUT', 'ERR_FRAME_TOO_LARGE', 'ERR_CONNECTION_LOST', 'ERR_TRUNCATED_FRAME', 'ERR_FRAME_TIMEOUT', 'ERR_SLOW_CONSUMER']);
/** The server's peak RSS must stay under this: 109–116 MB measured in 40 s runs, twice that is a leak or a limit broken. */
const PEAK_RSS_BOUND = 256 * 1024 * 1024;
const HEARTBEAT = Buffer.from('HEARTBEAT');

const tally = { sessions: {}, verified: 0, lost: 0, wrong: 0, heartbeats: 0, unexpectedCloses: 0, notReaped: 0, feedVerified: 0, feedLost: 0, attackersNotClosed: 0 };
const count = (kind) => (tally.sessions[kind] = (tally.sessions[kind] ?? 0) + 1);

function frame(payload) {
  const wire = Buffer.allocUnsafe(4 + payload.length);
  wire.writeUInt32BE(payload.length, 0);
  payload.copy(wire, 4);
  return wire;
}

/** A payload that says which frame it is, so that a wrong or reordered echo shows. Never `HEARTBEAT`. */
function payload(seq, size) {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (seq + i * 7) & 0xff;
  if (size > 0) bytes[0] = 0;
  return bytes;
}

/** A client socket with a frame parser and a promise of its close. */
class Peer {
  constructor(port) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.setNoDelay(true);
    this.frames = [];
    this.onFrame = (f) => this.frames.push(f);
    this.chunks = [];
    this.buffered = 0;
    this.closedByServer = false;
    this.socket.on('data', (chunk) => this.#receive(chunk));
    this.socket.on('error', () => {});
    this.socket.on('end', () => (this.closedByServer = true));
    this.closed = new Promise((resolve) => this.socket.on('close', resolve));
    this.connected = new Promise((resolve) => this.socket.once('connect', resolve));
  }

  #receive(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const length = this.chunks[0].readUInt32BE(0);
      if (this.buffered < 4 + length) return;
      if (this.chunks[0].length < 4 + length) this.chunks = [Buffer.concat(this.chunks)];
      const head = this.chunks[0];
      const body = head.subarray(4, 4 + length);
      if (head.length === 4 + length) this.chunks.shift();
      else this.chunks[0] = head.subarray(4 + length);
      this.buffered -= 4 + length;
      this.onFrame(body);
    }
  }
}

const random = (min, max) => min + Math.floor(Math.random() * (max - min + 1));

/** Echo and keepalive sessions check each answer against the FIFO of what they sent. */
function checker(peer) {
  const pending = [];
  let settled;
  const idle = () => pending.length === 0 && settled?.();
  peer.onFrame = (f) => {
    if (f.equals(HEARTBEAT) && !(pending[0]?.equals(HEARTBEAT))) {
      tally.heartbeats++;
      peer.onHeartbeat?.();
      return;
    }
    const expected = pending.shift();
    if (expected && expected.equals(f)) tally.verified++;
    else tally.wrong++;
    idle();
  };
  return {
    pending,
    send(p) {
      pending.push(p);
      peer.socket.write(frame(p));
    },
    /** Resolves once every answer arrived, or after `ms`, counting the missing ones as lost. */
    async drained(ms) {
      if (pending.length > 0) await Promise.race([new Promise((resolve) => (settled = resolve)), delay(ms), peer.closed]);
      tally.lost += pending.length;
      pending.length = 0;
    },
  };
}

/** A well-behaved client leaves: it should not have been closed by the server first. */
async function leave(peer) {
  if (peer.closedByServer) tally.unexpectedCloses++;
  peer.socket.end();
  await peer.closed;
}

async function echoSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  const check = checker(peer);
  const until = Date.now() + random(2000, 6000);
  let seq = 0;
  const refill = () => {
    while (check.pending.length < 8 && Date.now() < until && !peer.closedByServer) {
      check.send(payload(seq++, Math.random() < 0.05 ? random(4096, 60 * 1024) : random(0, 4096)));
    }
  };
  const onFrame = peer.onFrame;
  peer.onFrame = (f) => {
    onFrame(f);
    refill();
  };
  refill();
  await delay(until - Date.now());
  await check.drained(10000);
  await leave(peer);
}

async function keepaliveSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  const check = checker(peer);
  let seq = 0;
  peer.onHeartbeat = () => check.send(payload(seq++, random(1, 64)));
  await Promise.race([delay(random(5000, 10000)), peer.closed]);
  await check.drained(5000);
  await leave(peer);
}

async function silentSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  let beats = 0;
  peer.onFrame = (f) => (f.equals(HEARTBEAT) ? beats++ : tally.wrong++);
  await Promise.race([peer.closed, delay(15000)]);
  tally.heartbeats += beats;
  // Reaped by the 4 s idle timeout after 1 s heartbeats: at least two of them, then the close.
  if (!peer.socket.destroyed) tally.notReaped++;
  if (beats < 2) tally.wrong++;
  peer.socket.destroy();
}

async function slowSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  const check = checker(peer);
  // One read chunk (up to 64 KiB) every 50 ms: about 1 MB/s.
  peer.socket.pause();
  const reader = setInterval(() => {
    peer.socket.once('data', () => peer.socket.pause());
    peer.socket.resume();
  }, 50);
  for (let i = 0; i < 48; i++) check.send(payload(i, 32 * 1024));
  await check.drained(20000);
  clearInterval(reader);
  peer.socket.resume();
  await leave(peer);
}

async function resetSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  peer.onFrame = () => {};
  const frames = Array.from({ length: random(1, 20) }, (_, i) => frame(payload(i, random(0, 8192))));
  peer.socket.write(Buffer.concat([...frames, Buffer.from([0, 0, 1, 0, 1, 2, 3])]));
  await delay(random(0, 300));
  peer.socket.resetAndDestroy();
  await peer.closed;
}

async function oversizedSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  peer.socket.write(Buffer.from([0, 0x10, 0, 0, 1, 2, 3])); // announces 1 MiB
  await Promise.race([peer.closed, delay(5000)]);
  if (!peer.closedByServer && !peer.socket.destroyed) tally.wrong++;
  peer.socket.destroy();
  await delay(500);
}

/** Sends `wire`, then waits up to `ms` for the server to close the connection; counts it if it does not. */
async function expectClosedByServer(peer, ms) {
  await Promise.race([peer.closed, delay(ms)]);
  if (!peer.socket.destroyed && !peer.closedByServer) tally.attackersNotClosed++;
  peer.socket.destroy();
  await peer.closed;
}

async function hoarderSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  const wire = frame(payload(1, 60 * 1024));
  peer.socket.write(wire.subarray(0, wire.length - 1));
  await expectClosedByServer(peer, 6000); // frame timeout 2 s
}

async function tricklerSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  const wire = frame(payload(2, 1000));
  let sent = 0;
  const drip = setInterval(() => sent < wire.length && peer.socket.writable && peer.socket.write(wire.subarray(sent, ++sent)), 100);
  await expectClosedByServer(peer, 6000); // frame timeout 2 s, though a byte comes every 100 ms
  clearInterval(drip);
}

const SUBSCRIBE = Buffer.from('SUBSCRIBE');
const isFeed = (f) => f.length >= 8 && f.toString('latin1', 0, 4) === 'FEED';

async function listenerSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  let next = -1;
  peer.onFrame = (f) => {
    if (f.equals(HEARTBEAT)) peer.socket.write(frame(Buffer.from('alive'))); // stay alive: only inbound bytes count
    if (!isFeed(f)) return;
    const seq = f.readUInt32BE(4);
    if (next !== -1 && seq !== next) tally.feedLost += Math.max(0, seq - next);
    if (f[8] !== (seq & 0xff) || f.length !== 16 * 1024) tally.wrong++;
    else tally.feedVerified++;
    next = seq + 1;
  };
  peer.socket.write(frame(SUBSCRIBE));
  await Promise.race([delay(random(3000, 8000)), peer.closed]);
  await leave(peer);
}

async function deafSession(port) {
  const peer = new Peer(port);
  await peer.connected;
  peer.socket.write(frame(SUBSCRIBE));
  peer.socket.pause();
  // Never reads, but keeps talking: a paused socket notices the server's reset only when it writes.
  const talk = setInterval(() => peer.socket.writable && peer.socket.write(frame(Buffer.from('still here'))), 500);
  await expectClosedByServer(peer, 10000); // write timeout 1 s, or 2 MiB pending
  clearInterval(talk);
}

const SESSIONS = {
  echo: echoSession, keepalive: keepaliveSession, silent: silentSession, slow: slowSession, reset: resetSession, oversized: oversizedSession,
  hoarder: hoarderSession, trickler: tricklerSession, listener: listenerSession, deaf: deafSession,
};

// ---- the run ----

const server = fork(join(here, 'server.mjs'), [], { execArgv: ['--expose-gc'] });
const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
const { port } = await new Promise((resolve) => server.once('message', resolve));

function ask() {
  return new Promise((resolve) => {
    const listener = (message) => {
      if (!message.stats || message.closed) return;
      server.off('message', listener);
      resolve(message.stats);
    };
    server.on('message', listener);
    server.send('stats');
  });
}

const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1);
const started = Date.now();
const deadline = started + seconds * 1000;
const loops = [];
for (const [kind, n] of Object.entries(MIX)) {
  for (let i = 0; i < n; i++) {
    loops.push((async () => {
      await delay(random(0, 1000)); // staggered starts
      while (Date.now() < deadline) {
        await SESSIONS[kind](port);
        count(kind);
      }
    })());
  }
}

console.log(`soak: ${seconds} s against 127.0.0.1:${port}; clients ${Object.entries(MIX).map(([k, n]) => `${n} ${k}`).join(', ')}`);
// Memory at start is read once the first connections are up and the code is warm.
const warmup = Math.min(10, seconds / 10) * 1000;
await delay(warmup);
const first = await ask();
const samples = [first];
console.log(`${'t (s)'.padStart(6)} ${'conns'.padStart(6)} ${'frames in'.padStart(10)} ${'RSS MB'.padStart(7)} ${'heap MB'.padStart(8)} ${'buffers MB'.padStart(10)}`);
const line = (s) => console.log(`${((Date.now() - started) / 1000).toFixed(0).padStart(6)} ${String(s.connections).padStart(6)} ${String(s.framesIn).padStart(10)} ${mb(s.rss).padStart(7)} ${mb(s.heapUsed).padStart(8)} ${mb(s.arrayBuffers).padStart(10)}`);
line(first);
const step = Math.max(1000, (seconds * 1000) / 10);
while (Date.now() + step <= deadline) {
  await delay(step);
  const s = await ask();
  samples.push(s);
  line(s);
}
await Promise.all(loops);
const last = await ask();
line(last);

server.send('close');
const { closed, stats: final } = await new Promise((resolve) => server.on('message', (m) => m.closed && resolve(m)));
const { code } = await exited;

const errors = Object.entries(final.errors).sort();
const unexpected = errors.filter(([c]) => !EXPECTED_ERRORS.has(c));
const steady = samples.slice(Math.floor(samples.length / 2));
const summary = [
  ['duration', `${((Date.now() - started) / 1000).toFixed(0)} s`],
  ['connections accepted', final.accepted],
  ['connections held (peak)', final.peak],
  ['sessions by kind', Object.entries(tally.sessions).map(([k, n]) => `${k} ${n}`).join(', ')],
  ['frames decoded by the server', final.framesIn],
  ['frames sent by the server', `${final.framesOut} (${final.heartbeats} heartbeats, ${final.feed} feed)`],
  ['frames decoded but never answered', final.framesIn - (final.framesOut - final.heartbeats - final.feed)],
  ['echoes verified by clients', tally.verified],
  ['echoes lost / wrong', `${tally.lost} / ${tally.wrong}`],
  ['well-behaved clients closed by the server', tally.unexpectedCloses],
  ['silent clients not reaped', tally.notReaped],
  ['feed frames verified / lost by listeners', `${tally.feedVerified} / ${tally.feedLost}`],
  ['attackers not closed by the server', tally.attackersNotClosed],
  ['server peak RSS / bound', `${mb(final.peakRss)} / ${mb(PEAK_RSS_BOUND)} MB`],
  ['reports emitted', final.reports],
  ['client errors by code', errors.map(([c, n]) => `${c} ${n}`).join(', ') || 'none'],
  ['RSS start → end (second half min–max)', `${mb(first.rss)} → ${mb(last.rss)} MB (${mb(Math.min(...steady.map((s) => s.rss)))}–${mb(Math.max(...steady.map((s) => s.rss)))})`],
  ['heap start → end (after GC)', `${mb(first.heapUsed)} → ${mb(last.heapUsed)} MB (${mb(Math.min(...steady.map((s) => s.heapUsed)))}–${mb(Math.max(...steady.map((s) => s.heapUsed)))})`],
  ['Buffer memory start → end', `${mb(first.arrayBuffers)} → ${mb(last.arrayBuffers)} MB`],
  ['close()', `${closed.drained} drained, ${closed.forced} forced; server exit ${code}`],
];
console.log();
for (const [name, value] of summary) console.log(`${name.padEnd(48)} ${value}`);

const failures = [];
if (tally.lost > 0 || tally.wrong > 0) failures.push(`${tally.lost} echoes lost and ${tally.wrong} wrong`);
if (final.framesIn !== final.framesOut - final.heartbeats - final.feed) failures.push('the server left frames unanswered');
if (tally.feedLost > 0) failures.push(`${tally.feedLost} feed frames lost by listeners`);
if (tally.attackersNotClosed > 0) failures.push(`${tally.attackersNotClosed} attackers not closed by the server`);
if (final.peakRss > PEAK_RSS_BOUND) failures.push(`server peak RSS ${mb(final.peakRss)} MB over the ${mb(PEAK_RSS_BOUND)} MB bound`);
if (tally.unexpectedCloses > 0) failures.push(`${tally.unexpectedCloses} well-behaved clients closed by the server`);
if (tally.notReaped > 0) failures.push(`${tally.notReaped} silent clients not reaped by the idle timeout`);
if (unexpected.length > 0) failures.push(`unexpected errors: ${unexpected.map(([c]) => c).join(', ')}`);
if (code !== 0) failures.push(`server exited with ${code}`);
if (final.connections !== 0) failures.push(`${final.connections} connections left after close`);
if (failures.length > 0) {
  console.log(`\nFAILED: ${failures.join('; ')}`);
  process.exitCode = 1;
} else {
  console.log('\nok: nothing lost, nothing wrong');
}
