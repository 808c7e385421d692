/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TCP statistics aggregated in the kernel: per (process, direction) counts of
 * connections opened, closed and failed, resets, retransmits, payload bytes,
 * and histograms of connect latency, connection duration and smoothed RTT;
 * per (process, direction, remote address, port) the edges of a service map.
 */
#ifndef GOROSCOPE_TCP_H
#define GOROSCOPE_TCP_H

#include "common.h"
#include "histogram.h"

#define MAX_TCP_ROWS 2048       /* (process, direction) rows, ~4 KiB each */
#define MAX_TCP_EDGES 16384     /* (process, direction, remote, port) edges; idle ones are aged
				 * out by user space (lookup-and-delete), so they hold active peers */
#define MAX_TCP_CONNECTIONS 32768 /* connections followed at once */
#define MAX_TCP_LISTENERS 4096  /* listening (netns, port)s of traced processes */

/* Who opened the connection. */
#define TCP_OUTBOUND 0 /* this process called connect() */
#define TCP_INBOUND 1  /* a listener of this process accepted it */

struct tcp_row_key {
	__u32 tgid;
	__u32 direction; /* TCP_OUTBOUND or TCP_INBOUND */
};
_Static_assert(sizeof(struct tcp_row_key) == 8, "tcp_row_key layout is part of the ABI");

struct tcp_stats {
	__u64 opened;           /* outbound: reached ESTABLISHED; inbound: accepted */
	__u64 closed;           /* established connections that reached CLOSE */
	__u64 connect_failures; /* outbound: SYN_SENT -> CLOSE */
	__u64 resets_sent;
	__u64 resets_received;  /* tcp_reset() on the socket: an RST arrived (or data after close) */
	__u64 retransmits;      /* segments retransmitted successfully */
	__u64 bytes_sent;       /* payload acknowledged by the peer, summed at close */
	__u64 bytes_received;   /* payload received, summed at close */
	__u64 connect_latency_total_ns;
	__u64 duration_total_ns;
	__u64 rtt_total_ns;
	char comm[COMM_LEN];    /* set when the row is created */
	__u64 connect_latency[LATENCY_BUCKETS]; /* SYN_SENT -> ESTABLISHED, ns */
	__u64 duration[LATENCY_BUCKETS];        /* ESTABLISHED -> CLOSE, ns */
	__u64 rtt[LATENCY_BUCKETS];             /* smoothed RTT at close, ns */
};
_Static_assert(sizeof(struct tcp_stats) == 104 + 3 * 8 * LATENCY_BUCKETS,
	       "tcp_stats layout is part of the ABI");

/* One edge of the service map. */
struct tcp_edge_key {
	__u32 tgid;
	__u16 direction; /* TCP_OUTBOUND or TCP_INBOUND */
	__u16 port;      /* outbound: the remote port; inbound: the local (listening) port */
	__u32 family;    /* AF_INET (2) or AF_INET6 (10) */
	__u8 remote[16]; /* network order; an IPv4 address fills the first 4 bytes */
};
_Static_assert(sizeof(struct tcp_edge_key) == 28, "tcp_edge_key layout is part of the ABI");

struct tcp_edge_stats {
	__u64 connections;    /* established */
	__u64 bytes_sent;     /* at close, as in tcp_stats */
	__u64 bytes_received;
	__u64 last_ns;        /* CLOCK_MONOTONIC of the last update: user space ages idle edges out */
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct tcp_edge_stats) == 48, "tcp_edge_stats layout is part of the ABI");

/* A connection being followed, keyed by its struct sock pointer. */
struct tcp_conn {
	__u64 syn_sent_ns;    /* outbound: when connect() sent the SYN; 0 inbound */
	__u64 established_ns; /* 0 until established */
	__u64 acked_base;     /* bytes_acked when established (the SYN counts 1) */
	__u64 received_base;  /* bytes_received when established */
	__u32 tgid;           /* the owner: connecting or listening process */
	__u32 direction;
	__u32 closed;         /* reached CLOSE: counted, kept until the socket is destroyed */
	__u32 port;           /* of the service-map edge, set when established (inet_num is 0 at CLOSE) */
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct tcp_conn) == 64, "tcp_conn layout is part of the ABI");

/* A listening socket of a traced process, keyed by (netns, port). */
struct tcp_listener_key {
	__u32 netns; /* network namespace inode number */
	__u32 port;  /* local port, host order */
};
_Static_assert(sizeof(struct tcp_listener_key) == 8, "tcp_listener_key layout is part of the ABI");

/*
 * Learnt at listen(), or seeded by user space at start for a server that was
 * already listening (found in /proc): then the socket is unknown and sk is 0,
 * so its close (matched by sk) leaves it; any later listen() on the port
 * replaces or removes it, and forgetting the process deletes it.
 */
struct tcp_listener {
	__u64 sk; /* the listening socket; 0 when seeded from /proc */
	__u32 tgid;
	__u32 _pad;
	char comm[COMM_LEN];
};
_Static_assert(sizeof(struct tcp_listener) == 32, "tcp_listener layout is part of the ABI");

#endif /* GOROSCOPE_TCP_H */
