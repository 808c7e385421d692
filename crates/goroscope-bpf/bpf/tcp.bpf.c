// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Per-process TCP statistics and service-map edges, aggregated in the kernel.
 *
 * Most TCP events (handshakes completing, closes, resets, retransmits) run in
 * softirq context, where `current` is whatever task was interrupted. Only
 * connect() (CLOSE -> SYN_SENT) and listen() (CLOSE -> LISTEN) are reliably
 * in the owning process's context. So ownership is decided there, filtered
 * there, and remembered:
 *   - tcp_conns: per connection (keyed by its struct sock pointer) the owner,
 *     direction and timestamps, created at connect() or when a child of a
 *     traced listener becomes established, marked closed at CLOSE (when its
 *     statistics are counted) and deleted when the socket is destroyed, so a
 *     reset sent while closing (abort on close) is still attributed;
 *   - tcp_listeners: per (netns, local port) the process listening there,
 *     learnt at listen() or, for servers already listening when goroscope
 *     started, seeded by user space from /proc with sk 0 (socket unknown).
 * Edges carry the time of their last update; user space deletes those idle
 * longer than the configured time (reading their final values as it does),
 * so a public server's clients cannot fill the map. Every map is a shared
 * (not per-CPU) hash: its memory does not grow with the CPU count.
 * Every other event looks its socket up in tcp_conns and updates the owner's
 * row. Nothing is streamed: user space reads the maps when it reports.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcp.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

/*
 * Preallocated and shared by all CPUs: TCP events are rare next to syscalls,
 * so atomic adds on one copy cost less memory than a per-CPU row.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TCP_ROWS);
	__type(key, struct tcp_row_key);
	__type(value, struct tcp_stats);
} tcp_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TCP_EDGES);
	__type(key, struct tcp_edge_key);
	__type(value, struct tcp_edge_stats);
} tcp_edges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TCP_CONNECTIONS);
	__type(key, __u64); /* struct sock * */
	__type(value, struct tcp_conn);
} tcp_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TCP_LISTENERS);
	__type(key, struct tcp_listener_key);
	__type(value, struct tcp_listener);
} tcp_listeners SEC(".maps");

/* The initial value of a new row (too large for the BPF stack). */
const struct tcp_stats empty_tcp_stats = {};

#define add(field, n) __sync_fetch_and_add(&(field), (n))

static __always_inline void count_bucket(__u64 *histogram, __u64 value)
{
	__u32 bucket = latency_bucket(value);

	if (bucket < LATENCY_BUCKETS)
		add(histogram[bucket], 1);
}

static __always_inline struct tcp_stats *row_for(struct tcp_conn *conn)
{
	struct tcp_row_key key = { .tgid = conn->tgid, .direction = conn->direction };
	struct tcp_stats *row = bpf_map_lookup_elem(&tcp_rows, &key);

	if (row)
		return row;
	/* Another CPU may insert the same key first: EEXIST is fine, look again. */
	long created = bpf_map_update_elem(&tcp_rows, &key, &empty_tcp_stats, BPF_NOEXIST);
	row = bpf_map_lookup_elem(&tcp_rows, &key);
	if (!row) {
		count_loss(LOSS_TCP_ROWS_FULL);
		return 0;
	}
	if (created == 0)
		__builtin_memcpy(row->comm, conn->comm, COMM_LEN);
	return row;
}

static __always_inline struct tcp_conn *conn_of(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (!sk)
		return 0;
	return bpf_map_lookup_elem(&tcp_conns, &key);
}

/*
 * Adds to the service-map edge of this connection. The remote address is
 * still set at CLOSE; the port comes from the record (inet_num is 0 by then).
 */
static __always_inline void edge_add(const struct sock *sk, struct tcp_conn *conn, __u64 connections,
				     __u64 sent, __u64 received, __u64 now)
{
	struct tcp_edge_key key = {
		.tgid = conn->tgid,
		.direction = conn->direction,
	};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	key.family = family;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&key.remote, sk, __sk_common.skc_v6_daddr);
	} else {
		__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		__builtin_memcpy(key.remote, &daddr, sizeof(daddr));
	}
	key.port = conn->port;

	struct tcp_edge_stats *edge = bpf_map_lookup_elem(&tcp_edges, &key);
	if (!edge) {
		struct tcp_edge_stats fresh = {};

		__builtin_memcpy(fresh.comm, conn->comm, COMM_LEN);
		fresh.last_ns = now;
		bpf_map_update_elem(&tcp_edges, &key, &fresh, BPF_NOEXIST);
		edge = bpf_map_lookup_elem(&tcp_edges, &key);
		if (!edge) {
			count_loss(LOSS_TCP_EDGES_FULL);
			return;
		}
	}
	/* A plain store: racing CPUs both write a current time. */
	edge->last_ns = now;
	if (connections)
		add(edge->connections, connections);
	if (sent)
		add(edge->bytes_sent, sent);
	if (received)
		add(edge->bytes_received, received);
}

static __always_inline struct tcp_listener_key listener_key(const struct sock *sk)
{
	struct tcp_listener_key key = {
		.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum),
		.port = BPF_CORE_READ(sk, __sk_common.skc_num),
	};
	return key;
}

/* connect(): process context, `current` owns the socket. */
static __always_inline void on_connect(const struct sock *sk, __u64 now)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 key = (__u64)sk;

	if (!is_traced(task)) {
		/* A socket reused after an earlier, followed life. */
		bpf_map_delete_elem(&tcp_conns, &key);
		return;
	}
	struct tcp_conn conn = {
		.syn_sent_ns = now,
		.tgid = task->tgid,
		.direction = TCP_OUTBOUND,
	};
	bpf_probe_read_kernel(conn.comm, sizeof(conn.comm), task->group_leader->comm);
	if (bpf_map_update_elem(&tcp_conns, &key, &conn, BPF_ANY))
		count_loss(LOSS_TCP_SOCKETS_FULL);
}

/* listen(): process context, `current` owns the listening socket. */
static __always_inline void on_listen(const struct sock *sk)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 sk_key = (__u64)sk;

	bpf_map_delete_elem(&tcp_conns, &sk_key);
	struct tcp_listener_key key = listener_key(sk);
	if (!is_traced(task)) {
		/*
		 * A seeded listener (sk 0) may be long closed, its close unseen
		 * (unmatched): a new server on its port is not its process.
		 */
		struct tcp_listener *seeded = bpf_map_lookup_elem(&tcp_listeners, &key);

		if (seeded && seeded->sk == 0)
			bpf_map_delete_elem(&tcp_listeners, &key);
		return;
	}

	struct tcp_listener listener = {
		.sk = (__u64)sk,
		.tgid = task->tgid,
	};
	bpf_probe_read_kernel(listener.comm, sizeof(listener.comm), task->group_leader->comm);
	if (bpf_map_update_elem(&tcp_listeners, &key, &listener, BPF_ANY))
		count_loss(LOSS_TCP_SOCKETS_FULL);
}

/* A seeded listener (sk 0) never matches: it stays until replaced or forgotten. */
static __always_inline void on_listen_close(const struct sock *sk)
{
	struct tcp_listener_key key = listener_key(sk);
	struct tcp_listener *listener = bpf_map_lookup_elem(&tcp_listeners, &key);

	if (listener && listener->sk == (__u64)sk)
		bpf_map_delete_elem(&tcp_listeners, &key);
}

static __always_inline void record_bases(const struct sock *sk, struct tcp_conn *conn, __u64 now)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	conn->established_ns = now;
	if (conn->direction == TCP_OUTBOUND)
		conn->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	else
		conn->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	conn->acked_base = BPF_CORE_READ(tp, bytes_acked);
	conn->received_base = BPF_CORE_READ(tp, bytes_received);
}

/* SYN_SENT -> ESTABLISHED (or via SYN_RECV on a simultaneous open). */
static __always_inline void on_connected(const struct sock *sk, struct tcp_conn *conn, __u64 now)
{
	record_bases(sk, conn, now);
	struct tcp_stats *row = row_for(conn);
	if (row) {
		__u64 latency = now - conn->syn_sent_ns;

		add(row->opened, 1);
		add(row->connect_latency_total_ns, latency);
		count_bucket(row->connect_latency, latency);
	}
	edge_add(sk, conn, 1, 0, 0, now);
}

/* SYN_RECV -> ESTABLISHED: a child of a listener, usually in softirq context. */
static __always_inline void on_accepted(const struct sock *sk, __u64 now)
{
	__u64 sk_key = (__u64)sk;
	struct tcp_listener_key key = listener_key(sk);
	struct tcp_listener *listener = bpf_map_lookup_elem(&tcp_listeners, &key);

	if (!listener) {
		bpf_map_delete_elem(&tcp_conns, &sk_key);
		return;
	}
	struct tcp_conn fresh = {
		.tgid = listener->tgid,
		.direction = TCP_INBOUND,
	};
	__builtin_memcpy(fresh.comm, listener->comm, COMM_LEN);
	record_bases(sk, &fresh, now);
	if (bpf_map_update_elem(&tcp_conns, &sk_key, &fresh, BPF_ANY)) {
		count_loss(LOSS_TCP_SOCKETS_FULL);
		return;
	}
	struct tcp_conn *conn = bpf_map_lookup_elem(&tcp_conns, &sk_key);
	if (!conn)
		return;
	struct tcp_stats *row = row_for(conn);
	if (row)
		add(row->opened, 1);
	edge_add(sk, conn, 1, 0, 0, now);
}

/*
 * -> CLOSE. bytes_acked counts the SYN and the FIN as one byte each and
 * bytes_received counts the FIN: both are taken out to leave the payload.
 */
static __always_inline void on_close(const struct sock *sk, int oldstate, __u64 now)
{
	struct tcp_conn *conn = conn_of(sk);

	if (!conn || conn->closed)
		return;
	conn->closed = 1;
	struct tcp_stats *row = row_for(conn);
	if (!conn->established_ns) {
		if (row && conn->direction == TCP_OUTBOUND)
			add(row->connect_failures, 1);
		return;
	}

	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	__u32 snd_una = BPF_CORE_READ(tp, snd_una);
	__u32 write_seq = BPF_CORE_READ(tp, write_seq);
	__u32 srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	bool fin_sent = (1 << oldstate) & (TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2 | TCPF_CLOSING | TCPF_LAST_ACK);
	__u64 fin_acked = fin_sent && snd_una == write_seq;
	__u64 fin_received = (flags >> SOCK_DONE) & 1;
	__u64 sent = acked >= conn->acked_base + fin_acked ? acked - conn->acked_base - fin_acked : 0;
	__u64 got = received >= conn->received_base + fin_received ?
			    received - conn->received_base - fin_received :
			    0;
	__u64 duration = now - conn->established_ns;

	if (row) {
		add(row->closed, 1);
		add(row->bytes_sent, sent);
		add(row->bytes_received, got);
		add(row->duration_total_ns, duration);
		count_bucket(row->duration, duration);
		if (srtt_us) {
			__u64 rtt_ns = (__u64)srtt_us * 1000;

			add(row->rtt_total_ns, rtt_ns);
			count_bucket(row->rtt, rtt_ns);
		}
	}
	if (sent || got)
		edge_add(sk, conn, 0, sent, got, now);
}

static __always_inline int on_set_state(const struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	__u64 now = bpf_ktime_get_ns();

	switch (newstate) {
	case TCP_SYN_SENT:
		on_connect(sk, now);
		break;
	case TCP_LISTEN:
		on_listen(sk);
		break;
	case TCP_ESTABLISHED: {
		struct tcp_conn *conn = conn_of(sk);

		if (conn && conn->direction == TCP_OUTBOUND && !conn->established_ns && !conn->closed)
			on_connected(sk, conn, now);
		else if (oldstate == TCP_SYN_RECV)
			on_accepted(sk, now);
		break;
	}
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN)
			on_listen_close(sk);
		else
			on_close(sk, oldstate, now);
		break;
	}
	return 0;
}

static __always_inline int on_destroy(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&tcp_conns, &key);
	return 0;
}

static __always_inline int on_send_reset(const struct sock *sk)
{
	struct tcp_conn *conn = conn_of(sk); /* sk is NULL when no socket matched */
	struct tcp_stats *row;

	if (conn && (row = row_for(conn)))
		add(row->resets_sent, 1);
	return 0;
}

static __always_inline int on_receive_reset(const struct sock *sk)
{
	struct tcp_conn *conn = conn_of(sk);
	struct tcp_stats *row;

	if (conn && (row = row_for(conn)))
		add(row->resets_received, 1);
	return 0;
}

static __always_inline int on_retransmit(const struct sock *sk, int err)
{
	struct tcp_conn *conn;
	struct tcp_stats *row;

	if (err)
		return 0; /* not sent */
	conn = conn_of(sk);
	if (conn && (row = row_for(conn)))
		add(row->retransmits, 1);
	return 0;
}

DEFINE_TRACE_HANDLERS(inet_sock_set_state, on_set_state(sk, oldstate, newstate),
		      const struct sock *sk, const int oldstate, const int newstate)
DEFINE_TRACE_HANDLERS(tcp_destroy_sock, on_destroy(sk), struct sock *sk)
DEFINE_TRACE_HANDLERS(tcp_send_reset, on_send_reset(sk), const struct sock *sk,
		      const struct sk_buff *skb, const enum sk_rst_reason reason)
DEFINE_TRACE_HANDLERS(tcp_receive_reset, on_receive_reset(sk), struct sock *sk)
DEFINE_TRACE_HANDLERS(tcp_retransmit_skb, on_retransmit(sk, err), const struct sock *sk,
		      const struct sk_buff *skb, int err)
