/*
 * C tests for the evsock C API: the shared connection and session vectors
 * (the JSON files in tests/vectors/ws and tests/vectors/session, parsed with
 * jansson) plus tests of the C surface itself: ownership, borrowed-pointer
 * lifetimes, argument checks, re-entrancy, panics, randomness sources, and
 * client/server loopbacks of both connections and sessions, and a hub
 * driven by C "browsers" (client connections carrying client sessions).
 *
 * Usage: test_ffi [VECTORS_ROOT]   (default: tests/vectors; runs the ws/
 * and session/ directories in it)
 * Prints "ok"/"FAIL" per test and a final "N passed, M failed" line; exits
 * non-zero if anything failed. Built and run by scripts/test-ffi.sh, also
 * under valgrind and AddressSanitizer.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evsock.h"

/* ----- a tiny test harness ------------------------------------------- */

static int g_passed, g_failed;
static char g_why[2048];

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_why, sizeof g_why, fmt, ap);
    va_end(ap);
    return 0;
}

/* Records a failed CHECK, keeping what a helper already reported. */
static int fail_check(int line, const char *cond) {
    char inner[sizeof g_why];
    snprintf(inner, sizeof inner, "%s", g_why);
    return fail("line %d: %s%s%s", line, cond, inner[0] ? " -- " : "", inner);
}

/* Inside a test returning int: bail out with a message when cond is false. */
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            ok = fail_check(__LINE__, #cond);                                 \
            goto done;                                                        \
        }                                                                     \
    } while (0)

/* Expect a status; on mismatch report both names and evsock's message. */
#define EXPECT(call, want)                                                    \
    do {                                                                      \
        evsock_status got_ = (call);                                          \
        if (got_ != (want)) {                                                 \
            ok = fail("line %d: %s returned %s, want %s (last error: %s)",    \
                      __LINE__, #call, evsock_status_name(got_),              \
                      evsock_status_name(want), evsock_last_error());         \
            goto done;                                                        \
        }                                                                     \
    } while (0)

#define EXPECT_OK(call) EXPECT(call, EVSOCK_OK)

static void run_test(const char *name, int (*fn)(void)) {
    g_why[0] = '\0';
    if (fn()) {
        g_passed++;
        printf("ok   %s\n", name);
    } else {
        g_failed++;
        printf("FAIL %s: %s\n", name, g_why);
    }
    fflush(stdout);
}

/* ----- helpers --------------------------------------------------------- */

static int unhex(const char *s, unsigned char **out, size_t *len) {
    size_t n = strlen(s);
    if (n % 2) return 0;
    unsigned char *b = malloc(n / 2 + 1);
    if (!b) return 0;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(b);
            return 0;
        }
        b[i] = (unsigned char)v;
    }
    *out = b;
    *len = n / 2;
    return 1;
}

static char *hex(const unsigned char *b, size_t n) {
    char *s = malloc(2 * n + 1);
    if (!s) abort();
    for (size_t i = 0; i < n; i++) sprintf(s + 2 * i, "%02x", b[i]);
    s[2 * n] = '\0';
    return s;
}

/* A growable byte buffer. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Drains every transmit chunk of conn into b. Returns the last status. */
static evsock_status drain_transmit(evsock_conn *conn, buf_t *b) {
    const uint8_t *p;
    size_t n;
    evsock_status s;
    while ((s = evsock_conn_poll_transmit(conn, &p, &n)) == EVSOCK_OK) buf_add(b, p, n);
    return s == EVSOCK_EMPTY ? EVSOCK_OK : s;
}

/* ----- the shared vectors ---------------------------------------------- */

static json_t *event_to_json(evsock_conn *conn, const evsock_event *ev) {
    char *h;
    json_t *o;
    switch (ev->kind) {
    case EVSOCK_EVENT_REQUEST: {
        json_t *protos = json_array();
        const char *name;
        for (size_t i = 0; evsock_conn_request_subprotocol(conn, i, &name) == EVSOCK_OK; i++)
            json_array_append_new(protos, json_string(name));
        return json_pack("{s:s, s:s%, s:o}", "type", "request", "path", (const char *)ev->data,
                         ev->len, "subprotocols", protos);
    }
    case EVSOCK_EVENT_OPEN:
        return json_pack("{s:s, s:o}", "type", "open", "subprotocol",
                         ev->subprotocol ? json_string(ev->subprotocol) : json_null());
    case EVSOCK_EVENT_TEXT:
        return json_pack("{s:s, s:s%}", "type", "text", "text", (const char *)ev->data, ev->len);
    case EVSOCK_EVENT_BINARY:
    case EVSOCK_EVENT_PING:
    case EVSOCK_EVENT_PONG:
        h = hex(ev->data, ev->len);
        o = json_pack("{s:s, s:s}", "type",
                      ev->kind == EVSOCK_EVENT_BINARY ? "binary"
                      : ev->kind == EVSOCK_EVENT_PING ? "ping"
                                                      : "pong",
                      "hex", h);
        free(h);
        return o;
    case EVSOCK_EVENT_CLOSED:
        return json_pack("{s:s, s:i, s:s%, s:b, s:b, s:o}", "type", "closed", "code",
                         (int)ev->close_code, "reason", (const char *)ev->data, ev->len, "clean",
                         (int)ev->clean, "by_peer", (int)ev->by_peer, "error",
                         ev->error == EVSOCK_OK ? json_null()
                                                : json_string(evsock_status_name(ev->error)));
    default:
        return json_pack("{s:s, s:i}", "type", "unknown", "kind", (int)ev->kind);
    }
}

static const char *state_name(evsock_state s) {
    switch (s) {
    case EVSOCK_STATE_HANDSHAKE: return "handshake";
    case EVSOCK_STATE_OPEN: return "open";
    case EVSOCK_STATE_CLOSING: return "closing";
    case EVSOCK_STATE_CLOSED: return "closed";
    default: return "?";
    }
}

static const struct {
    const char *key;
    uint32_t opt;
} VECTOR_OPTIONS[] = {
    {"max_frame_size", EVSOCK_OPT_MAX_FRAME_SIZE},
    {"max_message_size", EVSOCK_OPT_MAX_MESSAGE_SIZE},
    {"max_fragments", EVSOCK_OPT_MAX_FRAGMENTS},
    {"max_handshake_bytes", EVSOCK_OPT_MAX_HANDSHAKE_BYTES},
    {"max_headers", EVSOCK_OPT_MAX_HEADERS},
    {"max_outbound_bytes", EVSOCK_OPT_MAX_OUTBOUND_BYTES},
    {"ping_interval_ms", EVSOCK_OPT_PING_INTERVAL_MS},
    {"pong_timeout_ms", EVSOCK_OPT_PONG_TIMEOUT_MS},
    {"idle_timeout_ms", EVSOCK_OPT_IDLE_TIMEOUT_MS},
    {"handshake_timeout_ms", EVSOCK_OPT_HANDSHAKE_TIMEOUT_MS},
    {"close_timeout_ms", EVSOCK_OPT_CLOSE_TIMEOUT_MS},
    {"auto_pong", EVSOCK_OPT_AUTO_PONG},
};

static const struct {
    const char *key;
    uint32_t opt;
} DEFLATE_OPTIONS[] = {
    {"threshold", EVSOCK_OPT_DEFLATE_THRESHOLD},
    {"level", EVSOCK_OPT_DEFLATE_LEVEL},
    {"server_max_window_bits", EVSOCK_OPT_DEFLATE_SERVER_MAX_WINDOW_BITS},
    {"client_max_window_bits", EVSOCK_OPT_DEFLATE_CLIENT_MAX_WINDOW_BITS},
    {"server_no_context_takeover", EVSOCK_OPT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER},
    {"client_no_context_takeover", EVSOCK_OPT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER},
};

static const char *KNOWN_STEP_KEYS[] = {
    "input", "input_text", "eof", "timeout", "call", "at", "subprotocol",
    "status", "body", "text", "hex", "code", "reason", "transmit", "transmit_text",
    "transmit_prefix_text", "events", "error", "state", "deadline", NULL,
};

/* Builds the config a vector asks for, on top of "without timers". */
static int vector_config(json_t *cfgj, evsock_config **out) {
    evsock_config *cfg = NULL;
    if (evsock_config_new_without_timers(&cfg) != EVSOCK_OK) return fail("config_new: %s", evsock_last_error());
    const char *key;
    json_t *val;
    json_object_foreach(cfgj, key, val) {
        int handled = 0;
        for (size_t i = 0; i < sizeof VECTOR_OPTIONS / sizeof VECTOR_OPTIONS[0]; i++) {
            if (strcmp(key, VECTOR_OPTIONS[i].key)) continue;
            uint64_t v = json_is_true(val) ? 1 : json_is_integer(val) ? (uint64_t)json_integer_value(val) : 0;
            if (evsock_config_set(cfg, VECTOR_OPTIONS[i].opt, v) != EVSOCK_OK) {
                evsock_config_free(cfg);
                return fail("config %s: %s", key, evsock_last_error());
            }
            handled = 1;
        }
        if (!strcmp(key, "deflate")) {
            /* false turns it off; true or an object turns it on, the object
             * overriding single parameters. */
            if (evsock_config_set(cfg, EVSOCK_OPT_DEFLATE, json_is_false(val) ? 0 : 1) != EVSOCK_OK) {
                evsock_config_free(cfg);
                return fail("config deflate: %s", evsock_last_error());
            }
            const char *dk;
            json_t *dv;
            json_object_foreach(val, dk, dv) {
                uint32_t opt = 0;
                for (size_t i = 0; i < sizeof DEFLATE_OPTIONS / sizeof DEFLATE_OPTIONS[0]; i++)
                    if (!strcmp(dk, DEFLATE_OPTIONS[i].key)) opt = DEFLATE_OPTIONS[i].opt;
                uint64_t v = json_is_true(dv) ? 1 : json_is_integer(dv) ? (uint64_t)json_integer_value(dv) : 0;
                if (!opt || evsock_config_set(cfg, opt, v) != EVSOCK_OK) {
                    evsock_config_free(cfg);
                    return fail("config deflate.%s: %s", dk, opt ? evsock_last_error() : "unknown key");
                }
            }
            handled = 1;
        }
        if (!strcmp(key, "subprotocols") || !strcmp(key, "origins")) {
            size_t i;
            json_t *s;
            json_array_foreach(val, i, s) {
                evsock_status st = !strcmp(key, "origins")
                                       ? evsock_config_allow_origin(cfg, json_string_value(s))
                                       : evsock_config_add_subprotocol(cfg, json_string_value(s));
                if (st != EVSOCK_OK) {
                    evsock_config_free(cfg);
                    return fail("config %s: %s", key, evsock_last_error());
                }
            }
            handled = 1;
        }
        if (!handled) {
            evsock_config_free(cfg);
            return fail("unknown config key %s", key);
        }
    }
    *out = cfg;
    return 1;
}

static evsock_status vector_call(evsock_conn *conn, json_t *step, const char *call, int *known) {
    unsigned char *bytes = NULL;
    size_t n = 0;
    evsock_status st;
    *known = 1;
    if (!strcmp(call, "accept")) {
        json_t *p = json_object_get(step, "subprotocol");
        return evsock_conn_accept(conn, json_is_string(p) ? json_string_value(p) : NULL, NULL, 0);
    }
    if (!strcmp(call, "reject")) {
        json_t *body = json_object_get(step, "body");
        return evsock_conn_reject(conn, (uint16_t)json_integer_value(json_object_get(step, "status")),
                                  NULL, 0, (const uint8_t *)json_string_value(body),
                                  json_string_length(body));
    }
    if (!strcmp(call, "send_text")) {
        json_t *t = json_object_get(step, "text");
        return evsock_conn_send_text(conn, json_string_value(t), json_string_length(t));
    }
    if (!strcmp(call, "close")) {
        json_t *r = json_object_get(step, "reason");
        return evsock_conn_close(conn, (uint16_t)json_integer_value(json_object_get(step, "code")),
                                 json_string_value(r), json_string_length(r));
    }
    if (!strcmp(call, "send_binary") || !strcmp(call, "ping")) {
        if (!unhex(json_string_value(json_object_get(step, "hex")), &bytes, &n)) {
            *known = 0;
            return EVSOCK_ERR_INVALID_ARGUMENT;
        }
        st = !strcmp(call, "ping") ? evsock_conn_ping(conn, bytes, n)
                                   : evsock_conn_send_binary(conn, bytes, n);
        free(bytes);
        return st;
    }
    *known = 0;
    return EVSOCK_ERR_INVALID_ARGUMENT;
}

/* Runs one vector; on failure g_why says which step and what differed. */
/* Hands n bytes to the connection: copied in (evsock_conn_handle_input),
 * or, in_place, read straight into its buffer (evsock_conn_input_buffer and
 * evsock_conn_commit_input) until all are taken or it stops reading. */
static evsock_status feed(evsock_conn *conn, uint64_t at, const uint8_t *b, size_t n,
                          int in_place) {
    if (!in_place) return evsock_conn_handle_input(conn, at, b, n);
    while (n > 0) {
        uint8_t *room;
        size_t len;
        evsock_status s = evsock_conn_input_buffer(conn, &room, &len);
        if (s != EVSOCK_OK) return s;
        if (len == 0) return EVSOCK_OK; /* closed: the rest is not read */
        size_t k = n < len ? n : len;
        memcpy(room, b, k);
        s = evsock_conn_commit_input(conn, at, k);
        if (s != EVSOCK_OK) return s;
        b += k;
        n -= k;
    }
    return EVSOCK_OK;
}

static int run_vector_with(json_t *v, int in_place) {
    int ok = 1;
    evsock_config *cfg = NULL;
    evsock_conn *conn = NULL;
    buf_t out = {0};
    json_t *events = NULL;
    char *got_hex = NULL, *got_s = NULL, *want_s = NULL;
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *role = json_string_value(json_object_get(v, "role"));
    CHECK(name && role);
    if (!vector_config(json_object_get(v, "config"), &cfg)) return 0;
    if (!strcmp(role, "server")) {
        EXPECT_OK(evsock_conn_new_server(cfg, 0, &conn));
    } else {
        json_t *c = json_object_get(v, "client"), *protos = json_object_get(c, "subprotocols");
        char url[512];
        const char *plist[16];
        size_t np = json_array_size(protos);
        CHECK(np <= 16);
        for (size_t i = 0; i < np; i++) plist[i] = json_string_value(json_array_get(protos, i));
        snprintf(url, sizeof url, "ws://%s%s", json_string_value(json_object_get(c, "host")),
                 json_string_value(json_object_get(c, "path")));
        evsock_client_options o = {url, NULL, plist, np, NULL, 0};
        EXPECT_OK(evsock_conn_new_client_seeded(
            cfg, &o, (uint64_t)json_integer_value(json_object_get(c, "seed")), 0, &conn));
    }
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(v, "steps"), i, step) {
        uint64_t at = (uint64_t)json_integer_value(json_object_get(step, "at"));
        evsock_status result = EVSOCK_OK;
        json_t *x;
        const char *key;
        json_t *val;
        json_object_foreach(step, key, val) {
            int known = 0;
            for (const char **k = KNOWN_STEP_KEYS; *k; k++) known |= !strcmp(*k, key);
            if (!known) {
                ok = fail("step %zu: unknown key %s", i, key);
                goto done;
            }
        }
        if ((x = json_object_get(step, "input"))) {
            unsigned char *b;
            size_t n;
            if (!unhex(json_string_value(x), &b, &n)) {
                ok = fail("step %zu: bad hex", i);
                goto done;
            }
            result = feed(conn, at, b, n, in_place);
            free(b);
        } else if ((x = json_object_get(step, "input_text"))) {
            result = feed(conn, at, (const uint8_t *)json_string_value(x), json_string_length(x),
                          in_place);
        } else if (json_object_get(step, "eof")) {
            result = evsock_conn_handle_eof(conn, at);
        } else if (json_object_get(step, "timeout")) {
            result = evsock_conn_handle_timeout(conn, at);
        } else if ((x = json_object_get(step, "call"))) {
            int known;
            result = vector_call(conn, step, json_string_value(x), &known);
            if (!known) {
                ok = fail("step %zu: unknown call %s", i, json_string_value(x));
                goto done;
            }
        } else {
            ok = fail("step %zu: no action", i);
            goto done;
        }

        x = json_object_get(step, "error");
        if (json_is_string(x)) {
            if (result >= 0 || strcmp(evsock_status_name(result), json_string_value(x))) {
                ok = fail("step %zu: want error %s, got %s", i, json_string_value(x),
                          evsock_status_name(result));
                goto done;
            }
        } else if (result != EVSOCK_OK) {
            ok = fail("step %zu: unexpected %s: %s", i, evsock_status_name(result), evsock_last_error());
            goto done;
        }

        /* Drain the way a host does: one poll_output loop until WAIT. */
        out.len = 0;
        json_decref(events);
        events = json_array();
        evsock_output o;
        evsock_status st;
        for (;;) {
            EXPECT_OK(evsock_conn_poll_output(conn, &o));
            if (o.kind == EVSOCK_OUTPUT_TRANSMIT) {
                CHECK(o.data != NULL && o.len > 0);
                buf_add(&out, o.data, o.len);
            } else if (o.kind == EVSOCK_OUTPUT_EVENT) {
                json_array_append_new(events, event_to_json(conn, &o.event));
            } else {
                CHECK(o.kind == EVSOCK_OUTPUT_WAIT && o.event.kind == EVSOCK_EVENT_NONE);
                break;
            }
        }
        free(got_hex);
        got_hex = hex(out.p ? out.p : (const unsigned char *)"", out.len);
        if ((x = json_object_get(step, "transmit")) && strcmp(got_hex, json_string_value(x))) {
            ok = fail("step %zu: transmit\n  got  %s\n  want %s", i, got_hex, json_string_value(x));
            goto done;
        }
        if ((x = json_object_get(step, "transmit_text")) &&
            (out.len != json_string_length(x) || (out.len && memcmp(out.p, json_string_value(x), out.len)))) {
            ok = fail("step %zu: transmit_text\n  got  %.*s\n  want %s", i, (int)out.len,
                      out.p ? (char *)out.p : "", json_string_value(x));
            goto done;
        }
        if ((x = json_object_get(step, "transmit_prefix_text")) &&
            (out.len < json_string_length(x) || memcmp(out.p, json_string_value(x), json_string_length(x)))) {
            ok = fail("step %zu: transmit_prefix_text\n  got  %.*s\n  want %s...", i, (int)out.len,
                      out.p ? (char *)out.p : "", json_string_value(x));
            goto done;
        }
        json_t *want = json_object_get(step, "events");
        if (!want ? json_array_size(events) != 0 : !json_equal(events, want)) {
            free(got_s);
            free(want_s);
            got_s = json_dumps(events, JSON_COMPACT);
            want_s = want ? json_dumps(want, JSON_COMPACT) : strdup("[]");
            ok = fail("step %zu: events\n  got  %s\n  want %s", i, got_s, want_s);
            goto done;
        }

        if ((x = json_object_get(step, "deadline"))) {
            uint64_t d = 0;
            st = evsock_conn_poll_timeout(conn, &d);
            /* poll_timeout and the final WAIT agree. */
            CHECK((st == EVSOCK_OK) == o.has_deadline && (!o.has_deadline || o.deadline_ms == d));
            int match = json_is_null(x) ? st == EVSOCK_EMPTY
                                        : st == EVSOCK_OK && d == (uint64_t)json_integer_value(x);
            if (!match) {
                ok = fail("step %zu: deadline: got %s %llu", i, evsock_status_name(st), (unsigned long long)d);
                goto done;
            }
        }
        if ((x = json_object_get(step, "state"))) {
            evsock_state s;
            EXPECT_OK(evsock_conn_state(conn, &s));
            if (strcmp(state_name(s), json_string_value(x))) {
                ok = fail("step %zu: state %s, want %s", i, state_name(s), json_string_value(x));
                goto done;
            }
        }
    }
done:
    json_decref(events);
    free(got_hex);
    free(got_s);
    free(want_s);
    buf_free(&out);
    evsock_conn_free(conn);
    evsock_config_free(cfg);
    return ok;
}

/* Every vector holds whichever way the host receives. */
static int run_vector(json_t *v) {
    if (!run_vector_with(v, 0)) return 0;
    if (run_vector_with(v, 1)) return 1;
    strncat(g_why, " (receiving in place)", sizeof g_why - strlen(g_why) - 1);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every *.json file in dir as its own test through fn. Returns how
 * many files there were. */
static int run_vector_dir(const char *dir, const char *label, int (*fn)(json_t *)) {
    DIR *d = opendir(dir);
    if (!d) {
        g_failed++;
        printf("FAIL %ss: cannot open %s\n", label, dir);
        return 0;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        json_error_t jerr;
        json_t *v = json_load_file(path, 0, &jerr);
        g_why[0] = '\0';
        int ok = v ? fn(v) : fail("%s:%d: %s", path, jerr.line, jerr.text);
        if (ok) {
            g_passed++;
            printf("ok   %s %s\n", label, names[i]);
        } else {
            g_failed++;
            printf("FAIL %s %s: %s\n", label, names[i], g_why);
        }
        json_decref(v);
        free(names[i]);
    }
    return n;
}

/* ----- tests of the C surface ----------------------------------------- */

#include "test_api.inc"
#include "test_session.inc"
#include "test_hub.inc"

/* Counts a missing or thinned-out vector directory as a failure. */
static void want_vectors(int got, int want, const char *dir) {
    if (got >= want) return;
    g_failed++;
    printf("FAIL only %d vector files in %s (want at least %d)\n", got, dir, want);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "tests/vectors";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ws", root);
    want_vectors(run_vector_dir(dir, "ws vector", run_vector), 20, dir);
    snprintf(dir, sizeof dir, "%s/session", root);
    want_vectors(run_vector_dir(dir, "session vector", run_session_vector), 9, dir);
    run_api_tests();
    run_session_tests();
    run_hub_tests();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
