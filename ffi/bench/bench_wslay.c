/*
 * evsock (through its C API) against wslay's event API, on the same frames.
 *
 *   bench_wslay [--quick]
 *
 * Three workloads, each at 16 B, 1 KiB and 64 KiB binary messages:
 *   server-recv  decode masked client frames into whole messages
 *   server-send  encode messages into unmasked frames
 *   client-send  encode messages into masked frames (mask keys included)
 *
 * Both libraries get identical input bytes, in identical 4096-byte reads
 * (wslay's event API reads at most 4096 bytes at a time, so evsock is fed
 * the same pieces), and both hand every message or frame to the host. Sends
 * are queued in batches of 64 and then drained. Binary messages only:
 * wslay does not validate UTF-8, so text would not compare like with like;
 * and permessage-deflate is off, as wslay does not compress.
 * Each case runs for a fixed time and reports MB/s of payload; the ratio is
 * evsock's throughput over wslay's (above 1: evsock is faster). The last
 * line is the geometric mean of the ratios.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wslay/wslay.h>

/* wslayver.h in some packages lags the library; the Makefile passes the
 * package version when it knows it. */
#ifndef WSLAY_PKG_VERSION
#include <wslay/wslayver.h>
#define WSLAY_PKG_VERSION WSLAY_VERSION
#endif

#include "evsock.h"

#define CHUNK 4096
#define BATCH 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, evsock_status s) {
    fprintf(stderr, "bench_wslay: %s: %s (%s)\n", what, evsock_status_name(s), evsock_last_error());
    exit(1);
}

#define MUST(call)                                                                                 \
    do {                                                                                           \
        evsock_status s_ = (call);                                                                 \
        if (s_ != EVSOCK_OK) die(#call, s_);                                                       \
    } while (0)

/* ----- input: a stream of masked client frames -------------------------- */

typedef struct {
    unsigned char *bytes;
    size_t len, nmsgs, msg_size;
} stream_t;

static stream_t make_client_frames(size_t msg_size, size_t nmsgs) {
    stream_t s = {0};
    s.nmsgs = nmsgs;
    s.msg_size = msg_size;
    s.bytes = malloc(nmsgs * (msg_size + 14));
    if (!s.bytes) abort();
    unsigned char *p = s.bytes;
    for (size_t m = 0; m < nmsgs; m++) {
        const unsigned char key[4] = {(unsigned char)(m * 7 + 1), 0x5a, 0xc3, (unsigned char)m};
        *p++ = 0x82;
        if (msg_size < 126) {
            *p++ = 0x80 | (unsigned char)msg_size;
        } else if (msg_size < 65536) {
            *p++ = 0x80 | 126;
            *p++ = (unsigned char)(msg_size >> 8);
            *p++ = (unsigned char)msg_size;
        } else {
            *p++ = 0x80 | 127;
            for (int i = 7; i >= 0; i--) *p++ = (unsigned char)((uint64_t)msg_size >> (8 * i));
        }
        memcpy(p, key, 4);
        p += 4;
        for (size_t i = 0; i < msg_size; i++) *p++ = (unsigned char)(i * 13 + m) ^ key[i & 3];
    }
    s.len = (size_t)(p - s.bytes);
    return s;
}

/* ----- evsock side --------------------------------------------------------- */

static size_t drain_count(evsock_conn *c, size_t *msgs) {
    evsock_output o;
    size_t bytes = 0;
    for (;;) {
        MUST(evsock_conn_poll_output(c, &o));
        if (o.kind == EVSOCK_OUTPUT_TRANSMIT) {
            bytes += o.len;
        } else if (o.kind == EVSOCK_OUTPUT_EVENT) {
            if (o.event.kind == EVSOCK_EVENT_BINARY) {
                (*msgs)++;
                bytes += o.event.len;
            } else if (o.event.kind == EVSOCK_EVENT_CLOSED) {
                fprintf(stderr, "bench_wslay: evsock closed: %s\n", o.event.error_message);
                exit(1);
            }
        } else {
            return bytes;
        }
    }
}

/* An open server and client pair (the client's masks from a seed). */
static void evsock_pair(evsock_conn **server, evsock_conn **client) {
    evsock_config *cfg;
    evsock_output o;
    MUST(evsock_config_new_without_timers(&cfg));
    MUST(evsock_config_set(cfg, EVSOCK_OPT_MAX_OUTBOUND_BYTES, 1u << 30));
    /* wslay's event API does not compress: neither do we, here. */
    MUST(evsock_config_set(cfg, EVSOCK_OPT_DEFLATE, 0));
    evsock_client_options opts = {"ws://127.0.0.1/", NULL, NULL, 0, NULL, 0};
    MUST(evsock_conn_new_client_seeded(cfg, &opts, 1, 0, client));
    MUST(evsock_conn_new_server(cfg, 0, server));
    evsock_config_free(cfg);
    for (int round = 0; round < 4; round++) {
        evsock_conn *from = round % 2 ? *server : *client, *to = round % 2 ? *client : *server;
        for (;;) {
            MUST(evsock_conn_poll_output(from, &o));
            if (o.kind == EVSOCK_OUTPUT_TRANSMIT) MUST(evsock_conn_handle_input(to, 0, o.data, o.len));
            else if (o.kind == EVSOCK_OUTPUT_EVENT && o.event.kind == EVSOCK_EVENT_REQUEST)
                MUST(evsock_conn_accept(from, NULL, NULL, 0));
            else if (o.kind == EVSOCK_OUTPUT_WAIT) break;
        }
    }
    evsock_state a, b;
    MUST(evsock_conn_state(*server, &a));
    MUST(evsock_conn_state(*client, &b));
    if (a != EVSOCK_STATE_OPEN || b != EVSOCK_STATE_OPEN) {
        fprintf(stderr, "bench_wslay: evsock pair did not open\n");
        exit(1);
    }
}

static size_t evsock_recv(const stream_t *s, evsock_conn *server) {
    size_t msgs = 0;
    for (size_t off = 0; off < s->len; off += CHUNK) {
        size_t n = s->len - off < CHUNK ? s->len - off : CHUNK;
        MUST(evsock_conn_handle_input(server, 1, s->bytes + off, n));
        drain_count(server, &msgs);
    }
    return msgs;
}

static size_t evsock_send(evsock_conn *c, const unsigned char *payload, size_t size, size_t nmsgs) {
    size_t msgs = 0, out = 0;
    for (size_t sent = 0; sent < nmsgs; sent += BATCH) {
        for (size_t k = 0; k < BATCH && sent + k < nmsgs; k++) MUST(evsock_conn_send_binary(c, payload, size));
        out += drain_count(c, &msgs);
    }
    return out;
}

/* ----- wslay side ---------------------------------------------------------- */

typedef struct {
    const stream_t *in;
    size_t in_off, msgs, out_bytes;
    uint64_t mask_state;
} wslay_io_t;

static ssize_t w_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
    (void)flags;
    wslay_io_t *io = user;
    if (!io->in || io->in_off == io->in->len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = io->in->len - io->in_off;
    if (n > len) n = len;
    if (n > CHUNK) n = CHUNK;
    memcpy(buf, io->in->bytes + io->in_off, n);
    io->in_off += n;
    return (ssize_t)n;
}

static ssize_t w_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
    (void)ctx;
    (void)flags;
    (void)data;
    ((wslay_io_t *)user)->out_bytes += len;
    return (ssize_t)len;
}

static int w_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx;
    wslay_io_t *io = user;
    for (size_t i = 0; i < len; i++) {
        io->mask_state = io->mask_state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(io->mask_state >> 56);
    }
    return 0;
}

static void w_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user) {
    (void)ctx;
    if (arg->opcode == WSLAY_BINARY_FRAME) ((wslay_io_t *)user)->msgs++;
}

static const struct wslay_event_callbacks W_CALLBACKS = {w_recv, w_send, w_genmask, NULL, NULL, NULL, w_on_msg};

static size_t wslay_recv(const stream_t *s, wslay_event_context_ptr ctx, wslay_io_t *io) {
    io->in = s;
    io->in_off = 0;
    io->msgs = 0;
    while (io->in_off < s->len)
        if (wslay_event_recv(ctx) != 0) {
            fprintf(stderr, "bench_wslay: wslay_event_recv failed\n");
            exit(1);
        }
    return io->msgs;
}

static size_t wslay_send(wslay_event_context_ptr ctx, wslay_io_t *io, const unsigned char *payload,
                         size_t size, size_t nmsgs) {
    io->in = NULL;
    io->out_bytes = 0;
    for (size_t sent = 0; sent < nmsgs; sent += BATCH) {
        for (size_t k = 0; k < BATCH && sent + k < nmsgs; k++) {
            struct wslay_event_msg m = {WSLAY_BINARY_FRAME, payload, size};
            if (wslay_event_queue_msg(ctx, &m) != 0) {
                fprintf(stderr, "bench_wslay: wslay_event_queue_msg failed\n");
                exit(1);
            }
        }
        if (wslay_event_send(ctx) != 0) {
            fprintf(stderr, "bench_wslay: wslay_event_send failed\n");
            exit(1);
        }
    }
    return io->out_bytes;
}

/* ----- driver -------------------------------------------------------------- */

enum workload { SERVER_RECV, SERVER_SEND, CLIENT_SEND };
static const char *WORKLOAD_NAMES[] = {"server-recv", "server-send", "client-send"};

/* Runs one side of one case for about `secs`; returns payload MB/s. */
static double run_case(enum workload w, int use_evsock, size_t size, double secs) {
    size_t nmsgs = size >= 65536 ? 64 : size >= 1024 ? 2048 : 16384;
    stream_t in = make_client_frames(size, nmsgs);
    unsigned char *payload = malloc(size);
    if (!payload) abort();
    for (size_t i = 0; i < size; i++) payload[i] = (unsigned char)(i * 7);

    evsock_conn *server = NULL, *client = NULL;
    wslay_event_context_ptr ctx = NULL;
    wslay_io_t io = {0};
    io.mask_state = 1;
    if (use_evsock) {
        evsock_pair(&server, &client);
    } else if (w == CLIENT_SEND) {
        wslay_event_context_client_init(&ctx, &W_CALLBACKS, &io);
    } else {
        wslay_event_context_server_init(&ctx, &W_CALLBACKS, &io);
    }

    double start = now_s(), elapsed;
    size_t rounds = 0;
    do {
        size_t got;
        if (w == SERVER_RECV) {
            got = use_evsock ? evsock_recv(&in, server) : wslay_recv(&in, ctx, &io);
            if (got != nmsgs) {
                fprintf(stderr, "bench_wslay: %s got %zu of %zu messages\n", use_evsock ? "evsock" : "wslay",
                        got, nmsgs);
                exit(1);
            }
        } else {
            evsock_conn *c = w == SERVER_SEND ? server : client;
            got = use_evsock ? evsock_send(c, payload, size, nmsgs) : wslay_send(ctx, &io, payload, size, nmsgs);
            if (got < nmsgs * size) {
                fprintf(stderr, "bench_wslay: short output (%zu bytes)\n", got);
                exit(1);
            }
        }
        rounds++;
        elapsed = now_s() - start;
    } while (elapsed < secs);

    evsock_conn_free(server);
    evsock_conn_free(client);
    if (ctx) wslay_event_context_free(ctx);
    free(in.bytes);
    free(payload);
    return (double)rounds * (double)nmsgs * (double)size / elapsed / 1e6;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    double secs = quick ? 0.15 : 1.0;
    const size_t sizes[] = {16, 1024, 65536};
    double log_sum = 0;
    int n = 0;
    printf("evsock %s vs wslay %s, %s mode (%.2f s per case, %d-byte reads, batches of %d)\n",
           evsock_version(), WSLAY_PKG_VERSION, quick ? "quick" : "full", secs, CHUNK, BATCH);
    printf("%-12s %8s %14s %14s %8s\n", "workload", "size", "evsock MB/s", "wslay MB/s", "ratio");
    for (int w = SERVER_RECV; w <= CLIENT_SEND; w++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            double e = run_case((enum workload)w, 1, sizes[i], secs);
            double l = run_case((enum workload)w, 0, sizes[i], secs);
            double ratio = e / l;
            log_sum += log(ratio);
            n++;
            printf("%-12s %8zu %14.1f %14.1f %7.2fx\n", WORKLOAD_NAMES[w], sizes[i], e, l, ratio);
            fflush(stdout);
        }
    }
    printf("geometric mean ratio (evsock/wslay throughput): %.2fx\n", exp(log_sum / n));
    return 0;
}
