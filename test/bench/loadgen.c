/*
 * Load generator for `npm run bench`: one epoll thread driving many framed-echo connections, written so
 * that it is never the bottleneck (frames pre-built once, echoes checked by their header only, one read
 * and at most one write per ready socket).
 *
 *   loadgen --port P [--host 127.0.0.1] --mode echo|churn|idle|refuse [--conns 50] [--depth 16] [--size 64]
 *           [--framing length|varint|lines] [--payload-hex HEX]
 *           [--warmup 1] [--seconds 3]
 *
 * echo: each connection keeps `depth` frames of `size` payload bytes in flight and sends a new one for each
 *       echo it reads. After `warmup` seconds it prints {"measuring":true}, counts for `seconds` and prints
 *       one JSON line with frames, bytes and, at depth 1, p50/p99 round-trip latency in microseconds.
 * fanout: connection 0 keeps `depth` frames in flight, sending one more for each that comes back to it; the
 *       server broadcasts each frame to every connection (all are members). "frames" counts the frames all
 *       connections received.
 * refuse: each connection sends nothing and waits for the server to close it (a refusal at accept), then
 *   connects again; "frames" counts the refusals;
 * churn: each connection sends one frame, reads its echo, closes and connects again (the accept path);
 *       "frames" counts those round trips, one per connection made.
 * idle: opens `conns` connections, prints {"connected":N}, then reads (and discards: heartbeats) for
 *       `seconds` and prints {"heartbeats":…}.
 * --payload-hex: every frame carries these bytes (a JSON message, say) instead of `size` generated ones; the
 *       server's answer must be as long.
 * Exit status 1 on any error, including an echo whose header is not the frame that was sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_FRAME_BYTES 13 /* 4-byte header + "HEARTBEAT" */
#define MAX_SAMPLES (4 * 1024 * 1024)

typedef struct {
  int fd;
  uint64_t owed;        /* bytes of frames still to write */
  uint32_t out_pos;     /* position inside the repeating frame pattern */
  uint32_t hdr_have;    /* header bytes of the current inbound frame read so far */
  uint8_t hdr[4];
  uint64_t body_left;   /* payload bytes of the current inbound frame still to skip */
  uint32_t varint;      /* --framing varint: the length read so far (hdr_have counts its bytes) */
  uint64_t line_len;    /* --framing lines: bytes of the current inbound line so far */
  int want_out;         /* EPOLLOUT registered */
  double sent_at;       /* depth 1 only: when the outstanding frame was written */
} conn_t;

static const char *host = "127.0.0.1";
static int port, conns = 50, depth = 16, size = 64;
static double warmup = 1, seconds = 3;
static const char *mode = "echo";
static const char *payload_hex = NULL;
enum { LENGTH, VARINT, LINES };
static int framing = LENGTH;
static uint8_t *pattern;     /* depth + 1 frames back to back, so any write position has `depth` frames after it */
static uint32_t frame_len;
static double *samples;
static size_t nsamples;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int open_conn(struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0) {
    if (errno != EINTR) die("connect");
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
  return fd;
}

/* Writes as much of what the connection owes as the socket takes; asks for EPOLLOUT if it took less. */
static void flush_out(int ep, conn_t *c) {
  while (c->owed > 0) {
    size_t room = (size_t)depth * frame_len + frame_len - c->out_pos;
    size_t len = c->owed < room ? c->owed : room;
    ssize_t n = write(c->fd, pattern + c->out_pos, len);
    if (n < 0) {
      if (errno == EAGAIN) break;
      die("write");
    }
    c->owed -= n;
    c->out_pos = (c->out_pos + n) % frame_len;
  }
  int want = c->owed > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want;
  }
}

/* Counts a whole echoed frame of `n` payload bytes: ours, or a heartbeat. */
static uint64_t count_frame(uint64_t n, uint64_t *heartbeats) {
  if (n == (uint64_t)size) return 1;
  if (n == HEARTBEAT_FRAME_BYTES - 4) {
    (*heartbeats)++;
    return 0;
  }
  fprintf(stderr, "loadgen: unexpected frame of %llu bytes (sent %d)\n", (unsigned long long)n, size);
  exit(1);
}

/* --framing lines: counts the lines ending in `len` bytes. */
static uint64_t parse_lines(conn_t *c, const uint8_t *p, size_t len, uint64_t *heartbeats) {
  uint64_t done = 0;
  const uint8_t *end = p + len;
  while (p < end) {
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
      c->line_len += (uint64_t)(end - p);
      break;
    }
    done += count_frame(c->line_len + (uint64_t)(nl - p), heartbeats);
    c->line_len = 0;
    p = nl + 1;
  }
  return done;
}

/* Parses echoes out of `len` bytes; returns how many frames of our size completed. */
static uint64_t parse(conn_t *c, const uint8_t *p, size_t len, uint64_t *heartbeats) {
  if (framing == LINES) return parse_lines(c, p, len, heartbeats);
  uint64_t done = 0;
  while (len > 0) {
    if (c->body_left > 0) {
      size_t skip = len < c->body_left ? len : c->body_left;
      c->body_left -= skip;
      p += skip;
      len -= skip;
      continue;
    }
    uint32_t n;
    if (framing == VARINT) {
      int complete = 0;
      while (!complete && len > 0) {
        uint8_t b = *p++;
        len--;
        c->varint |= (uint32_t)(b & 0x7f) << (7 * c->hdr_have++);
        complete = b < 0x80;
      }
      if (!complete) break;
      n = c->varint;
      c->varint = 0;
    } else {
      while (c->hdr_have < 4 && len > 0) {
        c->hdr[c->hdr_have++] = *p++;
        len--;
      }
      if (c->hdr_have < 4) break;
      n = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 | (uint32_t)c->hdr[2] << 8 | c->hdr[3];
    }
    c->hdr_have = 0;
    c->body_left = n;
    done += count_frame(n, heartbeats);
  }
  return done;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--host")) host = v;
    else if (!strcmp(k, "--port")) port = atoi(v);
    else if (!strcmp(k, "--mode")) mode = v;
    else if (!strcmp(k, "--conns")) conns = atoi(v);
    else if (!strcmp(k, "--depth")) depth = atoi(v);
    else if (!strcmp(k, "--size")) size = atoi(v);
    else if (!strcmp(k, "--framing")) framing = !strcmp(v, "varint") ? VARINT : !strcmp(v, "lines") ? LINES : !strcmp(v, "length") ? LENGTH : -1;
    else if (!strcmp(k, "--warmup")) warmup = atof(v);
    else if (!strcmp(k, "--seconds")) seconds = atof(v);
    else if (!strcmp(k, "--payload-hex")) payload_hex = v;
    else { fprintf(stderr, "loadgen: unknown flag %s\n", k); return 2; }
  }
  if (payload_hex != NULL) size = (int)(strlen(payload_hex) / 2);
  int idle = !strcmp(mode, "idle"), churn = !strcmp(mode, "churn"), fanout = !strcmp(mode, "fanout"), refuse = !strcmp(mode, "refuse");
  if (churn || refuse) depth = 1;
  if (port <= 0 || conns <= 0 || depth <= 0 || size < 0 || framing < 0 || (framing == VARINT && size >= 1 << 28) || (!idle && !churn && !fanout && !refuse && strcmp(mode, "echo"))) {
    fprintf(stderr, "loadgen: bad arguments\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  /* One frame in the chosen framing: its header, then the payload (printable, no newline, for lines). */
  uint8_t header[5];
  uint32_t header_len = 0, trailer_len = framing == LINES ? 1 : 0;
  if (framing == LENGTH) {
    header[0] = size >> 24; header[1] = size >> 16; header[2] = size >> 8; header[3] = size;
    header_len = 4;
  } else if (framing == VARINT) {
    uint32_t v = (uint32_t)size;
    do {
      header[header_len++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      v >>= 7;
    } while (v > 0);
  }
  frame_len = header_len + size + trailer_len;
  pattern = malloc((size_t)(depth + 1) * frame_len);
  for (int f = 0; f <= depth; f++) {
    uint8_t *q = pattern + (size_t)f * frame_len;
    memcpy(q, header, header_len);
    for (int j = 0; j < size; j++) {
      if (payload_hex != NULL) sscanf(payload_hex + 2 * j, "%2hhx", &q[header_len + j]);
      else q[header_len + j] = framing == LINES ? (uint8_t)('a' + j % 26) : (uint8_t)(j * 31 + 7);
    }
    if (trailer_len) q[header_len + size] = '\n';
  }
  samples = depth == 1 && !idle && !churn && !fanout ? malloc(sizeof(double) * MAX_SAMPLES) : NULL;

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "loadgen: bad host\n"); return 2; }
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  conn_t *cs = calloc(conns, sizeof(conn_t));
  for (int i = 0; i < conns; i++) {
    cs[i].fd = open_conn(&addr);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
  }
  if (idle) {
    printf("{\"connected\":%d}\n", conns);
    fflush(stdout);
  } else {
    double t = now();
    for (int i = 0; i < (fanout ? 1 : refuse ? 0 : conns); i++) {
      cs[i].owed = (uint64_t)depth * frame_len;
      cs[i].sent_at = t;
      flush_out(ep, &cs[i]);
    }
  }

  static uint8_t buf[256 * 1024];
  struct epoll_event events[512];
  double start = now(), measure_from = start + (idle ? 0 : warmup), end = measure_from + seconds;
  uint64_t frames = 0, heartbeats = 0;
  int measuring = idle;
  for (double t = start; t < end; t = now()) {
    if (!measuring && t >= measure_from) {
      measuring = 1;
      printf("{\"measuring\":true}\n"); /* lets the caller sample the server's CPU time at the same moment */
      fflush(stdout);
    }
    int n = epoll_wait(ep, events, 512, 50);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int e = 0; e < n; e++) {
      conn_t *c = events[e].data.ptr;
      if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t got = read(c->fd, buf, sizeof buf);
        if (refuse && (got == 0 || (got < 0 && errno != EAGAIN))) { /* refused: count it, connect again */
          if (measuring) frames++;
          if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) < 0) die("epoll_ctl");
          close(c->fd);
          memset(c, 0, sizeof *c);
          c->fd = open_conn(&addr);
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
          continue;
        }
        if (got == 0) { fprintf(stderr, "loadgen: server closed a connection\n"); return 1; }
        if (got < 0) {
          if (errno != EAGAIN) die("read");
        } else {
          uint64_t echoed = parse(c, buf, (size_t)got, &heartbeats);
          if (echoed > 0 && !idle) {
            if (measuring) {
              frames += echoed;
              if (samples && nsamples < MAX_SAMPLES) samples[nsamples++] = (now() - c->sent_at) * 1e6;
            }
            if (samples) c->sent_at = now();
            if (!fanout || c == &cs[0]) c->owed += echoed * frame_len;
            if (churn) { /* the round trip is done: a new connection takes its place */
              if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) < 0) die("epoll_ctl");
              close(c->fd);
              memset(c, 0, sizeof *c);
              c->fd = open_conn(&addr);
              c->owed = frame_len;
              struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
              if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
            }
          }
        }
      }
      if (c->owed > 0) flush_out(ep, c);
    }
  }
  double elapsed = now() - measure_from;

  if (idle) {
    printf("{\"heartbeats\":%llu,\"seconds\":%.3f}\n", (unsigned long long)heartbeats, elapsed);
  } else {
    double p50 = 0, p99 = 0;
    if (nsamples > 0) {
      qsort(samples, nsamples, sizeof(double), cmp_double);
      p50 = samples[nsamples / 2];
      p99 = samples[(size_t)(nsamples * 0.99)];
    }
    printf("{\"frames\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
           (unsigned long long)frames, (unsigned long long)frames * frame_len, elapsed, p50, p99);
  }
  fflush(stdout);
  return 0;
}
