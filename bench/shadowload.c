/*
 * shadowload: AWS IoT shadow updates over MQTT 3.1.1, as fast as the broker answers them.
 *
 * One thread, epoll, non-blocking sockets, hand-encoded MQTT (it shares nothing with Drover).
 * Each of D devices connects as client id PREFIX<i>, subscribes (QoS 0) to
 *   $aws/things/PREFIX<i>/shadow/update/accepted and .../rejected
 * and keeps W updates in flight: PUBLISH QoS 1 to $aws/things/PREFIX<i>/shadow/update with
 *   {"state":{"reported":{"n":K,"device":"PREFIX<i>"}},"clientToken":"K"}
 * An update is done when its /accepted or /rejected reply (matched by clientToken) arrives;
 * that frees its slot. Rates and latencies count the replies in the measured window (after
 * the warm-up); every phase has a deadline, so the program always ends by itself.
 *
 *   shadowload [--port 1883] [--devices 16] [--window 16] [--seconds 10] [--warmup 1]
 *              [--prefix bench_] [--broker-pid PID]
 *
 * Last line: RESULT accepted=... rejected=... rate=... p50_us=... p99_us=... max_us=...
 *            client_cpu=... broker_cpu=...  (CPU in % of one core over the measured window)
 *
 * Build: gcc -O2 -o shadowload shadowload.c
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

#define MAX_DEVICES 4096
#define MAX_WINDOW 256
#define INBUF (256 * 1024)
#define MAX_SAMPLES (8 * 1024 * 1024)

enum phase { CONNECTING, SUBSCRIBING, RUNNING };

struct device {
    int fd;
    enum phase phase;
    char name[64];
    char topic[160];
    uint16_t next_id;
    long next_token;
    int in_flight;
    /* send times of tokens in flight, by token % MAX_WINDOW */
    uint64_t sent_at[MAX_WINDOW];
    unsigned char in[INBUF];
    size_t in_len;
};

static struct device *devices;
static int n_devices = 16, window = 16, port = 1883;
static double seconds = 10, warmup = 1;
static const char *prefix = "bench_";
static int broker_pid = 0;
static uint64_t measure_from, measure_to;
static long accepted, rejected, bad;
static uint32_t *samples;
static long n_samples;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* Writes all of buf (the socket is non-blocking; a short write waits for room). */
static void send_all(int fd, const unsigned char *buf, size_t len) {
    uint64_t deadline = now_ns() + 10000000000ull;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (now_ns() > deadline) {
                fprintf(stderr, "write timed out\n");
                exit(2);
            }
            usleep(50);
        } else {
            die("write");
        }
    }
}

static size_t put_length(unsigned char *out, size_t length) {
    size_t n = 0;
    do {
        unsigned char byte = length % 128;
        length /= 128;
        if (length > 0) byte |= 0x80;
        out[n++] = byte;
    } while (length > 0);
    return n;
}

static size_t put_string(unsigned char *out, const char *text) {
    size_t len = strlen(text);
    out[0] = (unsigned char)(len >> 8);
    out[1] = (unsigned char)len;
    memcpy(out + 2, text, len);
    return len + 2;
}

/* Sends a packet of the given first byte whose variable header and payload are body[0..n). */
static void send_packet(int fd, unsigned char first, const unsigned char *body, size_t n) {
    unsigned char packet[640];
    size_t p = 0;
    packet[p++] = first;
    p += put_length(packet + p, n);
    memcpy(packet + p, body, n);
    send_all(fd, packet, p + n);
}

static void send_connect(struct device *d) {
    unsigned char body[128];
    size_t n = 0;
    n += put_string(body + n, "MQTT");
    body[n++] = 4;    /* 3.1.1 */
    body[n++] = 0x02; /* clean session */
    body[n++] = 0;
    body[n++] = 60; /* keep alive */
    n += put_string(body + n, d->name);
    send_packet(d->fd, 0x10, body, n);
}

static void send_subscribe(struct device *d) {
    unsigned char body[512];
    char topic[200];
    size_t n = 0;
    body[n++] = 0;
    body[n++] = 1; /* packet id 1 */
    snprintf(topic, sizeof topic, "%s/accepted", d->topic);
    n += put_string(body + n, topic);
    body[n++] = 0;
    snprintf(topic, sizeof topic, "%s/rejected", d->topic);
    n += put_string(body + n, topic);
    body[n++] = 0;
    send_packet(d->fd, 0x82, body, n);
}

static void send_update(struct device *d) {
    unsigned char packet[512];
    char payload[200];
    long token = d->next_token++;
    int len = snprintf(payload, sizeof payload, "{\"state\":{\"reported\":{\"n\":%ld,\"device\":\"%s\"}},\"clientToken\":\"%ld\"}",
                       token, d->name, token);
    size_t topic_len = strlen(d->topic);
    size_t remaining = 2 + topic_len + 2 + (size_t)len;
    size_t p = 0;
    packet[p++] = 0x32; /* PUBLISH QoS 1 */
    p += put_length(packet + p, remaining);
    p += put_string(packet + p, d->topic);
    if (++d->next_id == 0) d->next_id = 1;
    packet[p++] = (unsigned char)(d->next_id >> 8);
    packet[p++] = (unsigned char)d->next_id;
    memcpy(packet + p, payload, (size_t)len);
    p += (size_t)len;
    d->sent_at[token % MAX_WINDOW] = now_ns();
    d->in_flight++;
    send_all(d->fd, packet, p);
}

/* The clientToken of a reply document, or -1. */
static long token_of(const unsigned char *payload, size_t len) {
    static const char key[] = "\"clientToken\":\"";
    size_t k = sizeof key - 1;
    for (size_t i = 0; i + k < len; i++) {
        if (memcmp(payload + i, key, k) == 0) {
            long value = 0;
            size_t j = i + k;
            if (j >= len || payload[j] < '0' || payload[j] > '9') return -1;
            while (j < len && payload[j] >= '0' && payload[j] <= '9') value = value * 10 + (payload[j++] - '0');
            return value;
        }
    }
    return -1;
}

static void on_reply(struct device *d, int accepted_reply, const unsigned char *payload, size_t len) {
    long token = token_of(payload, len);
    if (token < 0 || token >= d->next_token || d->in_flight <= 0) {
        bad++;
        return;
    }
    uint64_t t = now_ns();
    d->in_flight--;
    if (t >= measure_from && t < measure_to) {
        if (accepted_reply) accepted++;
        else rejected++;
        if (n_samples < MAX_SAMPLES) samples[n_samples++] = (uint32_t)((t - d->sent_at[token % MAX_WINDOW]) / 1000);
    }
    if (t < measure_to) send_update(d);
}

/* Handles one complete packet. */
static void on_packet(struct device *d, unsigned char type, const unsigned char *body, size_t len) {
    switch (type >> 4) {
    case 2: /* CONNACK */
        if (len < 2 || body[1] != 0) {
            fprintf(stderr, "%s: CONNACK refused (%d)\n", d->name, len >= 2 ? body[1] : -1);
            exit(2);
        }
        d->phase = SUBSCRIBING;
        send_subscribe(d);
        break;
    case 9: /* SUBACK */
        for (size_t i = 2; i < len; i++) {
            if (body[i] & 0x80) {
                fprintf(stderr, "%s: SUBSCRIBE refused\n", d->name);
                exit(2);
            }
        }
        d->phase = RUNNING;
        break;
    case 4: /* PUBACK of an update */
        break;
    case 3: { /* PUBLISH: a reply */
        if (len < 2) return;
        size_t topic_len = ((size_t)body[0] << 8) | body[1];
        size_t offset = 2 + topic_len + (((type >> 1) & 3) ? 2 : 0);
        if (offset > len) return;
        const unsigned char *topic = body + 2;
        int is_accepted = topic_len >= 9 && memcmp(topic + topic_len - 9, "/accepted", 9) == 0;
        on_reply(d, is_accepted, body + offset, len - offset);
        break;
    }
    default:
        break;
    }
}

static void on_readable(struct device *d) {
    for (;;) {
        ssize_t n = read(d->fd, d->in + d->in_len, INBUF - d->in_len);
        if (n == 0) {
            fprintf(stderr, "%s: the broker closed the connection\n", d->name);
            exit(2);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            die("read");
        }
        d->in_len += (size_t)n;
        size_t at = 0;
        for (;;) {
            if (d->in_len - at < 2) break;
            size_t length = 0, multiplier = 1, i = at + 1;
            int complete = 0;
            while (i < d->in_len && i - at <= 4) {
                unsigned char byte = d->in[i++];
                length += (byte & 127) * multiplier;
                multiplier *= 128;
                if (!(byte & 0x80)) {
                    complete = 1;
                    break;
                }
            }
            if (!complete) break;
            if (length > INBUF - 8) {
                fprintf(stderr, "packet too large\n");
                exit(2);
            }
            if (d->in_len - i < length) break;
            on_packet(d, d->in[at], d->in + i, length);
            at = i + length;
        }
        memmove(d->in, d->in + at, d->in_len - at);
        d->in_len -= at;
    }
}

static double cpu_seconds_self(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static double cpu_seconds_of(int pid) {
    if (pid <= 0) return 0;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) {
            fprintf(stderr, "%s needs a value\n", arg);
            return 2;
        }
        if (!strcmp(arg, "--port")) port = atoi(value);
        else if (!strcmp(arg, "--devices")) n_devices = atoi(value);
        else if (!strcmp(arg, "--window")) window = atoi(value);
        else if (!strcmp(arg, "--seconds")) seconds = atof(value);
        else if (!strcmp(arg, "--warmup")) warmup = atof(value);
        else if (!strcmp(arg, "--prefix")) prefix = value;
        else if (!strcmp(arg, "--broker-pid")) broker_pid = atoi(value);
        else {
            fprintf(stderr, "unknown option %s\n", arg);
            return 2;
        }
        i++;
    }
    if (n_devices < 1 || n_devices > MAX_DEVICES || window < 1 || window > MAX_WINDOW || seconds <= 0 || strlen(prefix) > 40) {
        fprintf(stderr, "--devices 1..%d, --window 1..%d, --seconds > 0, --prefix of at most 40 characters\n", MAX_DEVICES, MAX_WINDOW);
        return 2;
    }
    devices = calloc((size_t)n_devices, sizeof *devices);
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (!devices || !samples) die("malloc");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    for (int i = 0; i < n_devices; i++) {
        struct device *d = &devices[i];
        snprintf(d->name, sizeof d->name, "%s%d", prefix, i);
        snprintf(d->topic, sizeof d->topic, "$aws/things/%s/shadow/update", d->name);
        d->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (d->fd < 0) die("socket");
        if (connect(d->fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
        int one = 1;
        setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event event = {.events = EPOLLIN | EPOLLET, .data.ptr = d};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, d->fd, &event) < 0) die("epoll_ctl");
        d->phase = CONNECTING;
        send_connect(d);
    }
    /* Every device connected and subscribed, within 30 s. */
    uint64_t deadline = now_ns() + 30000000000ull;
    struct epoll_event events[256];
    for (;;) {
        int ready = 0;
        for (int i = 0; i < n_devices; i++) ready += devices[i].phase == RUNNING;
        if (ready == n_devices) break;
        if (now_ns() > deadline) {
            fprintf(stderr, "only %d of %d devices subscribed in 30 s\n", ready, n_devices);
            return 2;
        }
        int n = epoll_wait(ep, events, 256, 100);
        for (int e = 0; e < n; e++) on_readable(events[e].data.ptr);
    }
    uint64_t start = now_ns();
    measure_from = start + (uint64_t)(warmup * 1e9);
    measure_to = measure_from + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < n_devices; i++)
        for (int w = 0; w < window; w++) send_update(&devices[i]);
    double self_before = 0, broker_before = 0;
    int measuring = 0;
    /* Run until the window ends, then drain the replies in flight (at most 5 s). */
    uint64_t drain_until = measure_to + 5000000000ull;
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            self_before = cpu_seconds_self();
            broker_before = cpu_seconds_of(broker_pid);
        }
        if (measuring == 1 && t >= measure_to) {
            measuring = 2;
            self_before = cpu_seconds_self() - self_before;
            broker_before = cpu_seconds_of(broker_pid) - broker_before;
        }
        if (t >= measure_to) {
            long left = 0;
            for (int i = 0; i < n_devices; i++) left += devices[i].in_flight;
            if (left == 0 || t > drain_until) break;
        }
        int n = epoll_wait(ep, events, 256, 10);
        for (int e = 0; e < n; e++) on_readable(events[e].data.ptr);
    }
    long left = 0;
    for (int i = 0; i < n_devices; i++) left += devices[i].in_flight;
    qsort(samples, (size_t)n_samples, sizeof *samples, compare_u32);
    uint32_t p50 = n_samples ? samples[n_samples / 2] : 0;
    uint32_t p99 = n_samples ? samples[(long)(n_samples * 0.99)] : 0;
    uint32_t max = n_samples ? samples[n_samples - 1] : 0;
    double rate = (double)(accepted + rejected) / seconds;
    printf("%d devices x %d in flight, %.0f s: %ld accepted, %ld rejected, %.0f replies/s, p50 %u us, p99 %u us, max %u us; "
           "%ld unanswered after the drain, %ld unmatched replies\n",
           n_devices, window, seconds, accepted, rejected, rate, p50, p99, max, left, bad);
    printf("RESULT accepted=%ld rejected=%ld rate=%.0f p50_us=%u p99_us=%u max_us=%u unanswered=%ld client_cpu=%.0f broker_cpu=%.0f\n",
           accepted, rejected, rate, p50, p99, max, left, 100 * self_before / seconds, 100 * broker_before / seconds);
    return left == 0 && bad == 0 ? 0 : 1;
}
