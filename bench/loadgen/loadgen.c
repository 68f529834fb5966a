/*
 * loadgen: an epoll WebSocket load client for `mtbridge bench`.
 *
 * One process, one thread, N client connections to ws://host:port/path. It parses
 * frame headers only and counts messages; the only payload inspection on the hot path
 * is a bounded scan of the first bytes for an embedded send timestamp ("t":<ns> in
 * JSON, or a msgpack "t" key) when --latency is given. Pings are answered with masked
 * pongs. In --sio mode it speaks engine.io v4 / socket.io over the websocket transport:
 * it answers engine.io pings ("2") with pongs ("3") and counts only "42" event packets.
 *
 * Modes:
 *   sub  N subscriber connections that count deliveries.
 *   pub  one connection that publishes messages built from a template at --rate msgs/s
 *        (0 = as fast as the socket takes them, bounded by --window unacknowledged
 *        requests when the server answers each publish).
 *
 * Per connection, --init messages are sent in lockstep: the first once --init-wait
 * frames have arrived, each next one after one more frame. A connection is ready once
 * it has received --ready-frames frames. Frames before ready are checked for a JSON or
 * msgpack "type":"error" and abort the run with a message.
 *
 * Control on stdin, one command per line; every answer is one JSON line on stdout:
 *   m  mark: counters since start, latency percentiles since the previous mark
 *   g  (pub) start publishing      s  (pub) stop publishing      q  quit
 * A {"event":"ready",...} line is printed when every connection is ready or failed.
 *
 * Build: gcc -O2 -o loadgen loadgen.c   (Linux only: epoll, timer-free pacing)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCAN_MAX 512          /* payload prefix kept per frame: control payloads, timestamp and id scans */
#define RECV_BUF (256 * 1024) /* one shared receive buffer */
#define HS_MAX 4096           /* largest HTTP upgrade response accepted */
#define MAX_INIT 8
#define OUT_HIGH (256 * 1024) /* publisher stops generating while this much is unsent */
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_SUB * 48)
#define MAX_CODES 16

enum { ST_CONNECTING = 1, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t ready;
    uint8_t failed;
    uint8_t in_payload;
    uint8_t hdr_len;
    uint8_t opcode;
    uint8_t fin;
    uint8_t msg_opcode; /* opcode of the data message in progress (for continuations) */
    uint8_t first_fragment;
    uint8_t is_pub;
    uint16_t scan_len;
    uint16_t scan_want;
    uint32_t frames_seen;
    uint32_t init_sent;
    uint64_t remaining;
    uint64_t sent, acks; /* pub mode: requests sent and answers received on this connection */
    char hdr[14];
    char scan[SCAN_MAX];
    char *out;
    uint32_t out_len, out_cap;
    char *hs;
    uint32_t hs_len;
} conn_t;

/* ---- options ---- */
static const char *opt_host = "127.0.0.1";
static int opt_port = 8765;
static const char *opt_subprotocol = NULL;
static const char *opt_mode = "sub";
static int opt_conns = 1;
/* How a connection is set up: the primary options fill `main_spec`; the --pub-* options
 * fill `pub_spec` for the publisher embedded in sub mode. */
typedef struct {
    const char *path;
    struct { char *data; size_t len; int opcode; } init[MAX_INIT];
    int init_count;
    int init_wait;
    int ready_frames;
} spec_t;
static spec_t main_spec = {.path = "/"}, pub_spec = {.path = NULL};
static int embedded_pub;  /* sub mode with one publisher connection after the subscribers */
static int opt_inflight;  /* embedded publisher: messages in flight to every subscriber, at most */
static int n_total;       /* connections including the embedded publisher */
static const char *opt_count_contains = NULL;
static const char *opt_ack_template = NULL;
static const char *opt_ack_template2 = NULL; /* a second answer per counted message (e.g. ack, then report) */
static const char *opt_pub_answer = NULL;    /* pub: only frames containing this are answers (window, acks) */
#define MAX_TALLIES 4
static const char *tally_needle[MAX_TALLIES];
static uint64_t tally_count[MAX_TALLIES];
static int n_tallies;
static const char *opt_ts_key = "t";
static char ts_needle[72];
static size_t ts_needle_len;
static char first_error[256];
static uint64_t errors_seen, other_frames, acks_sent;
static uint32_t run_id;
static int opt_sio = 0;
static int opt_latency = 0;
static int opt_concurrency = 100;
static double opt_rate = 0;
static const char *opt_template = NULL;
static const char *opt_msgpack_channel = NULL;
static int opt_pad = 0;
static int opt_window = 0;
static double opt_ready_timeout = 60.0;

/* ---- state ---- */
static int ep = -1;
static conn_t *conns;
static int n_started, n_ready, n_failed, n_open, n_closed_after_ready, inflight;
static uint64_t frames_counted, bytes_counted, pings_answered;
static uint64_t t_start_ns, t_ready_ns;
static int ready_reported;
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_n, hist_max;
static struct { int code; uint64_t n; } close_codes[MAX_CODES];
static int n_close_codes;
static char rbuf[RECV_BUF];
static char stdin_buf[256];
static size_t stdin_len;
static int want_quit;
/* publisher */
static int publishing;
static uint64_t pub_sent, pub_acks, pub_start_ns, frames_at_go, frames_since_go;
static struct sockaddr_in addr;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---- latency histogram: 64 linear sub-buckets per power of two, in microseconds ---- */
static int hist_index(uint64_t v) {
    if (v < 2 * HIST_SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6; /* v >> shift is in [64, 127] */
    int idx = (shift + 1) * HIST_SUB + (int)((v >> shift) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static uint64_t hist_value(int idx) {
    if (idx < 2 * HIST_SUB) return (uint64_t)idx;
    int shift = idx / HIST_SUB - 1;
    uint64_t sub = (uint64_t)(idx % HIST_SUB) + HIST_SUB;
    return (sub << shift) + ((1ull << shift) >> 1); /* bucket midpoint */
}

static void hist_record(uint64_t us) {
    hist[hist_index(us)]++;
    hist_n++;
    if (us > hist_max) hist_max = us;
}

static uint64_t hist_percentile(double q) {
    if (hist_n == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)hist_n);
    if (rank >= hist_n) rank = hist_n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > rank) {
            uint64_t v = hist_value(i);
            return v > hist_max ? hist_max : v;
        }
    }
    return hist_max;
}

/* ---- output buffer per connection ---- */
static void out_reserve(conn_t *c, uint32_t extra) {
    if (c->out_len + extra <= c->out_cap) return;
    uint32_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < c->out_len + extra) cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) die("out of memory");
    c->out = p;
    c->out_cap = cap;
}

static void conn_watch(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn_t *c);

static void flush_out(conn_t *c) {
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_watch(c, EPOLLIN | EPOLLOUT);
                return;
            }
            if (errno == EINTR) continue;
            conn_close(c);
            return;
        }
        if ((uint32_t)n < c->out_len) memmove(c->out, c->out + n, c->out_len - (uint32_t)n);
        c->out_len -= (uint32_t)n;
    }
    if (c->out_cap > 65536) { /* give back a burst's worth of memory */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    conn_watch(c, EPOLLIN);
}

/* Append one masked client frame. */
static void frame_append(conn_t *c, int opcode, const char *payload, size_t len) {
    out_reserve(c, (uint32_t)(len + 14));
    unsigned char *h = (unsigned char *)c->out + c->out_len;
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    uint32_t mask = (uint32_t)random();
    unsigned char mk[4];
    memcpy(mk, &mask, 4);
    memcpy(h + hl, mk, 4);
    hl += 4;
    unsigned char *dst = h + hl;
    for (size_t i = 0; i < len; i++) dst[i] = (unsigned char)payload[i] ^ mk[i & 3];
    c->out_len += (uint32_t)(hl + len);
}

static void send_frame(conn_t *c, int opcode, const char *payload, size_t len) {
    int was_empty = c->out_len == 0;
    frame_append(c, opcode, payload, len);
    if (was_empty) flush_out(c);
}

/* ---- connection lifecycle ---- */
static void report_ready_if_done(void);

static void conn_close(conn_t *c) {
    if (c->state == ST_CLOSED) return;
    struct linger lg = {1, 0}; /* reset, so that repeated runs leave no TIME_WAIT behind */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    if (c->state == ST_OPEN) n_open--;
    c->state = ST_CLOSED;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    free(c->hs);
    c->hs = NULL;
    if (c->ready) {
        n_closed_after_ready++;
    } else {
        inflight--;
        c->failed = 1;
        n_failed++;
    }
    report_ready_if_done();
}

static void start_conn(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->is_pub) { /* keep the backlog a flooding publisher leaves in the kernel small */
        int sndbuf = 64 * 1024;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    inflight++;
    n_started++;
    int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    if (r < 0 && errno != EINPROGRESS) conn_close(c);
}

static void start_more(void) {
    while (n_started < n_total && inflight < opt_concurrency) {
        /* the embedded publisher connects once every subscriber is ready */
        if (embedded_pub && n_started == opt_conns && n_ready < opt_conns) return;
        start_conn(&conns[n_started]);
    }
}

static void send_handshake(conn_t *c) {
    unsigned char key[16];
    if (getrandom(key, sizeof key, 0) != sizeof key) for (int i = 0; i < 16; i++) key[i] = (unsigned char)random();
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char k64[25];
    int j = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
        k64[j++] = b64[(v >> 18) & 63];
        k64[j++] = b64[(v >> 12) & 63];
        k64[j++] = b64[(v >> 6) & 63];
        k64[j++] = b64[v & 63];
    }
    uint32_t v = (uint32_t)key[15] << 16;
    k64[j++] = b64[(v >> 18) & 63];
    k64[j++] = b64[(v >> 12) & 63];
    k64[j++] = '=';
    k64[j++] = '=';
    k64[j] = 0;
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     (c->is_pub ? &pub_spec : &main_spec)->path, opt_host, opt_port, k64, opt_subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     opt_subprotocol ? opt_subprotocol : "", opt_subprotocol ? "\r\n" : "");
    if (n <= 0 || n >= (int)sizeof req) die("request too long");
    out_reserve(c, (uint32_t)n);
    memcpy(c->out + c->out_len, req, (size_t)n);
    c->out_len += (uint32_t)n;
    c->state = ST_HANDSHAKE;
    flush_out(c);
}

static void maybe_send_init(conn_t *c) {
    const spec_t *sp = c->is_pub ? &pub_spec : &main_spec;
    while (c->init_sent < (uint32_t)sp->init_count && c->frames_seen >= (uint32_t)sp->init_wait + c->init_sent) {
        int k = (int)c->init_sent++;
        send_frame(c, sp->init[k].opcode, sp->init[k].data, sp->init[k].len);
        if (c->state == ST_CLOSED) return;
    }
}

static void mark_ready(conn_t *c) {
    c->ready = 1;
    n_ready++;
    inflight--;
    start_more();
    report_ready_if_done();
}

static void report_ready_if_done(void) {
    if (ready_reported || n_ready + n_failed < n_total) return;
    ready_reported = 1;
    t_ready_ns = now_ns();
    printf("{\"event\":\"ready\",\"conns\":%d,\"ready\":%d,\"failed\":%d,\"elapsed_s\":%.6f,\"cpu_s\":%.6f}\n",
           n_total, n_ready, n_failed, (double)(t_ready_ns - t_start_ns) / 1e9, (double)cpu_ns() / 1e9);
    fflush(stdout);
}

/* ---- payload inspection ---- */
static int scan_has_error(const conn_t *c) {
    return memmem(c->scan, c->scan_len, "\"type\":\"error\"", 14) != NULL ||
           memmem(c->scan, c->scan_len, "\xa4type\xa5" "error", 11) != NULL;
}

static int scan_timestamp(const conn_t *c, uint64_t *out) {
    const char *s = c->scan, *end = c->scan + c->scan_len;
    const char *p = memmem(s, c->scan_len, ts_needle, ts_needle_len);
    if (p) {
        p += ts_needle_len;
        if (p < end && *p == '"') p++; /* a timestamp carried as a string of digits */
        uint64_t v = 0;
        int digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
        if (!digits) return 0;
        *out = v;
        return 1;
    }
    p = memmem(s, c->scan_len, "\xa1t", 2);
    if (!p) return 0;
    const unsigned char *q = (const unsigned char *)p + 2, *qe = (const unsigned char *)end;
    if (q >= qe) return 0;
    unsigned char tag = *q++;
    int len;
    if (tag < 0x80) { *out = tag; return 1; }
    if (tag == 0xcc) len = 1;
    else if (tag == 0xcd) len = 2;
    else if (tag == 0xce) len = 4;
    else if (tag == 0xcf) len = 8;
    else return 0;
    if (q + len > qe) return 0;
    uint64_t v = 0;
    for (int i = 0; i < len; i++) v = v << 8 | q[i];
    *out = v;
    return 1;
}

static void record_close_code(int code) {
    for (int i = 0; i < n_close_codes; i++)
        if (close_codes[i].code == code) { close_codes[i].n++; return; }
    if (n_close_codes < MAX_CODES) {
        close_codes[n_close_codes].code = code;
        close_codes[n_close_codes].n = 1;
        n_close_codes++;
    }
}

/* Acknowledge a delivered message: the template's %I becomes the payload's "id", %S a counter. */
static void send_ack(conn_t *c, const char *template) {
    const char *p = memmem(c->scan, c->scan_len, "\"id\":\"", 6);
    if (!p) return;
    p += 6;
    const char *q = memchr(p, '"', (size_t)(c->scan + c->scan_len - p));
    if (!q || q - p > 64) return;
    char msg[1024];
    size_t o = 0;
    for (const char *t = template; *t && o < sizeof msg - 80; t++) {
        if (t[0] == '%' && t[1] == 'I') {
            memcpy(msg + o, p, (size_t)(q - p));
            o += (size_t)(q - p);
            t++;
        } else if (t[0] == '%' && t[1] == 'S') {
            o += (size_t)snprintf(msg + o, sizeof msg - o, "%llu", (unsigned long long)acks_sent);
            t++;
        } else {
            msg[o++] = *t;
        }
    }
    acks_sent++;
    send_frame(c, 1, msg, o);
}

/* A whole frame has been consumed; scan holds the first scan_len payload bytes. */
static void frame_done(conn_t *c) {
    int op = c->opcode;
    if (op == 9) { /* ping -> pong with the same payload */
        send_frame(c, 10, c->scan, c->scan_len);
        pings_answered++;
        return;
    }
    if (op == 10) return;
    if (op == 8) {
        int code = c->scan_len >= 2 ? ((unsigned char)c->scan[0] << 8 | (unsigned char)c->scan[1]) : 1005;
        record_close_code(code);
        if (!c->ready) {
            fprintf(stderr, "loadgen: server closed connection during setup with code %d: %.*s\n", code,
                    c->scan_len > 2 ? c->scan_len - 2 : 0, c->scan + 2);
        }
        conn_close(c);
        return;
    }
    if (!c->fin) return; /* count messages, not fragments */
    if (opt_sio && c->scan_len == 1 && c->scan[0] == '2') { /* engine.io ping */
        send_frame(c, 1, "3", 1);
        pings_answered++;
        return;
    }
    if (!c->ready) {
        if (scan_has_error(c)) {
            fprintf(stderr, "loadgen: error during setup: %.*s\n", c->scan_len, c->scan);
            fflush(stderr);
            exit(3);
        }
        c->frames_seen++;
        maybe_send_init(c);
        if (c->state == ST_CLOSED) return;
        const spec_t *sp = c->is_pub ? &pub_spec : &main_spec;
        if (c->frames_seen >= (uint32_t)sp->ready_frames && c->init_sent == (uint32_t)sp->init_count) mark_ready(c);
        return;
    }
    for (int i = 0; i < n_tallies; i++)
        if (memmem(c->scan, c->scan_len, tally_needle[i], strlen(tally_needle[i]))) tally_count[i]++;
    if (scan_has_error(c)) {
        if (errors_seen++ == 0) snprintf(first_error, sizeof first_error, "%.*s", c->scan_len, c->scan);
        if (c->is_pub) { c->acks++; pub_acks++; }
        return;
    }
    if (opt_sio && !(c->scan_len >= 2 && c->scan[0] == '4' && c->scan[1] == '2')) return;
    if (c->is_pub) {
        if (opt_pub_answer && !memmem(c->scan, c->scan_len, opt_pub_answer, strlen(opt_pub_answer))) {
            other_frames++; /* a push, not the answer to a request: does not open the window */
            return;
        }
        c->acks++;
        pub_acks++;
        return;
    }
    if (opt_count_contains && !memmem(c->scan, c->scan_len, opt_count_contains, strlen(opt_count_contains))) {
        other_frames++;
        return;
    }
    frames_counted++;
    if (opt_ack_template) send_ack(c, opt_ack_template);
    if (opt_ack_template2) send_ack(c, opt_ack_template2);
    if (opt_latency) {
        uint64_t t;
        if (scan_timestamp(c, &t)) {
            uint64_t now = now_ns();
            hist_record(now > t ? (now - t) / 1000 : 0);
        }
    }
}

static void parse_frames(conn_t *c, const char *p, size_t n) {
    const char *end = p + n;
    bytes_counted += n;
    while (p < end && c->state == ST_OPEN) {
        if (!c->in_payload) {
            /* gather the header: 2 bytes, then the extended length and mask key */
            while (c->hdr_len < 2 && p < end) c->hdr[c->hdr_len++] = *p++;
            if (c->hdr_len < 2) return;
            unsigned char b1 = (unsigned char)c->hdr[1];
            int len7 = b1 & 0x7f;
            int need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
            while (c->hdr_len < need && p < end) c->hdr[c->hdr_len++] = *p++;
            if (c->hdr_len < need) return;
            unsigned char b0 = (unsigned char)c->hdr[0];
            uint64_t len = (uint64_t)len7;
            if (len7 == 126) {
                len = (uint64_t)(unsigned char)c->hdr[2] << 8 | (unsigned char)c->hdr[3];
            } else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = len << 8 | (unsigned char)c->hdr[2 + i];
            }
            c->fin = b0 >> 7;
            int op = b0 & 0x0f;
            if (op == 0) {
                op = c->msg_opcode;
                c->first_fragment = 0;
            } else if (op < 8) {
                c->msg_opcode = (uint8_t)op;
                c->first_fragment = 1;
            }
            c->opcode = (uint8_t)op;
            c->remaining = len;
            c->scan_len = 0;
            /* continuation fragments keep the first fragment's scan */
            c->scan_want = (op >= 8 || c->first_fragment) ? (uint16_t)(len < SCAN_MAX ? len : SCAN_MAX) : 0;
            c->hdr_len = 0;
            c->in_payload = 1;
        }
        size_t avail = (size_t)(end - p);
        size_t take = c->remaining < avail ? (size_t)c->remaining : avail;
        if (c->scan_len < c->scan_want) {
            size_t k = c->scan_want - c->scan_len;
            if (k > take) k = take;
            memcpy(c->scan + c->scan_len, p, k);
            c->scan_len += (uint16_t)k;
        }
        p += take;
        c->remaining -= take;
        if (c->remaining == 0) {
            c->in_payload = 0;
            frame_done(c);
        }
    }
}

static void on_handshake_data(conn_t *c, const char *p, size_t n) {
    if (!c->hs) {
        c->hs = malloc(HS_MAX);
        if (!c->hs) die("out of memory");
        c->hs_len = 0;
    }
    if (c->hs_len + n > HS_MAX) {
        fprintf(stderr, "loadgen: upgrade response too large\n");
        conn_close(c);
        return;
    }
    memcpy(c->hs + c->hs_len, p, n);
    c->hs_len += (uint32_t)n;
    char *eoh = memmem(c->hs, c->hs_len, "\r\n\r\n", 4);
    if (!eoh) return;
    size_t head = (size_t)(eoh - c->hs) + 4;
    if (c->hs_len < 12 || memcmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "loadgen: upgrade refused: %.*s\n", (int)(head > 200 ? 200 : head), c->hs);
        conn_close(c);
        return;
    }
    if (opt_subprotocol) {
        c->hs[head - 1] = 0;
        char *h = strcasestr(c->hs, "\r\nSec-WebSocket-Protocol:");
        if (!h || !strstr(h, opt_subprotocol)) {
            fprintf(stderr, "loadgen: server did not select subprotocol %s\n", opt_subprotocol);
            conn_close(c);
            return;
        }
    }
    char *hs = c->hs;
    size_t rest = c->hs_len - head;
    c->hs = NULL;
    c->state = ST_OPEN;
    n_open++;
    maybe_send_init(c);
    const spec_t *sp = c->is_pub ? &pub_spec : &main_spec;
    if (c->state == ST_OPEN && sp->ready_frames == 0 && c->init_sent == (uint32_t)sp->init_count) mark_ready(c);
    if (rest && c->state == ST_OPEN) parse_frames(c, hs + head, rest);
    free(hs);
}

static void on_readable(conn_t *c) {
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n > 0) {
        if (c->state == ST_HANDSHAKE) on_handshake_data(c, rbuf, (size_t)n);
        else parse_frames(c, rbuf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (c->state != ST_CLOSED) {
        if (!c->ready) fprintf(stderr, "loadgen: connection lost during setup (%s)\n", n == 0 ? "EOF" : strerror(errno));
        record_close_code(1006);
        conn_close(c);
    }
}

/* ---- publisher ---- */
typedef struct { const char *text; size_t len; int kind; } piece_t; /* kind 0 text, 1 %T, 2 %S, 3 %U, 4 %C */
static const char *cycle[256]; /* --cycle a,b,c: %C is element seq mod count */
static size_t cycle_len[256];
static int n_cycle;
static piece_t pieces[16];
static int n_pieces;
static char *pad;
static char mp_buf[4096];

static void compile_template(void) {
    const char *s = opt_template, *lit = s;
    while (*s) {
        if (s[0] == '%' && (s[1] == 'T' || s[1] == 'S' || s[1] == 'U' || s[1] == 'C')) {
            if (n_pieces + 2 > 16) die("template too complex");
            if (s[1] == 'C' && n_cycle == 0) die("%%C needs --cycle");
            pieces[n_pieces++] = (piece_t){lit, (size_t)(s - lit), 0};
            pieces[n_pieces++] = (piece_t){NULL, 0, s[1] == 'T' ? 1 : s[1] == 'S' ? 2 : s[1] == 'U' ? 3 : 4};
            s += 2;
            lit = s;
        } else {
            s++;
        }
    }
    if (n_pieces + 1 > 16) die("template too complex");
    pieces[n_pieces++] = (piece_t){lit, (size_t)(s - lit), 0};
}

static size_t mp_str(char *p, const char *s, size_t n) {
    size_t o = 0;
    if (n < 32) p[o++] = (char)(0xa0 | n);
    else if (n < 256) { p[o++] = (char)0xd9; p[o++] = (char)n; }
    else { p[o++] = (char)0xda; p[o++] = (char)(n >> 8); p[o++] = (char)n; }
    memcpy(p + o, s, n);
    return o + n;
}

static size_t mp_u64(char *p, uint64_t v) {
    p[0] = (char)0xcf;
    for (int i = 0; i < 8; i++) p[1 + i] = (char)(v >> (56 - 8 * i));
    return 9;
}

/* Build one message into buf; returns its length and whether it is binary. */
static size_t build_message(char *buf, size_t cap, uint64_t t, uint64_t seq, int *binary) {
    if (opt_msgpack_channel) {
        /* {"type":"publish","requestId":"<seq>","channel":C,"payload":{"t":t,"seq":seq,"pad":PAD}} */
        size_t o = 0;
        char rid[24];
        int rl = snprintf(rid, sizeof rid, "%llu", (unsigned long long)seq);
        buf[o++] = (char)0x84;
        o += mp_str(buf + o, "type", 4);
        o += mp_str(buf + o, "publish", 7);
        o += mp_str(buf + o, "requestId", 9);
        o += mp_str(buf + o, rid, (size_t)rl);
        o += mp_str(buf + o, "channel", 7);
        o += mp_str(buf + o, opt_msgpack_channel, strlen(opt_msgpack_channel));
        o += mp_str(buf + o, "payload", 7);
        buf[o++] = (char)0x83;
        o += mp_str(buf + o, "t", 1);
        o += mp_u64(buf + o, t);
        o += mp_str(buf + o, "seq", 3);
        o += mp_u64(buf + o, seq);
        o += mp_str(buf + o, "pad", 3);
        o += mp_str(buf + o, pad, (size_t)opt_pad);
        *binary = 1;
        return o;
    }
    size_t o = 0;
    for (int i = 0; i < n_pieces; i++) {
        if (pieces[i].kind == 0) {
            if (o + pieces[i].len > cap) die("message too large");
            memcpy(buf + o, pieces[i].text, pieces[i].len);
            o += pieces[i].len;
        } else if (pieces[i].kind == 4) {
            size_t k = (size_t)(seq % (uint64_t)n_cycle);
            if (o + cycle_len[k] > cap) die("message too large");
            memcpy(buf + o, cycle[k], cycle_len[k]);
            o += cycle_len[k];
        } else if (pieces[i].kind == 3) { /* a UUIDv4-shaped id, unique per run and sequence number */
            o += (size_t)snprintf(buf + o, cap - o, "%08x-%04x-4%03x-8%03x-%012llx", run_id,
                                  (unsigned)(seq >> 48) & 0xffff, (unsigned)(seq >> 36) & 0xfff,
                                  (unsigned)(seq >> 24) & 0xfff, (unsigned long long)seq & 0xffffffffffffull);
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "%llu", (unsigned long long)(pieces[i].kind == 1 ? t : seq));
        }
    }
    *binary = 0;
    return o;
}

/* Send what is due on one connection: --rate is shared evenly by the connections, and
 * --window bounds unanswered requests per connection. */
static void publish_due(conn_t *c, uint64_t now) {
    if (c->state != ST_OPEN || !c->ready) return;
    uint64_t due;
    double rate = opt_rate / (embedded_pub ? 1 : opt_conns);
    if (rate > 0) {
        due = (uint64_t)((double)(now - pub_start_ns) * rate / 1e9);
    } else {
        due = c->sent + 256;
    }
    if (opt_window > 0 && due > c->acks + (uint64_t)opt_window) due = c->acks + (uint64_t)opt_window;
    if (opt_inflight > 0 && n_ready > 1) {
        /* closed loop: publish only while fewer than --inflight messages are still owed to the
         * subscribers, so the server always has work queued but never an unbounded backlog */
        uint64_t subs = (uint64_t)(n_ready - 1);
        uint64_t owed = c->sent * subs > frames_since_go ? c->sent * subs - frames_since_go : 0;
        uint64_t room = owed >= (uint64_t)opt_inflight * subs ? 0 : ((uint64_t)opt_inflight * subs - owed) / subs;
        if (due > c->sent + room) due = c->sent + room;
    }
    int appended = 0;
    while (c->sent < due && c->out_len < OUT_HIGH) {
        /* fixed rate: stamp the scheduled send time, so that a late publisher shows as latency */
        uint64_t t = rate > 0 ? pub_start_ns + (uint64_t)((double)c->sent * 1e9 / rate) : now;
        int binary;
        size_t len = build_message(mp_buf, sizeof mp_buf, t, pub_sent, &binary);
        frame_append(c, binary ? 2 : 1, mp_buf, len);
        c->sent++;
        pub_sent++;
        appended = 1;
    }
    if (appended) flush_out(c);
}

static void publish_all(void) {
    if (!publishing) return;
    uint64_t now = now_ns();
    frames_since_go = frames_counted - frames_at_go;
    for (int i = 0; i < n_started; i++)
        if (conns[i].is_pub) publish_due(&conns[i], now);
}

/* ---- control ---- */
static void print_mark(const char *event) {
    uint64_t t = now_ns();
    printf("{\"event\":\"%s\",\"t_s\":%.6f,\"cpu_s\":%.6f,\"frames\":%llu,\"bytes\":%llu,\"open\":%d,"
           "\"ready\":%d,\"failed\":%d,\"closed\":%d,\"pings\":%llu,\"sent\":%llu,\"acks\":%llu,",
           event, (double)t / 1e9, (double)cpu_ns() / 1e9, (unsigned long long)frames_counted,
           (unsigned long long)bytes_counted, n_open, n_ready, n_failed, n_closed_after_ready,
           (unsigned long long)pings_answered, (unsigned long long)pub_sent, (unsigned long long)pub_acks);
    printf("\"errors\":%llu,\"other\":%llu,\"acks_sent\":%llu,\"first_error\":\"", (unsigned long long)errors_seen,
           (unsigned long long)other_frames, (unsigned long long)acks_sent);
    for (const char *e = first_error; *e; e++) {
        if (*e == '"' || *e == '\\') printf("\\%c", *e);
        else if ((unsigned char)*e < 0x20 || (unsigned char)*e >= 0x7f) printf("?");
        else putchar(*e);
    }
    printf("\",\"tallies\":[");
    for (int i = 0; i < n_tallies; i++) printf("%s%llu", i ? "," : "", (unsigned long long)tally_count[i]);
    printf("],\"close_codes\":{");
    for (int i = 0; i < n_close_codes; i++)
        printf("%s\"%d\":%llu", i ? "," : "", close_codes[i].code, (unsigned long long)close_codes[i].n);
    printf("},\"lat\":{\"n\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu}}\n",
           (unsigned long long)hist_n, (unsigned long long)hist_percentile(0.50),
           (unsigned long long)hist_percentile(0.99), (unsigned long long)hist_percentile(0.999),
           (unsigned long long)hist_max);
    fflush(stdout);
    memset(hist, 0, sizeof hist);
    hist_n = hist_max = 0;
}

static void on_stdin(void) {
    ssize_t n = read(0, stdin_buf + stdin_len, sizeof stdin_buf - 1 - stdin_len);
    if (n <= 0) {
        want_quit = 1; /* harness went away */
        return;
    }
    stdin_len += (size_t)n;
    char *nl;
    while ((nl = memchr(stdin_buf, '\n', stdin_len)) != NULL) {
        char cmd = stdin_buf[0];
        size_t used = (size_t)(nl - stdin_buf) + 1;
        memmove(stdin_buf, stdin_buf + used, stdin_len - used);
        stdin_len -= used;
        if (cmd == 'm') print_mark("mark");
        else if (cmd == 'q') want_quit = 1;
        else if (cmd == 'g' && !publishing) {
            publishing = 1;
            pub_start_ns = now_ns();
            frames_at_go = frames_counted;
            for (int i = 0; i < n_started; i++) conns[i].sent = 0, conns[i].acks = 0;
        } else if (cmd == 's') publishing = 0;
    }
    if (stdin_len >= sizeof stdin_buf - 1) stdin_len = 0;
}

static void add_init(spec_t *sp, const char *v, int hex) {
    if (sp->init_count == MAX_INIT) die("too many init messages");
    char *b;
    size_t len;
    if (hex) {
        size_t hl = strlen(v);
        if (hl % 2) die("--init-hex needs an even number of digits");
        b = malloc(hl / 2 + 1);
        if (!b) die("out of memory");
        for (size_t k = 0; k < hl / 2; k++) {
            unsigned x;
            if (sscanf(v + 2 * k, "%2x", &x) != 1) die("bad --init-hex");
            b[k] = (char)x;
        }
        len = hl / 2;
    } else {
        b = strdup(v);
        len = strlen(v);
    }
    sp->init[sp->init_count].data = b;
    sp->init[sp->init_count].len = len;
    sp->init[sp->init_count++].opcode = hex ? 2 : 1;
}

static void usage(void) {
    fputs(
            "usage: loadgen [--mode sub|pub] [--host H] [--port P] [--path /p] [--subprotocol S]\n"
            "  [--conns N] [--concurrency C] [--init MSG]... [--init-wait K] [--ready-frames K]\n"
            "  [--init-hex HEX]... [--sio] [--latency] [--ts-key K] [--ready-timeout S]\n"
            "  sub with an embedded publisher (connects after the subscribers): --template T |\n"
            "       --msgpack-channel C, plus [--pub-path P] [--pub-init MSG]... [--pub-init-hex HEX]...\n"
            "       [--pub-init-wait K] [--pub-ready-frames K] [--rate R] [--inflight K]\n"
            "  sub: [--count-contains STR] [--ack-template T] [--ack-template2 T]\n"
            "       (%I = delivered \"id\", %S = counter; the second template is sent right after the first)\n"
            "  pub: [--conns N] [--rate R] [--window W] (--template T | --msgpack-channel C) [--pad BYTES]\n"
            "       [--pub-answer-contains STR]  (only frames containing STR answer a request)\n"
            "  any: [--tally STR]...  (count frames containing STR; printed as \"tallies\", at most 4)\n"
            "       template placeholders: %T send time (ns, CLOCK_MONOTONIC), %S sequence, %U UUID,\n"
            "       %C the (sequence mod count)-th value of --cycle a,b,c\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--host")) opt_host = v;
        else if (ARG("--port")) opt_port = atoi(v);
        else if (ARG("--path")) main_spec.path = v;
        else if (ARG("--pub-path")) pub_spec.path = v;
        else if (ARG("--subprotocol")) opt_subprotocol = v;
        else if (ARG("--mode")) opt_mode = v;
        else if (ARG("--conns")) opt_conns = atoi(v);
        else if (ARG("--concurrency")) opt_concurrency = atoi(v);
        else if (ARG("--ready-frames")) main_spec.ready_frames = atoi(v);
        else if (ARG("--pub-ready-frames")) pub_spec.ready_frames = atoi(v);
        else if (ARG("--init-wait")) main_spec.init_wait = atoi(v);
        else if (ARG("--pub-init-wait")) pub_spec.init_wait = atoi(v);
        else if (ARG("--inflight")) opt_inflight = atoi(v);
        else if (ARG("--init")) add_init(&main_spec, v, 0);
        else if (ARG("--init-hex")) add_init(&main_spec, v, 1);
        else if (ARG("--pub-init")) add_init(&pub_spec, v, 0);
        else if (ARG("--pub-init-hex")) add_init(&pub_spec, v, 1);
        else if (ARG("--count-contains")) opt_count_contains = v;
        else if (ARG("--ack-template")) opt_ack_template = v;
        else if (ARG("--ack-template2")) opt_ack_template2 = v;
        else if (ARG("--pub-answer-contains")) opt_pub_answer = v;
        else if (ARG("--tally")) {
            if (n_tallies == MAX_TALLIES) die("--tally: at most 4");
            tally_needle[n_tallies++] = v;
        }
        else if (ARG("--ts-key")) opt_ts_key = v;
        else if (ARG("--cycle")) {
            char *copy = strdup(v), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n_cycle == 256) die("--cycle takes at most 256 values");
                cycle[n_cycle] = tok;
                cycle_len[n_cycle++] = strlen(tok);
            }
        } else if (ARG("--rate")) opt_rate = atof(v);
        else if (ARG("--window")) opt_window = atoi(v);
        else if (ARG("--template")) opt_template = v;
        else if (ARG("--msgpack-channel")) opt_msgpack_channel = v;
        else if (ARG("--pad")) opt_pad = atoi(v);
        else if (ARG("--ready-timeout")) opt_ready_timeout = atof(v);
        else if (strcmp(a, "--sio") == 0) opt_sio = 1;
        else if (strcmp(a, "--latency") == 0) opt_latency = 1;
        else usage();
#undef ARG
    }
    int pub = strcmp(opt_mode, "pub") == 0;
    if (!pub && strcmp(opt_mode, "sub") != 0) usage();
    if (strlen(opt_ts_key) > 64) die("--ts-key too long");
    ts_needle_len = (size_t)snprintf(ts_needle, sizeof ts_needle, "\"%s\":", opt_ts_key);
    embedded_pub = !pub && (opt_template || opt_msgpack_channel);
    if (pub) pub_spec = main_spec; /* every connection of pub mode is a publisher */
    if (embedded_pub && !pub_spec.path) die("an embedded publisher needs --pub-path");
    if (pub || embedded_pub) {
        if (!opt_template && !opt_msgpack_channel) die("pub mode needs --template or --msgpack-channel");
        if (opt_template) compile_template();
        if (opt_pad < 0 || opt_pad > 2000) die("--pad out of range");
        pad = malloc((size_t)opt_pad + 1);
        memset(pad, 'x', (size_t)opt_pad);
        pad[opt_pad] = 0;
    }
    if (opt_conns < 1 || opt_concurrency < 1) usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt_conns + 16)
        die("RLIMIT_NOFILE %llu is too low for %d connections", (unsigned long long)rl.rlim_cur, opt_conns);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)now_ns());
    if (getrandom(&run_id, sizeof run_id, 0) != sizeof run_id) run_id = (uint32_t)random();

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &addr.sin_addr) != 1) die("--host must be an IPv4 address");

    n_total = opt_conns + embedded_pub;
    conns = calloc((size_t)n_total, sizeof(conn_t));
    if (!conns) die("out of memory");
    for (int i = 0; i < n_total; i++) conns[i].is_pub = (uint8_t)(pub || i == opt_conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);

    t_start_ns = now_ns();
    start_more();
    struct epoll_event evs[512];
    while (!want_quit) {
        int timeout = 100;
        if ((pub || embedded_pub) && publishing) timeout = 1;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                on_stdin();
                continue;
            }
            if (c->state == ST_CLOSED) continue;
            uint32_t e = evs[i].events;
            if (c->state == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
                    conn_close(c);
                    continue;
                }
                send_handshake(c);
                continue;
            }
            if (e & EPOLLOUT) flush_out(c);
            if (c->state != ST_CLOSED && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
        }
        if (pub || embedded_pub) publish_all();
        if (!ready_reported && (double)(now_ns() - t_start_ns) / 1e9 > opt_ready_timeout) {
            fprintf(stderr, "loadgen: %d of %d connections ready after %.0f s\n", n_ready, n_total, opt_ready_timeout);
            ready_reported = 1;
            printf("{\"event\":\"ready\",\"conns\":%d,\"ready\":%d,\"failed\":%d,\"elapsed_s\":%.6f,\"timeout\":true}\n",
                   n_total, n_ready, n_total - n_ready, opt_ready_timeout);
            fflush(stdout);
        }
    }
    print_mark("final");
    for (int i = 0; i < n_started; i++)
        if (conns[i].state != ST_CLOSED) {
            struct linger lg = {1, 0};
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(conns[i].fd);
        }
    return 0;
}
