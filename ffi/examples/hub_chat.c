/*
 * A chat server on an evsock hub, in plain C: one thread, poll(), any
 * number of browser tabs on 127.0.0.1 speaking the evsock session protocol
 * (browser/evsock.js, or any client of docs/protocol.md).
 *
 *   hub_chat [PORT]        (default 9003; 0 picks a free port)
 *
 *   ws://127.0.0.1:PORT/chat?user=NAME   log in as NAME (any other path or
 *                                        a missing user: HTTP 401 / 404)
 *
 * Events a client may send:
 *   request "room/join"  data "ROOM"  -> reply {"room":"ROOM","users":[...]}
 *                                        (error reply {"code":"..."} if refused)
 *   request "room/leave" data "ROOM"  -> reply {"room":"ROOM"}
 *   "chat/send"          any data     -> every member of the sender's rooms
 *                                        (sender included) gets "chat/msg"
 *                                        {"from":NAME,"room":ROOM,"data":DATA},
 *                                        reliably
 * and it gets "room/presence" {"room":ROOM,"user":NAME,"online":BOOL} when
 * someone enters or leaves one of its rooms. The room "secret" is refused
 * to everybody but "admin" (the room policy).
 *
 * It prints "listening on ws://127.0.0.1:PORT" once ready and exits 0 on
 * SIGINT or SIGTERM, after handing every socket's pending bytes to the
 * kernel (best effort, one second at most).
 *
 * What a hub host does, all visible below: accept sockets and give each a
 * connection id (evsock_hub_new_connection), hand in the bytes read with the
 * time, report EOF, report bytes written (evsock_hub_handle_written: the
 * hub's send window), drain evsock_hub_poll_output (write TRANSMITs, close
 * on CLOSE, answer UPGRADE and REQUEST events), and call
 * evsock_hub_handle_timeout at evsock_hub_poll_timeout's deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "evsock.h"

#define MAX_SOCKS 1024
#define READ_CHUNK (64 * 1024)

typedef struct {
    int fd; /* -1: free slot */
    uint64_t id;
    unsigned char *out; /* TRANSMIT bytes the socket did not take yet */
    size_t out_len, out_cap;
    int closing; /* the hub said CLOSE: close once `out` is written */
} sock_t;

static sock_t g_socks[MAX_SOCKS];
static evsock_hub *g_hub;
static volatile sig_atomic_t g_stop;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void die(const char *what) {
    fprintf(stderr, "hub_chat: %s: %s\n", what, evsock_last_error());
    exit(1);
}

static sock_t *sock_by_id(uint64_t id) {
    for (int i = 0; i < MAX_SOCKS; i++)
        if (g_socks[i].fd >= 0 && g_socks[i].id == id) return &g_socks[i];
    return NULL;
}

static void sock_drop(sock_t *s) {
    close(s->fd);
    free(s->out);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

/* Writes what the socket takes now; reports it to the hub. */
static void sock_flush(sock_t *s) {
    size_t done = 0;
    while (done < s->out_len) {
        ssize_t n = send(s->fd, s->out + done, s->out_len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EAGAIN: wait for POLLOUT; errors show up as EOF on read */
        done += (size_t)n;
    }
    if (done) {
        memmove(s->out, s->out + done, s->out_len - done);
        s->out_len -= done;
        if (!s->closing) evsock_hub_handle_written(g_hub, s->id, done);
    }
}

static void sock_queue(sock_t *s, const uint8_t *p, size_t n) {
    if (s->out_len + n > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;
        while (cap < s->out_len + n) cap *= 2;
        unsigned char *q = realloc(s->out, cap);
        if (!q) {
            fprintf(stderr, "hub_chat: out of memory\n");
            exit(1);
        }
        s->out = q;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
}

/* Appends s to a JSON string literal in buf (user ids may hold " or \). */
static size_t json_str(char *buf, size_t cap, size_t at, const char *s) {
    if (at < cap) buf[at] = '"';
    at++;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            if (at < cap) buf[at] = '\\';
            at++;
        }
        if (at < cap) buf[at] = *s;
        at++;
    }
    if (at < cap) buf[at] = '"';
    return at + 1;
}

/* The room a request names: its data must be a plain JSON string. */
static int room_arg(const evsock_hub_output *o, char *room, size_t cap) {
    if (o->format != EVSOCK_FORMAT_JSON || o->len < 3 || o->len - 2 >= cap || o->data[0] != '"' ||
        o->data[o->len - 1] != '"')
        return 0;
    memcpy(room, o->data + 1, o->len - 2);
    room[o->len - 2] = '\0';
    return strchr(room, '\\') == NULL;
}

static void reply_error(const evsock_hub_output *o, uint64_t now, const char *code) {
    char buf[160];
    int n = snprintf(buf, sizeof buf, "{\"code\":\"%s\"}", code);
    evsock_hub_reply_error(g_hub, o->client, now, o->req, (const uint8_t *)buf, (size_t)n);
}

static void on_request(const evsock_hub_output *o, uint64_t now) {
    char room[160], buf[8192];
    size_t at;
    if (!room_arg(o, room, sizeof room)) {
        reply_error(o, now, "bad_room");
        return;
    }
    if (!strcmp(o->name, "room/join")) {
        const char *const *users;
        size_t n;
        evsock_status st = evsock_hub_join_room(g_hub, o->client, now, room, NULL);
        if (st != EVSOCK_OK) {
            reply_error(o, now, evsock_status_name(st));
            return;
        }
        if (evsock_hub_room_users(g_hub, room, &users, &n) != EVSOCK_OK) die("room_users");
        at = (size_t)snprintf(buf, sizeof buf, "{\"room\":");
        at = json_str(buf, sizeof buf, at, room);
        at += (size_t)snprintf(buf + at, at < sizeof buf ? sizeof buf - at : 0, ",\"users\":[");
        for (size_t i = 0; i < n && at < sizeof buf - 4; i++) {
            if (i) buf[at++] = ',';
            at = json_str(buf, sizeof buf, at, users[i]);
        }
        if (at + 3 > sizeof buf) {
            reply_error(o, now, "too_many_users");
            return;
        }
        buf[at++] = ']';
        buf[at++] = '}';
        evsock_hub_reply(g_hub, o->client, now, o->req, (const uint8_t *)buf, at);
    } else if (!strcmp(o->name, "room/leave")) {
        evsock_hub_leave_room(g_hub, o->client, now, room, NULL);
        at = (size_t)snprintf(buf, sizeof buf, "{\"room\":");
        at = json_str(buf, sizeof buf, at, room);
        buf[at++] = '}';
        evsock_hub_reply(g_hub, o->client, now, o->req, (const uint8_t *)buf, at);
    } else {
        reply_error(o, now, "unknown_request");
    }
}

/* chat/send: to every room of the sender. The data is the client's,
 * already validated as one JSON value by the hub. */
static void on_chat(const evsock_hub_output *o, uint64_t now) {
    const char *const *rooms;
    size_t n;
    char user[300];
    if (strcmp(o->name, "chat/send") || o->format != EVSOCK_FORMAT_JSON) return;
    snprintf(user, sizeof user, "%s", o->user);
    if (evsock_hub_client_rooms(g_hub, o->client, &rooms, &n) != EVSOCK_OK) return;
    /* the room list lives until the next string query: copy the names */
    char (*names)[130] = calloc(n ? n : 1, sizeof *names);
    if (!names) return;
    for (size_t i = 0; i < n; i++) snprintf(names[i], sizeof names[i], "%s", rooms[i]);
    size_t cap = o->len + 1024;
    char *buf = malloc(cap);
    for (size_t i = 0; buf && i < n; i++) {
        size_t at = (size_t)snprintf(buf, cap, "{\"from\":");
        at = json_str(buf, cap, at, user);
        at += (size_t)snprintf(buf + at, cap - at, ",\"room\":");
        at = json_str(buf, cap, at, names[i]);
        at += (size_t)snprintf(buf + at, cap - at, ",\"data\":");
        if (at + o->len + 2 > cap) break;
        memcpy(buf + at, o->data, o->len);
        at += o->len;
        buf[at++] = '}';
        evsock_hub_broadcast_room(g_hub, names[i], now, "chat/msg", (const uint8_t *)buf, at,
                                  EVSOCK_DELIVERY_RELIABLE, 0, NULL);
    }
    free(buf);
    free(names);
}

/* The auth hook: /chat?user=NAME. */
static void on_upgrade(const evsock_hub_output *o, uint64_t now) {
    char path[512], user[200];
    const char *q;
    if (o->len >= sizeof path) goto not_found;
    memcpy(path, o->data, o->len);
    path[o->len] = '\0';
    if (strncmp(path, "/chat", 5) || (path[5] != '\0' && path[5] != '?')) goto not_found;
    q = strstr(path, "?user=");
    if (!q || !q[6] || strlen(q + 6) >= sizeof user || strchr(q + 6, '&') || strchr(q + 6, '%')) {
        static const char body[] = "log in with ?user=NAME\n";
        evsock_hub_reject(g_hub, o->conn, now, 401, NULL, 0, (const uint8_t *)body, sizeof body - 1);
        return;
    }
    snprintf(user, sizeof user, "%s", q + 6);
    if (evsock_hub_accept(g_hub, o->conn, now, user, NULL, NULL, 0) != EVSOCK_OK)
        fprintf(stderr, "hub_chat: accept %s: %s\n", user, evsock_last_error());
    return;
not_found: {
    static const char body[] = "not found\n";
    evsock_hub_reject(g_hub, o->conn, now, 404, NULL, 0, (const uint8_t *)body, sizeof body - 1);
}
}

static void on_presence(const evsock_hub_output *o, uint64_t now) {
    char buf[600];
    char room[130];
    size_t at = (size_t)snprintf(buf, sizeof buf, "{\"room\":");
    snprintf(room, sizeof room, "%s", o->room);
    at = json_str(buf, sizeof buf, at, o->room);
    at += (size_t)snprintf(buf + at, sizeof buf - at, ",\"user\":");
    at = json_str(buf, sizeof buf, at, o->user);
    at += (size_t)snprintf(buf + at, sizeof buf - at, ",\"online\":%s}", o->online ? "true" : "false");
    if (at < sizeof buf)
        evsock_hub_broadcast_room(g_hub, room, now, "room/presence", (const uint8_t *)buf, at,
                                  EVSOCK_DELIVERY_VOLATILE, 0, NULL);
}

static bool room_policy(void *ctx, const char *user, const char *room) {
    (void)ctx;
    return strcmp(room, "secret") != 0 || strcmp(user, "admin") == 0;
}

/* Everything the hub wants done, until it has nothing more. */
static void drain(uint64_t now) {
    evsock_hub_output o;
    while (evsock_hub_poll_output(g_hub, &o) == EVSOCK_OK) {
        sock_t *s;
        switch (o.kind) {
        case EVSOCK_HUB_OUTPUT_TRANSMIT:
            if ((s = sock_by_id(o.conn))) {
                sock_queue(s, o.data, o.len);
                sock_flush(s);
            }
            break;
        case EVSOCK_HUB_OUTPUT_CLOSE:
            if ((s = sock_by_id(o.conn))) {
                s->closing = 1;
                sock_flush(s);
                if (s->out_len == 0) sock_drop(s);
            }
            break;
        case EVSOCK_HUB_OUTPUT_EVENT:
            switch (o.event) {
            case EVSOCK_HUB_EVENT_UPGRADE: on_upgrade(&o, now); break;
            case EVSOCK_HUB_EVENT_REQUEST: on_request(&o, now); break;
            case EVSOCK_HUB_EVENT_MESSAGE: on_chat(&o, now); break;
            case EVSOCK_HUB_EVENT_PRESENCE: on_presence(&o, now); break;
            case EVSOCK_HUB_EVENT_USER_ONLINE: printf("online: %s\n", o.user); break;
            case EVSOCK_HUB_EVENT_USER_OFFLINE: printf("offline: %s\n", o.user); break;
            case EVSOCK_HUB_EVENT_PROTOCOL_ERROR: printf("protocol error: %s: %s\n", o.code, o.message); break;
            default: break;
            }
            fflush(stdout);
            break;
        default: break; /* PUBLISH / SUBSCRIBE: a single node has no bus */
        }
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9003;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {0};
    socklen_t alen = sizeof addr;
    struct sigaction sa = {0};
    static struct pollfd pfds[MAX_SOCKS + 1];
    static sock_t *owner[MAX_SOCKS + 1];
    unsigned char *rbuf = malloc(READ_CHUNK);

    for (int i = 0; i < MAX_SOCKS; i++) g_socks[i].fd = -1;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (lfd < 0 || !rbuf) return 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 128) ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
        perror("hub_chat: listen");
        return 1;
    }
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    if (evsock_hub_new(NULL, NULL, NULL, &g_hub) != EVSOCK_OK) die("evsock_hub_new");
    if (evsock_hub_set_room_policy(g_hub, room_policy, NULL) != EVSOCK_OK) die("set_room_policy");
    printf("listening on ws://127.0.0.1:%d/chat?user=NAME\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (!g_stop) {
        uint64_t now = now_ms(), deadline;
        int timeout = -1, n = 0;
        if (evsock_hub_poll_timeout(g_hub, &deadline) == EVSOCK_OK)
            timeout = deadline <= now ? 0 : (int)(deadline - now > 60000 ? 60000 : deadline - now);
        pfds[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
        owner[n++] = NULL;
        for (int i = 0; i < MAX_SOCKS; i++) {
            sock_t *s = &g_socks[i];
            if (s->fd < 0) continue;
            pfds[n] = (struct pollfd){.fd = s->fd, .events = (short)((s->closing ? 0 : POLLIN) | (s->out_len ? POLLOUT : 0))};
            owner[n++] = s;
        }
        if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        now = now_ms();
        for (int k = 1; k < n; k++) {
            sock_t *s = owner[k];
            if (s->fd < 0) continue;
            if (pfds[k].revents & POLLOUT) {
                sock_flush(s);
                if (s->closing && s->out_len == 0) {
                    sock_drop(s);
                    continue;
                }
            }
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(s->fd, rbuf, READ_CHUNK, 0);
                if (r > 0) {
                    evsock_hub_handle_input(g_hub, s->id, now, rbuf, (size_t)r);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (s->closing) {
                        sock_drop(s);
                        continue;
                    }
                    evsock_hub_handle_eof(g_hub, s->id, now); /* CLOSE follows */
                }
                drain(now);
            }
        }
        if (pfds[0].revents & POLLIN) {
            int fd;
            while ((fd = accept(lfd, NULL, NULL)) >= 0) {
                const uint8_t *resp;
                size_t rlen;
                uint64_t id;
                sock_t *s = NULL;
                for (int i = 0; i < MAX_SOCKS && !s; i++)
                    if (g_socks[i].fd < 0) s = &g_socks[i];
                if (!s) { /* our table is full */
                    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
                    (void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
                    close(fd);
                    continue;
                }
                if (evsock_hub_new_connection(g_hub, now, &id, &resp, &rlen) != EVSOCK_OK) {
                    /* EVSOCK_ERR_REFUSED: the hub's 503 with Retry-After */
                    (void)!send(fd, resp, rlen, MSG_NOSIGNAL);
                    close(fd);
                    continue;
                }
                fcntl(fd, F_SETFL, O_NONBLOCK);
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                s->fd = fd;
                s->id = id;
            }
        }
        if (evsock_hub_poll_timeout(g_hub, &deadline) == EVSOCK_OK && deadline <= now_ms())
            evsock_hub_handle_timeout(g_hub, now_ms());
        drain(now_ms());
    }

    /* Shut down: hand what is pending to the kernel, then free everything. */
    uint64_t until = now_ms() + 1000;
    for (int i = 0; i < MAX_SOCKS; i++) {
        sock_t *s = &g_socks[i];
        if (s->fd < 0) continue;
        s->closing = 1;
        while (s->out_len && now_ms() < until) {
            struct pollfd p = {.fd = s->fd, .events = POLLOUT};
            if (poll(&p, 1, 50) < 0) break;
            sock_flush(s);
        }
        sock_drop(s);
    }
    evsock_hub_free(g_hub);
    close(lfd);
    free(rbuf);
    printf("bye\n");
    return 0;
}
