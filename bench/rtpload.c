/*
 * rtpload: a compiled SIP + RTP load generator for the sip-router benchmarks.
 *
 * It places N calls over UDP SIP (INVITE with an SDP offer of PCMU, ACK on
 * the 200, BYE at the end) and, in media mode, streams one 20 ms RTP frame
 * per call every 20 ms to the address and port of each SDP answer. The first
 * 8 bytes of every payload are a stamp (frame counter, call tag); an echo
 * path that returns payload bytes unchanged (PCMU in, PCMU out) lets each
 * echoed frame be matched to the moment it was sent.
 *
 * Media mode sets every call up first, then starts all streams together.
 * One thread, one epoll loop, a 1 ms timerfd; call i sends in millisecond
 * slot i % 20 of each 20 ms period, so the load is spread evenly.
 *
 * Output: progress lines on stderr and one JSON object on stdout.
 *
 * Build: cc -O2 -o rtpload rtpload.c   (Linux only: epoll, timerfd)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* RFC 3551 4.5.14: PCMU at 8000 Hz; 20 ms = 160 samples = 160 bytes. */
#define FRAME_BYTES 160
#define FRAME_NS 20000000LL
#define SLOTS 20                 /* 1 ms slots in a 20 ms period */
#define RTP_HEADER 12            /* RFC 3550 5.1 */
#define STAMP_BYTES 8            /* counter + call tag at the start of a payload */
#define STAMP_MAGIC 0x5EB00000u  /* tag = magic ^ call index */
#define RING 1024                /* frames remembered per call: 20.48 s */
#define MAX_FRAMES 4096          /* speech frames read from the frames file */
#define MAX_WATCH 4              /* processes whose CPU and RSS are sampled */
#define HIST_BUCKET_US 10        /* latency histogram resolution */
#define HIST_BUCKETS 100000      /* 10 us x 100000 = 1 s; beyond goes to the last */
#define SIP_BUF 65536            /* RFC 3261 18.1.1: a UDP message fits 64 KiB */
#define T1_NS 500000000LL        /* RFC 3261 17.1.1.1: T1 = 500 ms */
#define T2_NS 4000000000LL       /* RFC 3261 17.1.2.2: T2 = 4 s */
#define SOCK_BUF (4 << 20)       /* 4 MiB, as for SIPp's -buff_size */

enum state { IDLE, INVITING, ANSWERED, BYEING, DONE, FAILED };

struct call {
    int state;
    int status;               /* final status of the INVITE */
    int rtp_fd;
    uint16_t rtp_port;
    struct sockaddr_in remote;
    char to[512];             /* the To header of the 200, with its tag */
    char target[256];         /* Request-URI for ACK and BYE: the 200's Contact */
    int64_t invite_ns, answer_ns, retrans_at, retrans_gap;
    uint32_t frame, seq, ts;
    int streaming;
    int64_t sent_ns[RING];
    uint32_t sent_frame[RING];
    uint8_t echoed[RING];
    uint64_t echoes;
    int ended_by_peer;
};

struct watch {
    int pid;
    uint64_t ticks0, ticks1;
    long rss0, rss1;
};

static struct {
    const char *host;
    int port;
    const char *number;
    int calls;
    double rate;
    int media;
    double hold_s;
    double warmup_s, window_s, drain_s, setup_timeout_s, teardown_timeout_s;
    double late_ms;
    const char *frames_path;
    int nwatch;
    struct watch watch[MAX_WATCH];
} opt = {
    .host = "127.0.0.1", .port = 5060, .number = "+14155550100", .calls = 10,
    .rate = 100.0, .media = 1, .hold_s = 1.0, .warmup_s = 1.0, .window_s = 5.0,
    .drain_s = 1.0, .setup_timeout_s = 10.0, .teardown_timeout_s = 10.0,
    .late_ms = 40.0, .frames_path = NULL, .nwatch = 0,
};

static struct call *calls;
/* --latency-log: one line per echo, "call frame sent_ns latency_ns"; without
 * media, one per answered call, "call setup invite_ns setup_ns". */
static FILE *dump;
static int sip_fd, sink_fd, timer_fd, epoll_fd;
static uint16_t sip_port, sink_port;
static struct sockaddr_in sip_peer;
static uint8_t frames[MAX_FRAMES][FRAME_BYTES];
static int nframes;
static int pid;
static uint64_t branch_counter;
static uint64_t hist[HIST_BUCKETS];

static struct {
    uint64_t sent, echoed, late, duplicates, stray, filler, sink_packets;
    uint64_t sip_in, sip_out, retrans, send_errors, unmatched_sip;
    int64_t max_latency_ns;
} count;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rtpload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void progress(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
}

/* ---- command line ---------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: rtpload --target HOST:PORT [--number E164] [--calls N] [--rate CPS]\n"
            "               [--media 0|1] [--frames FILE] [--hold S] [--warmup S]\n"
            "               [--window S] [--drain S] [--late-ms MS] [--watch PID]...\n"
            "               [--latency-log FILE]\n"
            "               [--setup-timeout S] [--teardown-timeout S]\n");
    exit(2);
}

static void parse_target(const char *text) {
    static char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) usage();
    memcpy(host, text, colon - text);
    host[colon - text] = 0;
    opt.host = host;
    opt.port = atoi(colon + 1);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(a, "--target")) parse_target(v);
        else if (!strcmp(a, "--number")) opt.number = v;
        else if (!strcmp(a, "--calls")) opt.calls = atoi(v);
        else if (!strcmp(a, "--rate")) opt.rate = atof(v);
        else if (!strcmp(a, "--media")) opt.media = atoi(v);
        else if (!strcmp(a, "--frames")) opt.frames_path = v;
        else if (!strcmp(a, "--hold")) opt.hold_s = atof(v);
        else if (!strcmp(a, "--warmup")) opt.warmup_s = atof(v);
        else if (!strcmp(a, "--window")) opt.window_s = atof(v);
        else if (!strcmp(a, "--drain")) opt.drain_s = atof(v);
        else if (!strcmp(a, "--late-ms")) opt.late_ms = atof(v);
        else if (!strcmp(a, "--latency-log")) {
            if (!v || !(dump = fopen(v, "w"))) die("--latency-log: cannot write %s", v ? v : "");
        }
        else if (!strcmp(a, "--setup-timeout")) opt.setup_timeout_s = atof(v);
        else if (!strcmp(a, "--teardown-timeout")) opt.teardown_timeout_s = atof(v);
        else if (!strcmp(a, "--watch")) {
            if (opt.nwatch == MAX_WATCH) die("at most %d --watch", MAX_WATCH);
            opt.watch[opt.nwatch++].pid = atoi(v);
        } else usage();
    }
    if (opt.calls < 1 || opt.rate <= 0) usage();
}

/* ---- sockets ------------------------------------------------------------ */

static int udp_socket(uint16_t *port, int buffer) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    if (buffer) {
        /* Root may exceed rmem_max with the FORCE variants; others get the cap. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) < 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) < 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    }
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind: %s", strerror(errno));
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void watch_fd(int fd, uint32_t tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

/* epoll tags: calls are 0..N-1, the rest sit above them. */
#define TAG_SIP 0xFFFFFFF0u
#define TAG_TIMER 0xFFFFFFF1u
#define TAG_SINK 0xFFFFFFF2u

static void raise_fd_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* ---- frames ------------------------------------------------------------- */

static void load_frames(void) {
    if (!opt.frames_path) {
        /* Without speech, a quiet ramp (never the 0xFF silence byte). */
        nframes = 1;
        for (int i = 0; i < FRAME_BYTES; i++) frames[0][i] = (uint8_t)(0x80 + i % 64);
        return;
    }
    FILE *f = fopen(opt.frames_path, "rb");
    if (!f) die("%s: %s", opt.frames_path, strerror(errno));
    while (nframes < MAX_FRAMES && fread(frames[nframes], FRAME_BYTES, 1, f) == 1) nframes++;
    fclose(f);
    if (!nframes) die("%s: no 160-byte frames", opt.frames_path);
}

/* ---- SIP: building ------------------------------------------------------ */

static void send_sip(const char *msg, int len) {
    if (sendto(sip_fd, msg, len, 0, (struct sockaddr *)&sip_peer, sizeof sip_peer) < 0)
        count.send_errors++;
    else
        count.sip_out++;
}

static int branch(char *out, size_t size) {
    return snprintf(out, size, "z9hG4bK-rl%d-%llu", pid, (unsigned long long)++branch_counter);
}

static int sdp_offer(char *out, size_t size, int i) {
    uint16_t port = opt.media ? calls[i].rtp_port : sink_port;
    return snprintf(out, size,
                    "v=0\r\no=- %d 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    "t=0 0\r\nm=audio %u RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                    "a=ptime:20\r\na=sendrecv\r\n",
                    i, port);
}

static char (*invite_branches)[48];

static void send_invite(int i) {
    char body[512], msg[2048], br[48];
    int blen = sdp_offer(body, sizeof body, i);
    if (!invite_branches[i][0]) {
        branch(br, sizeof br);
        memcpy(invite_branches[i], br, sizeof br);
    }
    int len = snprintf(msg, sizeof msg,
                       "INVITE sip:%s@%s:%d SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s;rport\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:+14155550111@127.0.0.1:%u>;tag=rl%d-%d\r\n"
                       "To: <sip:%s@%s:%d>\r\n"
                       "Call-ID: rl-%d-%d@127.0.0.1\r\n"
                       "CSeq: 1 INVITE\r\n"
                       "Contact: <sip:+14155550111@127.0.0.1:%u>\r\n"
                       "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
                       "User-Agent: rtpload\r\n"
                       "Content-Type: application/sdp\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       opt.number, opt.host, opt.port, sip_port, invite_branches[i],
                       sip_port, pid, i, opt.number, opt.host, opt.port, pid, i, sip_port,
                       blen, body);
    send_sip(msg, len);
}

/* ACK and BYE: in-dialog requests to the remote target (RFC 3261 12.2.1.1). */
static void send_in_dialog(int i, const char *method, int cseq, const char *via_branch) {
    char msg[2048], br[48];
    struct call *c = &calls[i];
    if (via_branch) snprintf(br, sizeof br, "%s", via_branch);
    else branch(br, sizeof br);
    int len = snprintf(msg, sizeof msg,
                       "%s %s SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s;rport\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:+14155550111@127.0.0.1:%u>;tag=rl%d-%d\r\n"
                       "To: %s\r\n"
                       "Call-ID: rl-%d-%d@127.0.0.1\r\n"
                       "CSeq: %d %s\r\n"
                       "Content-Length: 0\r\n\r\n",
                       method, c->target, sip_port, br, sip_port, pid, i, c->to, pid, i,
                       cseq, method);
    send_sip(msg, len);
}

static char (*bye_branches)[48];

static void send_bye(int i) {
    if (!bye_branches[i][0]) branch(bye_branches[i], sizeof bye_branches[i]);
    send_in_dialog(i, "BYE", 2, bye_branches[i]);
}

/* ---- SIP: parsing --------------------------------------------------------- */

/* Find header `name` (or its compact form) in the head; copy its value. */
static int header(const char *head, const char *name, char compact, char *out, size_t size) {
    size_t nlen = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2]) {
        const char *start = line + 2;
        const char *end = strstr(start, "\r\n");
        if (!end) break;
        const char *colon = memchr(start, ':', end - start);
        if (colon) {
            size_t hlen = colon - start;
            while (hlen && (start[hlen - 1] == ' ' || start[hlen - 1] == '\t')) hlen--;
            int match = (hlen == nlen && !strncasecmp(start, name, nlen)) ||
                        (compact && hlen == 1 && (start[0] | 0x20) == compact);
            if (match) {
                const char *v = colon + 1;
                while (v < end && (*v == ' ' || *v == '\t')) v++;
                size_t vlen = end - v;
                if (vlen >= size) vlen = size - 1;
                memcpy(out, v, vlen);
                out[vlen] = 0;
                return 1;
            }
        }
        line = end;
    }
    return 0;
}

/* The call index from our Call-ID "rl-<pid>-<index>@127.0.0.1", or -1. */
static int call_index(const char *head) {
    char value[256];
    int p, i;
    if (!header(head, "Call-ID", 'i', value, sizeof value)) return -1;
    if (sscanf(value, "rl-%d-%d@", &p, &i) != 2 || p != pid || i < 0 || i >= opt.calls) return -1;
    return i;
}

static void remote_target(struct call *c, const char *head) {
    char contact[512];
    snprintf(c->target, sizeof c->target, "sip:%s@%s:%d", opt.number, opt.host, opt.port);
    if (!header(head, "Contact", 'm', contact, sizeof contact)) return;
    char *lt = strchr(contact, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt) {
        *gt = 0;
        snprintf(c->target, sizeof c->target, "%s", lt + 1);
    }
}

/* RFC 4566 5.7 and 5.14: c= gives the address, m=audio the port. */
static int sdp_answer(struct call *c, const char *body) {
    char addr[64] = "";
    int port = -1;
    const char *cl = strstr(body, "c=IN IP4 ");
    const char *ml = strstr(body, "m=audio ");
    if (cl) sscanf(cl + 9, "%63[0-9.]", addr);
    if (ml) sscanf(ml + 8, "%d", &port);
    if (!addr[0] || port <= 0 || port > 65535) return 0;
    memset(&c->remote, 0, sizeof c->remote);
    c->remote.sin_family = AF_INET;
    c->remote.sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, addr, &c->remote.sin_addr) == 1;
}

static void answered(int i, const char *head, const char *body) {
    struct call *c = &calls[i];
    header(head, "To", 't', c->to, sizeof c->to);
    remote_target(c, head);
    send_in_dialog(i, "ACK", 1, NULL);
    if (c->state != INVITING) {
        if (c->state == FAILED) send_bye(i); /* a 200 after we gave up: hang up */
        return;
    }
    c->answer_ns = now_ns();
    c->status = 200;
    if (opt.media && !sdp_answer(c, body)) {
        c->state = FAILED;
        c->status = 606;
        send_bye(i);
        return;
    }
    c->state = ANSWERED;
    c->retrans_at = 0;
}

static void rejected(int i, int status, const char *head) {
    struct call *c = &calls[i];
    /* RFC 3261 17.1.1.3: the ACK for a non-2xx has the INVITE's branch. */
    header(head, "To", 't', c->to, sizeof c->to);
    snprintf(c->target, sizeof c->target, "sip:%s@%s:%d", opt.number, opt.host, opt.port);
    send_in_dialog(i, "ACK", 1, invite_branches[i]);
    if (c->state == INVITING) {
        c->state = FAILED;
        c->status = status;
    }
}

static void on_response(const char *head, const char *body, int status) {
    char cseq[64];
    int i = call_index(head);
    if (i < 0 || !header(head, "CSeq", 0, cseq, sizeof cseq)) {
        count.unmatched_sip++;
        return;
    }
    struct call *c = &calls[i];
    if (strstr(cseq, "INVITE")) {
        if (status >= 200 && status < 300) answered(i, head, body);
        else if (status >= 300) rejected(i, status, head);
        else if (c->state == INVITING) c->retrans_at = 0; /* RFC 3261 17.1.1.2: stop on 1xx */
    } else if (strstr(cseq, "BYE") && status >= 200 && c->state == BYEING) {
        c->state = DONE;
    }
}

/* A request from the router (a BYE when it hangs up): answer 200. */
static void on_request(const char *head) {
    char via[1024], from[512], to[512], callid[256], cseq[64], msg[4096];
    if (!header(head, "Via", 'v', via, sizeof via) || !header(head, "From", 'f', from, sizeof from) ||
        !header(head, "To", 't', to, sizeof to) ||
        !header(head, "Call-ID", 'i', callid, sizeof callid) ||
        !header(head, "CSeq", 0, cseq, sizeof cseq))
        return;
    if (!strncmp(head, "ACK ", 4)) return;
    int len = snprintf(msg, sizeof msg,
                       "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\n"
                       "CSeq: %s\r\nContent-Length: 0\r\n\r\n",
                       via, from, to, callid, cseq);
    send_sip(msg, len);
    int i = call_index(head);
    if (i >= 0 && !strncmp(head, "BYE ", 4) && calls[i].state != DONE) {
        calls[i].ended_by_peer = 1;
        calls[i].streaming = 0;
        calls[i].state = DONE;
    }
}

static void read_sip(void) {
    static char buf[SIP_BUF + 1];
    for (;;) {
        ssize_t n = recv(sip_fd, buf, SIP_BUF, 0);
        if (n < 0) return;
        buf[n] = 0;
        count.sip_in++;
        char *split = strstr(buf, "\r\n\r\n");
        if (!split) continue;
        *split = 0;
        const char *body = split + 4;
        int status;
        if (sscanf(buf, "SIP/2.0 %d", &status) == 1) on_response(buf, body, status);
        else on_request(buf);
    }
}

/* ---- RTP ------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void send_frame(int i, int64_t window_start, int64_t window_end) {
    struct call *c = &calls[i];
    uint8_t pkt[RTP_HEADER + FRAME_BYTES];
    pkt[0] = 0x80;                               /* RFC 3550 5.1: V=2 */
    pkt[1] = (c->frame == 0 ? 0x80 : 0) | 0;     /* marker on the first, PT 0 */
    pkt[2] = c->seq >> 8; pkt[3] = c->seq;
    put32(pkt + 4, c->ts);
    put32(pkt + 8, 0x10000000u + (uint32_t)i);  /* SSRC */
    memcpy(pkt + RTP_HEADER, frames[c->frame % nframes], FRAME_BYTES);
    put32(pkt + RTP_HEADER, c->frame);
    put32(pkt + RTP_HEADER + 4, STAMP_MAGIC ^ (uint32_t)i);
    int64_t t = now_ns();
    if (sendto(c->rtp_fd, pkt, sizeof pkt, 0, (struct sockaddr *)&c->remote, sizeof c->remote) < 0) {
        count.send_errors++;
    } else if (t >= window_start && t < window_end) {
        count.sent++;
    }
    int slot = c->frame % RING;
    c->sent_ns[slot] = t;
    c->sent_frame[slot] = c->frame;
    c->echoed[slot] = 0;
    c->frame++;
    c->seq = (c->seq + 1) & 0xFFFF;
    c->ts += FRAME_BYTES;
}

static void read_rtp(int i, int64_t window_start, int64_t window_end) {
    struct call *c = &calls[i];
    uint8_t buf[2048];
    int64_t late_ns = (int64_t)(opt.late_ms * 1e6);
    for (;;) {
        ssize_t n = recv(c->rtp_fd, buf, sizeof buf, 0);
        if (n < 0) return;
        int64_t t = now_ns();
        if (n < RTP_HEADER + STAMP_BYTES || (buf[0] >> 6) != 2) { count.stray++; continue; }
        size_t off = RTP_HEADER + 4 * (buf[0] & 0x0F);           /* CSRC list */
        if ((buf[0] & 0x10) && (size_t)n >= off + 4)               /* extension */
            off += 4 + 4 * ((buf[off + 2] << 8) | buf[off + 3]);
        if ((size_t)n < off + STAMP_BYTES) { count.stray++; continue; }
        uint32_t frame = get32(buf + off), tag = get32(buf + off + 4);
        if (tag != (STAMP_MAGIC ^ (uint32_t)i)) { count.filler++; continue; }
        int slot = frame % RING;
        if (c->sent_frame[slot] != frame || frame >= c->frame) { count.stray++; continue; }
        if (c->echoed[slot]) { count.duplicates++; continue; }
        c->echoed[slot] = 1;
        c->echoes++;
        int64_t sent = c->sent_ns[slot];
        if (dump) fprintf(dump, "%d %u %lld %lld\n", i, frame, (long long)sent, (long long)(t - sent));
        if (sent < window_start || sent >= window_end) continue;
        int64_t latency = t - sent;
        count.echoed++;
        if (latency > late_ns) count.late++;
        if (latency > count.max_latency_ns) count.max_latency_ns = latency;
        int64_t bucket = latency / (HIST_BUCKET_US * 1000);
        hist[bucket < HIST_BUCKETS ? bucket : HIST_BUCKETS - 1]++;
    }
}

static void drain_sink(void) {
    uint8_t buf[2048];
    while (recv(sink_fd, buf, sizeof buf, 0) >= 0) count.sink_packets++;
}

/* ---- /proc sampling ------------------------------------------------------- */

static uint64_t cpu_ticks(int p) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", p);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *rp = strrchr(buf, ')');  /* the command name may hold spaces */
    if (!rp) return 0;
    unsigned long long utime = 0, stime = 0;
    /* Fields after ")": 3 state ... 14 utime 15 stime (proc(5)). */
    sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
    return utime + stime;
}

static long rss_kib(int p) {
    char path[64], line[256];
    long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/status", p);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* Busy and total jiffies of each core from /proc/stat (proc(5)), for the
 * share of each core that was busy in the window, whoever used it. */
#define MAX_CORES 64
static uint64_t core_busy[2][MAX_CORES], core_total[2][MAX_CORES];
static int ncores;

static void sample_cores(int end) {
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    int n = 0;
    while (fgets(line, sizeof line, f) && n < MAX_CORES) {
        unsigned long long v[10] = {0};
        int cpu;
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9') continue;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9)
            continue;
        /* user nice system idle iowait irq softirq steal */
        core_busy[end][n] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        core_total[end][n] = core_busy[end][n] + v[3] + v[4];
        n++;
    }
    fclose(f);
    ncores = n;
}

static void sample_watched(int end) {
    sample_cores(end);
    for (int w = 0; w < opt.nwatch; w++) {
        struct watch *x = &opt.watch[w];
        if (end) { x->ticks1 = cpu_ticks(x->pid); x->rss1 = rss_kib(x->pid); }
        else { x->ticks0 = cpu_ticks(x->pid); x->rss0 = rss_kib(x->pid); }
    }
}

/* ---- the loop ------------------------------------------------------------- */

static int64_t ns(double seconds) { return (int64_t)(seconds * 1e9); }

static void retransmit(int i, int64_t t) {
    struct call *c = &calls[i];
    if (!c->retrans_at || t < c->retrans_at) return;
    /* RFC 3261 17.1.1.2 and 17.1.2.2: doubling from T1, capped at T2 for BYE. */
    c->retrans_gap = c->retrans_gap * 2;
    if (c->state == BYEING && c->retrans_gap > T2_NS) c->retrans_gap = T2_NS;
    c->retrans_at = t + c->retrans_gap;
    count.retrans++;
    if (c->state == INVITING) send_invite(i);
    else if (c->state == BYEING) send_bye(i);
}

static void start_call(int i, int64_t t) {
    struct call *c = &calls[i];
    c->state = INVITING;
    c->invite_ns = t;
    c->retrans_gap = T1_NS;
    c->retrans_at = t + T1_NS;
    send_invite(i);
}

static void hang_up(int i, int64_t t) {
    struct call *c = &calls[i];
    c->streaming = 0;
    if (c->state != ANSWERED) return;
    c->state = BYEING;
    c->retrans_gap = T1_NS;
    c->retrans_at = t + T1_NS;
    send_bye(i);
}

static int count_state(int s) {
    int n = 0;
    for (int i = 0; i < opt.calls; i++) n += calls[i].state == s;
    return n;
}

static void tick_slot(int slot, int64_t ws, int64_t we) {
    for (int i = slot; i < opt.calls; i += SLOTS)
        if (calls[i].streaming) send_frame(i, ws, we);
}

static void poll_once(int timeout_ms, int64_t ws, int64_t we, uint64_t *ms_ticks) {
    static struct epoll_event ev[1024];
    int n = epoll_wait(epoll_fd, ev, 1024, timeout_ms);
    for (int k = 0; k < n; k++) {
        uint32_t tag = ev[k].data.u32;
        if (tag == TAG_SIP) read_sip();
        else if (tag == TAG_SINK) drain_sink();
        else if (tag == TAG_TIMER) {
            uint64_t expirations = 0;
            if (read(timer_fd, &expirations, sizeof expirations) == sizeof expirations)
                *ms_ticks += expirations;
        } else if (tag < (uint32_t)opt.calls) read_rtp((int)tag, ws, we);
    }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void percentiles_setup(double *p50, double *p90, double *p99, double *pmax, int *n) {
    double *v = malloc(sizeof(double) * opt.calls);
    int k = 0;
    for (int i = 0; i < opt.calls; i++) {
        if (!calls[i].answer_ns) continue;
        v[k++] = (calls[i].answer_ns - calls[i].invite_ns) / 1e3;
        if (dump && !opt.media)
            fprintf(dump, "%d setup %lld %lld\n", i, (long long)calls[i].invite_ns,
                    (long long)(calls[i].answer_ns - calls[i].invite_ns));
    }
    qsort(v, k, sizeof *v, compare_doubles);
    *n = k;
    *p50 = k ? v[(int)(0.50 * (k - 1))] : 0;
    *p90 = k ? v[(int)(0.90 * (k - 1))] : 0;
    *p99 = k ? v[(int)(0.99 * (k - 1))] : 0;
    *pmax = k ? v[k - 1] : 0;
    free(v);
}

static double hist_percentile(double q) {
    uint64_t total = 0, seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) total += hist[b];
    if (!total) return 0;
    uint64_t rank = (uint64_t)(q * (total - 1));
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen > rank) return (b + 0.5) * HIST_BUCKET_US;
    }
    return 0;
}

static void report(double elapsed_s, double window_s) {
    double p50, p90, p99, pmax;
    int n;
    percentiles_setup(&p50, &p90, &p99, &pmax, &n);
    int silent = 0, by_peer = 0, failed = 0;
    for (int i = 0; i < opt.calls; i++) {
        if (calls[i].answer_ns && opt.media && !calls[i].echoes) silent++;
        by_peer += calls[i].ended_by_peer;
        failed += calls[i].status != 200;
    }
    long tck = sysconf(_SC_CLK_TCK);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double own_cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                     ru.ru_stime.tv_usec / 1e6;
    printf("{\"calls\": %d, \"answered\": %d, \"failed\": %d, \"completed\": %d, "
           "\"ended_by_peer\": %d, \"media\": %d, \"elapsed_s\": %.3f, \"window_s\": %.3f, "
           "\"setup_us\": {\"n\": %d, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
           "\"frames\": {\"sent\": %llu, \"echoed\": %llu, \"lost\": %llu, \"late\": %llu, "
           "\"duplicates\": %llu, \"filler\": %llu, \"stray\": %llu, \"late_ms\": %.1f, "
           "\"calls_without_echo\": %d}, "
           "\"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
           "\"max\": %.1f}, "
           "\"sip\": {\"in\": %llu, \"out\": %llu, \"retransmissions\": %llu, "
           "\"unmatched\": %llu}, \"send_errors\": %llu, \"sink_packets\": %llu, "
           "\"generator_cpu_s\": %.3f, \"clock_ticks_per_s\": %ld, \"watched\": [",
           opt.calls, n, failed, count_state(DONE), by_peer, opt.media, elapsed_s, window_s,
           n, p50, p90, p99, pmax, (unsigned long long)count.sent,
           (unsigned long long)count.echoed, (unsigned long long)(count.sent - count.echoed),
           (unsigned long long)count.late, (unsigned long long)count.duplicates,
           (unsigned long long)count.filler, (unsigned long long)count.stray, opt.late_ms,
           silent, hist_percentile(0.50), hist_percentile(0.90), hist_percentile(0.99),
           hist_percentile(0.999), count.max_latency_ns / 1e3,
           (unsigned long long)count.sip_in, (unsigned long long)count.sip_out,
           (unsigned long long)count.retrans, (unsigned long long)count.unmatched_sip,
           (unsigned long long)count.send_errors, (unsigned long long)count.sink_packets,
           own_cpu, tck);
    for (int w = 0; w < opt.nwatch; w++) {
        struct watch *x = &opt.watch[w];
        printf("%s{\"pid\": %d, \"cpu_s\": %.3f, \"rss_start_kib\": %ld, \"rss_end_kib\": %ld}",
               w ? ", " : "", x->pid, (double)(x->ticks1 - x->ticks0) / tck, x->rss0, x->rss1);
    }
    printf("], \"core_busy\": [");
    for (int k = 0; k < ncores; k++) {
        uint64_t total = core_total[1][k] - core_total[0][k];
        double busy = total ? (double)(core_busy[1][k] - core_busy[0][k]) / total : 0;
        printf("%s%.3f", k ? ", " : "", busy);
    }
    printf("], \"statuses\": {");
    int first = 1;
    for (int s = 300; s < 700; s++) {
        int k = 0;
        for (int i = 0; i < opt.calls; i++) k += calls[i].status == s;
        if (k) { printf("%s\"%d\": %d", first ? "" : ", ", s, k); first = 0; }
    }
    int unanswered = 0;
    for (int i = 0; i < opt.calls; i++) unanswered += calls[i].status == 0;
    if (unanswered) printf("%s\"timeout\": %d", first ? "" : ", ", unanswered);
    printf("}}\n");
    fflush(stdout);
}

/* Calls that are still placing, ringing, answered or hanging up. */
static int open_calls(int from, int to) {
    int n = 0;
    for (int i = from; i < to; i++) {
        int s = calls[i].state;
        n += s == IDLE || s == INVITING || s == ANSWERED || s == BYEING;
    }
    return n;
}

/* Place the calls that are due and retransmit what is due; return calls placed. */
static int place_and_retransmit(int64_t t0, int placed, int *first_open) {
    int64_t t = now_ns();
    while (placed < opt.calls && t >= t0 + (int64_t)(placed * 1e9 / opt.rate))
        start_call(placed++, t);
    while (*first_open < placed && (calls[*first_open].state == DONE ||
                                     calls[*first_open].state == FAILED))
        ++*first_open;
    for (int i = *first_open; i < placed; i++) retransmit(i, t);
    return placed;
}

static void give_up_unanswered(int placed) {
    for (int i = 0; i < placed; i++)
        if (calls[i].state == INVITING) { calls[i].state = FAILED; calls[i].retrans_at = 0; }
}

/* Media mode: all calls up, then all streams on, warm-up, measured window,
 * drain, BYE at the rate. */
static void run_media(int64_t t0) {
    int64_t far = INT64_MAX, ws = far, we = far;
    int placed = 0, first_open = 0;
    uint64_t ms_ticks = 0, ms_done = 0;
    int64_t setup_deadline = t0 + ns(opt.calls / opt.rate + opt.setup_timeout_s);

    /* 1. Set-up, without media from our side yet. */
    for (;;) {
        placed = place_and_retransmit(t0, placed, &first_open);
        while (ms_done < ms_ticks) tick_slot((int)(ms_done++ % SLOTS), ws, we);
        int pending = count_state(INVITING) + (placed < opt.calls);
        if (!pending) break;
        if (now_ns() > setup_deadline) { give_up_unanswered(placed); break; }
        poll_once(1, ws, we, &ms_ticks);
    }
    progress("rtpload: set-up done: %d answered, %d failed", count_state(ANSWERED),
             count_state(FAILED));
    /* Every stream starts now, each in its own 1 ms slot: the window measures
     * the steady state of N calls, not the router catching up on a set-up burst. */
    for (int i = 0; i < opt.calls; i++) calls[i].streaming = calls[i].state == ANSWERED;

    /* 2. Warm-up, then the window in which frames are counted, then drain. */
    ws = now_ns() + ns(opt.warmup_s);
    we = ws + ns(opt.window_s);
    int64_t drained = we + ns(opt.drain_s);
    int phase = 0;
    for (int64_t t = now_ns(); t < drained; t = now_ns()) {
        if (phase == 0 && t >= ws) { sample_watched(0); phase = 1; progress("rtpload: window open"); }
        if (phase == 1 && t >= we) { sample_watched(1); phase = 2; progress("rtpload: window closed"); }
        place_and_retransmit(t0, placed, &first_open);
        while (ms_done < ms_ticks) tick_slot((int)(ms_done++ % SLOTS), ws, we);
        poll_once(1, ws, we, &ms_ticks);
    }

    /* 3. Tear-down: BYE at the set-up rate, wait for the 200s. */
    int64_t bye_at = now_ns(), deadline = bye_at + ns(opt.calls / opt.rate + opt.teardown_timeout_s);
    int byes = 0;
    for (int64_t t = bye_at; t < deadline; t = now_ns()) {
        while (byes < opt.calls && t >= bye_at + (int64_t)(byes * 1e9 / opt.rate)) hang_up(byes++, t);
        place_and_retransmit(t0, placed, &first_open);
        while (ms_done < ms_ticks) tick_slot((int)(ms_done++ % SLOTS), ws, we);
        if (byes == opt.calls && !open_calls(0, opt.calls)) break;
        poll_once(1, ws, we, &ms_ticks);
    }
}

/* Signalling mode: each call is hung up --hold seconds after its own answer. */
static void run_signalling(int64_t t0) {
    int64_t hold = ns(opt.hold_s), far = INT64_MAX;
    int placed = 0, first_open = 0;
    uint64_t ms_ticks = 0;
    int64_t deadline = t0 + ns(opt.calls / opt.rate + opt.hold_s + opt.setup_timeout_s +
                               opt.teardown_timeout_s);
    int64_t give_up_at = t0 + ns(opt.calls / opt.rate + opt.setup_timeout_s);
    for (int64_t t = t0; t < deadline; t = now_ns()) {
        placed = place_and_retransmit(t0, placed, &first_open);
        for (int i = first_open; i < placed; i++)
            if (calls[i].state == ANSWERED && t >= calls[i].answer_ns + hold) hang_up(i, t);
        if (t > give_up_at) give_up_unanswered(placed);
        if (placed == opt.calls && !open_calls(first_open, placed)) break;
        poll_once(1, far, far, &ms_ticks);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    raise_fd_limit();
    load_frames();
    pid = getpid();
    calls = calloc(opt.calls, sizeof *calls);
    invite_branches = calloc(opt.calls, sizeof *invite_branches);
    bye_branches = calloc(opt.calls, sizeof *bye_branches);
    if (!calls || !invite_branches || !bye_branches) die("out of memory");

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    sip_fd = udp_socket(&sip_port, SOCK_BUF);
    sink_fd = udp_socket(&sink_port, SOCK_BUF);
    watch_fd(sip_fd, TAG_SIP);
    watch_fd(sink_fd, TAG_SINK);
    memset(&sip_peer, 0, sizeof sip_peer);
    sip_peer.sin_family = AF_INET;
    sip_peer.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &sip_peer.sin_addr) != 1) die("bad host %s", opt.host);
    if (opt.media)
        for (int i = 0; i < opt.calls; i++) {
            calls[i].rtp_fd = udp_socket(&calls[i].rtp_port, 0);
            watch_fd(calls[i].rtp_fd, (uint32_t)i);
        }

    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    timerfd_settime(timer_fd, 0, &its, NULL);
    watch_fd(timer_fd, TAG_TIMER);

    int64_t t0 = now_ns();
    progress("rtpload: placing %d calls at %.0f/s to %s:%d (media %s)", opt.calls, opt.rate,
             opt.host, opt.port, opt.media ? "on" : "off");
    if (opt.media) run_media(t0);
    else run_signalling(t0);
    double elapsed = (now_ns() - t0) / 1e9;
    report(elapsed, opt.media ? opt.window_s : 0.0);
    return 0;
}
