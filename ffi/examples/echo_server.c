/*
 * A single-threaded poll() host for evsock, in plain C: an echo endpoint
 * and a chat room on 127.0.0.1.
 *
 *   echo_server [PORT]        (default 9002; 0 picks a free port)
 *
 *   ws://127.0.0.1:PORT/ or /echo   every message comes back with its type
 *   ws://127.0.0.1:PORT/chat        every text message goes to everyone in
 *                                   the room, sender included
 *   anything else                   404
 *
 * The subprotocol "chat" is selected when a client offers it. Try it from a
 * browser console:
 *   ws = new WebSocket("ws://127.0.0.1:9002/chat");
 *   ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hi");
 *
 * It prints "listening on ws://127.0.0.1:PORT" once ready, and on SIGINT
 * or SIGTERM closes every connection with 1001 and exits 0 when they are
 * flushed (or after a second).
 *
 * What a host does for evsock, all of it visible below: read bytes straight
 * into the connection's buffer (evsock_conn_input_buffer, recv, then
 * evsock_conn_commit_input with the time; evsock_conn_handle_input would
 * take them from a buffer of our own instead, at the cost of one more
 * copy), drain evsock_conn_poll_output (write TRANSMIT
 * bytes, act on EVENTs, remember the WAIT deadline), call
 * evsock_conn_handle_timeout when the deadline passes, and close the socket
 * once the connection is closed and its bytes are written.
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

#define MAX_CLIENTS 512
/* Stop reading from a client whose unwritten output passes this. */
#define MAX_PENDING (4 * 1024 * 1024)

enum room { ROOM_NONE, ROOM_ECHO, ROOM_CHAT };

typedef struct {
    int fd;
    evsock_conn *conn;
    enum room room;
    unsigned char *pending; /* bytes evsock gave us that the socket did not take yet */
    size_t pending_len, pending_cap;
    int has_deadline;
    uint64_t deadline;
    int dirty; /* output may be waiting in the connection */
    int dead;  /* the socket failed; drop it once evsock has said CLOSED */
    int eof;   /* the peer finished sending; stop polling for input */
} client_t;

static client_t *clients[MAX_CLIENTS];
static size_t nclients;
static evsock_config *cfg;
static volatile sig_atomic_t stopping;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void warn_status(const char *what, evsock_status s) {
    fprintf(stderr, "echo_server: %s: %s (%s)\n", what, evsock_status_name(s), evsock_last_error());
}

/* Queues bytes for the socket, writing straight away when nothing is
 * pending (the common case: no copy). */
static void client_write(client_t *c, const uint8_t *p, size_t n) {
    if (c->dead) return;
    if (c->pending_len == 0) {
        while (n > 0) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w > 0) {
                p += w;
                n -= (size_t)w;
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else {
                c->dead = 1;
                return;
            }
        }
    }
    if (n == 0) return;
    if (c->pending_len + n > c->pending_cap) {
        size_t cap = c->pending_cap ? c->pending_cap : 16384;
        while (cap < c->pending_len + n) cap *= 2;
        unsigned char *np = realloc(c->pending, cap);
        if (!np) {
            c->dead = 1;
            return;
        }
        c->pending = np;
        c->pending_cap = cap;
    }
    memcpy(c->pending + c->pending_len, p, n);
    c->pending_len += n;
}

static void client_flush(client_t *c) {
    size_t off = 0;
    while (off < c->pending_len && !c->dead) {
        ssize_t w = send(c->fd, c->pending + off, c->pending_len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            c->dead = 1;
        }
    }
    memmove(c->pending, c->pending + off, c->pending_len - off);
    c->pending_len -= off;
    if (c->pending_len == 0 && c->pending_cap > 65536) {
        free(c->pending);
        c->pending = NULL;
        c->pending_cap = 0;
    }
}

static void broadcast(const uint8_t *text, size_t len) {
    for (size_t i = 0; i < nclients; i++) {
        client_t *o = clients[i];
        evsock_state st;
        if (o->room != ROOM_CHAT || evsock_conn_state(o->conn, &st) != EVSOCK_OK || st != EVSOCK_STATE_OPEN)
            continue;
        /* A reader that cannot keep up misses messages instead of making
         * the server buffer without bound. */
        if (o->pending_len > MAX_PENDING) continue;
        evsock_status s = evsock_conn_send_text(o->conn, (const char *)text, len);
        if (s != EVSOCK_OK && s != EVSOCK_ERR_OUTBOUND_FULL) warn_status("broadcast", s);
        o->dirty = 1;
    }
}

static void on_event(client_t *c, const evsock_event *ev) {
    evsock_status s = EVSOCK_OK;
    switch (ev->kind) {
    case EVSOCK_EVENT_REQUEST: {
        /* The path is not NUL-terminated: compare with its length. */
        const char *path = (const char *)ev->data;
        size_t n = ev->len;
        const char *q = memchr(path, '?', n);
        if (q) n = (size_t)(q - path);
        if ((n == 1 && path[0] == '/') || (n == 5 && !memcmp(path, "/echo", 5))) {
            c->room = ROOM_ECHO;
            s = evsock_conn_accept(c->conn, NULL, NULL, 0);
        } else if (n == 5 && !memcmp(path, "/chat", 5)) {
            c->room = ROOM_CHAT;
            s = evsock_conn_accept(c->conn, NULL, NULL, 0);
        } else {
            static const char body[] = "no such endpoint: try / or /chat\n";
            s = evsock_conn_reject(c->conn, 404, NULL, 0, (const uint8_t *)body, sizeof body - 1);
        }
        if (s != EVSOCK_OK) warn_status("handshake decision", s);
        break;
    }
    case EVSOCK_EVENT_TEXT:
        if (c->room == ROOM_CHAT) {
            broadcast(ev->data, ev->len);
            break;
        }
        s = evsock_conn_send_text(c->conn, (const char *)ev->data, ev->len);
        break;
    case EVSOCK_EVENT_BINARY:
        s = evsock_conn_send_binary(c->conn, ev->data, ev->len);
        break;
    case EVSOCK_EVENT_CLOSED:
        if (ev->error != EVSOCK_OK)
            fprintf(stderr, "echo_server: connection ended: %s\n", ev->error_message);
        break;
    default: /* OPEN, PING (answered automatically), PONG */
        break;
    }
    if (s != EVSOCK_OK && s != EVSOCK_ERR_INVALID_STATE) warn_status("send", s);
}

/* Drains a connection's output: write bytes, handle events, note the
 * deadline. Handling an event may send, which the same loop picks up. */
static void drive(client_t *c) {
    evsock_output out;
    c->dirty = 0;
    for (;;) {
        evsock_status s = evsock_conn_poll_output(c->conn, &out);
        if (s != EVSOCK_OK) {
            warn_status("poll_output", s);
            c->dead = 1;
            return;
        }
        if (out.kind == EVSOCK_OUTPUT_TRANSMIT) {
            client_write(c, out.data, out.len);
        } else if (out.kind == EVSOCK_OUTPUT_EVENT) {
            on_event(c, &out.event);
        } else {
            c->has_deadline = out.has_deadline;
            c->deadline = out.deadline_ms;
            return;
        }
    }
}

static void client_free(client_t *c) {
    close(c->fd);
    evsock_conn_free(c->conn);
    free(c->pending);
    free(c);
}

static int client_done(client_t *c) {
    evsock_state st;
    if (evsock_conn_state(c->conn, &st) != EVSOCK_OK) return 1;
    return st == EVSOCK_STATE_CLOSED && (c->pending_len == 0 || c->dead);
}

static void accept_clients(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or a transient error: try on the next wakeup */
        if (nclients == MAX_CLIENTS || stopping) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        client_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        evsock_status s = evsock_conn_new_server(cfg, now_ms(), &c->conn);
        if (s != EVSOCK_OK) {
            warn_status("new connection", s);
            close(fd);
            free(c);
            continue;
        }
        c->dirty = 1;
        clients[nclients++] = c;
    }
}

static int listen_on(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    unsigned port = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 9002;
    static struct pollfd pfds[MAX_CLIENTS + 1];
    uint64_t stop_deadline = 0;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    evsock_status s = evsock_config_new(&cfg);
    if (s == EVSOCK_OK) s = evsock_config_add_subprotocol(cfg, "chat");
    if (s == EVSOCK_OK) s = evsock_config_set(cfg, EVSOCK_OPT_MAX_MESSAGE_SIZE, 64u << 20);
    if (s == EVSOCK_OK) s = evsock_config_set(cfg, EVSOCK_OPT_MAX_FRAME_SIZE, 64u << 20);
    if (s != EVSOCK_OK) {
        warn_status("config", s);
        return 1;
    }
    int lfd = listen_on(port);
    if (lfd < 0) {
        perror("echo_server: listen");
        evsock_config_free(cfg);
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    getsockname(lfd, (struct sockaddr *)&bound, &blen);
    printf("listening on ws://127.0.0.1:%u (evsock %s)\n", ntohs(bound.sin_port), evsock_version());
    fflush(stdout);

    for (;;) {
        uint64_t now = now_ms();
        if (stopping && !stop_deadline) {
            /* Going away: start the closing handshake everywhere. */
            stop_deadline = now + 1000;
            close(lfd);
            lfd = -1;
            for (size_t i = 0; i < nclients; i++) {
                evsock_conn_close(clients[i]->conn, 1001, "server shutting down", 20);
                clients[i]->dirty = 1;
            }
        }
        /* Run due timers, then drive whatever has output and drop finished
         * clients. Driving one client may make others dirty (chat), hence
         * the loop. */
        for (size_t i = 0; i < nclients; i++) {
            client_t *c = clients[i];
            if (c->has_deadline && c->deadline <= now) {
                evsock_conn_handle_timeout(c->conn, now);
                c->dirty = 1;
            }
        }
        int again = 1;
        while (again) {
            again = 0;
            for (size_t i = 0; i < nclients; i++) {
                client_t *c = clients[i];
                if (c->dead && !c->eof) {
                    /* The socket broke: the connection ends here. */
                    evsock_conn_handle_eof(c->conn, now);
                    c->eof = 1;
                    c->dirty = 1;
                }
                if (c->dirty) {
                    drive(c);
                    again = 1;
                }
            }
            for (size_t i = 0; i < nclients;) {
                if (client_done(clients[i]) || (stop_deadline && now >= stop_deadline)) {
                    client_free(clients[i]);
                    clients[i] = clients[--nclients];
                } else {
                    i++;
                }
            }
        }
        if (stopping && nclients == 0) break;

        /* Sleep until input, writability or the earliest deadline. */
        int64_t wait = -1;
        nfds_t n = 0;
        if (lfd >= 0) pfds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < nclients; i++) {
            client_t *c = clients[i];
            short ev = 0;
            if (c->pending_len < MAX_PENDING && !c->eof) ev |= POLLIN;
            if (c->pending_len) ev |= POLLOUT;
            pfds[n++] = (struct pollfd){.fd = c->fd, .events = ev};
            if (c->has_deadline) {
                int64_t w = c->deadline > now ? (int64_t)(c->deadline - now) : 0;
                if (wait < 0 || w < wait) wait = w;
            }
        }
        if (stop_deadline) {
            int64_t w = stop_deadline > now ? (int64_t)(stop_deadline - now) : 0;
            if (wait < 0 || w < wait) wait = w;
        }
        int r = poll(pfds, n, wait < 0 ? -1 : (int)(wait > 60000 ? 60000 : wait));
        if (r < 0 && errno != EINTR) {
            perror("echo_server: poll");
            break;
        }
        if (r <= 0) continue;
        now = now_ms();
        size_t k = 0;
        if (lfd >= 0) {
            if (pfds[k].revents & POLLIN) accept_clients(lfd);
            k++;
        }
        /* pfds[k..] line up with clients[0..] as they were before accepting. */
        for (size_t i = 0; k < n; i++, k++) {
            client_t *c = clients[i];
            short re = pfds[k].revents;
            if (re & POLLOUT) client_flush(c);
            if (!c->eof && (re & (POLLIN | POLLHUP | POLLERR))) {
                uint8_t *room;
                size_t room_len;
                evsock_conn_input_buffer(c->conn, &room, &room_len);
                /* An empty room: the connection is closed, nothing more to read. */
                ssize_t got = room_len ? recv(c->fd, room, room_len, 0) : 0;
                if (got > 0) {
                    evsock_conn_commit_input(c->conn, now, (size_t)got);
                } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    /* Nothing more will be read; keep writing what is queued. */
                    evsock_conn_handle_eof(c->conn, now);
                    c->eof = 1;
                    if (got < 0) c->dead = 1;
                }
                c->dirty = 1;
            }
        }
    }
    if (lfd >= 0) close(lfd);
    evsock_config_free(cfg);
    printf("echo_server: stopped\n");
    return 0;
}
