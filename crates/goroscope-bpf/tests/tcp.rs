//! The TCP collector against real loopback connections made by this test
//! process (and by child processes it must not count). Needs root (or
//! CAP_BPF and CAP_PERFMON); without BPF these tests fail, they never skip.

use std::io::{ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use goroscope_bpf::tcp::TcpCollector;
use goroscope_bpf::{choose_attach_mode, AttachMode, ProcessFilter};
use goroscope_model::tcp_stats::{TcpDirection, TcpEdge, TcpRow};
use libbpf_rs::OpenObject;

/// Connections per address family in the exchange test.
const N: u64 = 25;
/// What each client writes, and what the server writes back.
const REQUEST: usize = 1000;
const RESPONSE: usize = 500;
/// Set in a child process started by `child_makes_its_own_connections`.
const CHILD_ENV: &str = "GOROSCOPE_TCP_TEST_CHILD";

/// Tests share this process's connections: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn own_filter() -> ProcessFilter {
    ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    }
}

#[track_caller]
fn start(storage: &mut MaybeUninit<OpenObject>, mode: AttachMode) -> TcpCollector<'_> {
    goroscope_bpf::init();
    TcpCollector::start(storage, mode, &own_filter())
        .unwrap_or_else(|e| panic!("starting the TCP collector ({mode}) failed: {e}"))
}

#[track_caller]
fn rows(c: &TcpCollector<'_>) -> Vec<TcpRow> {
    c.rows().unwrap_or_else(|e| panic!("reading TCP rows: {e}"))
}

#[track_caller]
fn edges(c: &TcpCollector<'_>) -> Vec<TcpEdge> {
    c.edges()
        .unwrap_or_else(|e| panic!("reading TCP edges: {e}"))
}

fn find(rows: &[TcpRow], pid: u32, direction: TcpDirection) -> Option<TcpRow> {
    rows.iter()
        .find(|r| r.pid == pid && r.direction == direction)
        .cloned()
}

/// The row, or an empty one when the kernel has none.
fn row_or_empty(rows: &[TcpRow], direction: TcpDirection) -> TcpRow {
    find(rows, std::process::id(), direction).unwrap_or_default()
}

/// Polls until `done` holds for the rows (closes finish in softirq context
/// after the sockets are gone from user space), then returns them.
#[track_caller]
fn settle(c: &TcpCollector<'_>, what: &str, done: impl Fn(&[TcpRow]) -> bool) -> Vec<TcpRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = rows(c);
        if done(&rows) {
            // Anything late would show up now: give it a moment, read again.
            thread::sleep(Duration::from_millis(100));
            return self::rows(c);
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; rows: {rows:#?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn assert_no_losses(c: &TcpCollector<'_>) {
    let losses = c.losses().unwrap_or_else(|e| panic!("reading losses: {e}"));
    assert_eq!(
        losses.total(),
        0,
        "losses: {:?}",
        losses.nonzero().collect::<Vec<_>>()
    );
}

/// Serves `n` connections one after the other: reads the request, answers,
/// reads until the client closes, then closes.
fn serve(listener: TcpListener, n: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for _ in 0..n {
            let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
            let mut request = vec![0u8; REQUEST];
            conn.read_exact(&mut request)
                .unwrap_or_else(|e| panic!("server read: {e}"));
            conn.write_all(&[b'r'; RESPONSE])
                .unwrap_or_else(|e| panic!("server write: {e}"));
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest)
                .unwrap_or_else(|e| panic!("server read to end: {e}"));
            assert!(rest.is_empty(), "client sent {} extra bytes", rest.len());
        }
    })
}

fn exchange(addr: SocketAddr, n: u64) {
    for _ in 0..n {
        let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        conn.write_all(&[b'q'; REQUEST])
            .unwrap_or_else(|e| panic!("client write: {e}"));
        let mut response = vec![0u8; RESPONSE];
        conn.read_exact(&mut response)
            .unwrap_or_else(|e| panic!("client read: {e}"));
    }
}

#[track_caller]
fn listen(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("binding {addr}: {e}"))
}

#[track_caller]
fn local_addr(l: &TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|e| panic!("listener address: {e}"))
}

#[track_caller]
fn mode() -> AttachMode {
    choose_attach_mode().unwrap_or_else(|e| panic!("no attach mode: {e}"))
}

/// 25 IPv4 and 25 IPv6 request/response connections, in both attach modes:
/// every count, byte, histogram and edge exact; then forget() drops them all.
#[test]
fn loopback_exchanges_are_counted_exactly() {
    let _serial = serial();
    for mode in [AttachMode::TpBtf, AttachMode::RawTp] {
        exchanges_in_mode(mode);
    }
}

fn exchanges_in_mode(mode: AttachMode) {
    let pid = std::process::id();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode);
    assert_eq!(collector.mode(), mode);

    let v4 = listen("127.0.0.1:0");
    let v6 = listen("[::1]:0");
    let (addr4, addr6) = (local_addr(&v4), local_addr(&v6));
    let servers = [serve(v4, N), serve(v6, N)];
    exchange(addr4, N);
    exchange(addr6, N);
    for server in servers {
        server
            .join()
            .unwrap_or_else(|_| panic!("a server thread panicked"));
    }

    let all = 2 * N;
    let rows = settle(&collector, "all connections closed on both sides", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= all
            && row_or_empty(rows, TcpDirection::Inbound).closed >= all
    });
    let out = row_or_empty(&rows, TcpDirection::Outbound);
    let inb = row_or_empty(&rows, TcpDirection::Inbound);
    let (req, resp) = (REQUEST as u64, RESPONSE as u64);

    assert!(!out.comm.is_empty(), "{mode}: outbound row has no comm");
    assert_eq!(out.comm, inb.comm, "{mode}");
    let counts = |r: &TcpRow| {
        [
            r.opened,
            r.closed,
            r.connect_failures,
            r.resets_sent,
            r.resets_received,
            r.retransmits,
            r.bytes_sent,
            r.bytes_received,
        ]
    };
    // opened, closed, failures, resets sent/received, retransmits, bytes sent/received
    assert_eq!(
        counts(&out),
        [all, all, 0, 0, 0, 0, all * req, all * resp],
        "{mode} outbound: {out:#?}"
    );
    assert_eq!(
        counts(&inb),
        [all, all, 0, 0, 0, 0, all * resp, all * req],
        "{mode} inbound: {inb:#?}"
    );
    assert_eq!(out.connect_latency.total(), all, "{mode}");
    assert!(out.connect_latency_total_ns > 0, "{mode}");
    assert!(
        out.connect_latency_total_ns < all * 1_000_000_000,
        "{mode}: loopback connects took {} ns in all",
        out.connect_latency_total_ns
    );
    assert_eq!(inb.connect_latency.total(), 0, "{mode}");
    assert_eq!(inb.connect_latency_total_ns, 0, "{mode}");
    for (side, r) in [("outbound", &out), ("inbound", &inb)] {
        assert_eq!(r.duration.total(), all, "{mode} {side} durations");
        assert!(r.duration_total_ns > 0, "{mode} {side}");
        assert_eq!(r.rtt.total(), all, "{mode} {side} RTTs");
        assert!(r.rtt_total_ns > 0, "{mode} {side}");
    }
    let other_pids: Vec<&TcpRow> = rows.iter().filter(|r| r.pid != pid).collect();
    assert!(
        other_pids.is_empty(),
        "{mode}: rows of other processes: {other_pids:#?}"
    );

    let all_edges = edges(&collector);
    let summary: Vec<(TcpDirection, IpAddr, u16, u64, u64, u64)> = all_edges
        .iter()
        .map(|e| {
            assert_eq!(e.pid, pid, "{mode}: edge of another process: {e:?}");
            assert_eq!(e.comm, out.comm, "{mode}");
            (
                e.direction,
                e.remote,
                e.port,
                e.connections,
                e.bytes_sent,
                e.bytes_received,
            )
        })
        .collect();
    let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut expected = vec![
        (
            TcpDirection::Outbound,
            lo4,
            addr4.port(),
            N,
            N * req,
            N * resp,
        ),
        (
            TcpDirection::Outbound,
            lo6,
            addr6.port(),
            N,
            N * req,
            N * resp,
        ),
        (
            TcpDirection::Inbound,
            lo4,
            addr4.port(),
            N,
            N * resp,
            N * req,
        ),
        (
            TcpDirection::Inbound,
            lo6,
            addr6.port(),
            N,
            N * resp,
            N * req,
        ),
    ];
    expected.sort();
    let mut got = summary.clone();
    got.sort();
    assert_eq!(got, expected, "{mode}: edges");
    assert_no_losses(&collector);

    let deleted = collector
        .forget(&[pid])
        .unwrap_or_else(|e| panic!("forget: {e}"));
    assert_eq!(deleted, 2 + 4, "{mode}: two rows and four edges forgotten");
    assert!(rows_of(&collector, pid).is_empty(), "{mode}: rows left");
    assert!(edges(&collector).is_empty(), "{mode}: edges left");
    assert_eq!(
        collector
            .forget(&[pid])
            .unwrap_or_else(|e| panic!("forget: {e}")),
        0
    );
}

fn rows_of(c: &TcpCollector<'_>, pid: u32) -> Vec<TcpRow> {
    rows(c).into_iter().filter(|r| r.pid == pid).collect()
}

/// A port nothing listens on: bind one, then let it go.
fn free_port() -> u16 {
    local_addr(&listen("127.0.0.1:0")).port()
}

/// A connect to a closed port: one failure, and one reset received (the RST
/// answering the SYN is sent without a socket, so it is nobody's reset sent).
#[test]
fn refused_connect_is_a_failure_with_a_reset_received() {
    let _serial = serial();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());

    let port = free_port();
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("connecting to the closed port {port}: expected refusal, got {other:?}"),
    }
    let rows = settle(&collector, "the failed connect", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).connect_failures >= 1
    });
    let out = row_or_empty(&rows, TcpDirection::Outbound);
    assert_eq!(
        (
            out.connect_failures,
            out.resets_received,
            out.resets_sent,
            out.opened,
            out.closed
        ),
        (1, 1, 0, 0, 0),
        "{out:#?}"
    );
    assert_eq!(out.connect_latency.total(), 0);
    assert_eq!(out.duration.total(), 0);
    assert_eq!(out.rtt.total(), 0);
    assert!(find(&rows, std::process::id(), TcpDirection::Inbound).is_none());
    assert!(edges(&collector).is_empty(), "a refused connect is no edge");
    assert_no_losses(&collector);
}

/// Closing with SO_LINGER 0 aborts: the closing side sends a reset after its
/// socket reached CLOSE, the other side receives it. Both still count a close
/// and the payload that was acknowledged before.
#[test]
fn abort_on_close_counts_reset_sent_and_received() {
    let _serial = serial();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());

    let listener = listen("127.0.0.1:0");
    let addr = local_addr(&listener);
    let mut client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    let (mut server, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    client
        .write_all(&[b'a'; 100])
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = [0u8; 100];
    server
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("read: {e}"));
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a linger struct that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(client);
    let mut rest = Vec::new();
    let err = server
        .read_to_end(&mut rest)
        .expect_err("the server should see the reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    drop(server);

    let rows = settle(&collector, "both sides closed", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= 1
            && row_or_empty(rows, TcpDirection::Inbound).closed >= 1
    });
    let out = row_or_empty(&rows, TcpDirection::Outbound);
    let inb = row_or_empty(&rows, TcpDirection::Inbound);
    let summary = |r: &TcpRow| {
        (
            r.opened,
            r.closed,
            r.resets_sent,
            r.resets_received,
            r.bytes_sent,
            r.bytes_received,
        )
    };
    assert_eq!(summary(&out), (1, 1, 1, 0, 100, 0), "outbound: {out:#?}");
    assert_eq!(summary(&inb), (1, 1, 0, 1, 0, 100), "inbound: {inb:#?}");
    assert_no_losses(&collector);
}

/// A SYN dropped by a listener whose accept queue is full is retransmitted
/// by the connecting side's timer (softirq context) after the initial
/// 1 s RTO, and counted for the process that called connect().
#[test]
fn syn_retransmit_is_counted_for_the_connecting_process() {
    let _serial = serial();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());

    // A listener with backlog 0: one connection fills its accept queue.
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let listener = unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid descriptor and a sockaddr_in that outlives the call.
    let rc = unsafe {
        libc::bind(
            listener.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: a valid, bound socket descriptor.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    let addr = local_addr(&listener);

    let first = TcpStream::connect(addr).unwrap_or_else(|e| panic!("first connect: {e}"));
    let second = thread::spawn(move || {
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("second connect: {e}"))
    });
    // The second SYN is dropped now; free the queue before its retransmit at ~1 s.
    thread::sleep(Duration::from_millis(400));
    let (a, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    let second = second
        .join()
        .unwrap_or_else(|_| panic!("the second connect panicked"));
    let (b, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    drop((first, second, a, b));

    let rows = settle(&collector, "both connections closed", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= 2
            && row_or_empty(rows, TcpDirection::Inbound).closed >= 2
    });
    let out = row_or_empty(&rows, TcpDirection::Outbound);
    let inb = row_or_empty(&rows, TcpDirection::Inbound);
    assert_eq!(
        (out.opened, out.retransmits, out.connect_failures),
        (2, 1, 0),
        "{out:#?}"
    );
    assert_eq!((inb.opened, inb.retransmits), (2, 0), "{inb:#?}");
    // One connect waited for the retransmit: at least the 1 s initial RTO.
    assert!(
        out.connect_latency_total_ns >= 1_000_000_000,
        "connect latency sum {} ns",
        out.connect_latency_total_ns
    );
    assert_no_losses(&collector);
}

/// Not a test on its own: the body of the child process that
/// `other_processes_are_not_counted` starts. Makes a loopback exchange
/// entirely inside the child.
#[test]
fn child_process_helper() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let listener = listen("127.0.0.1:0");
    let addr = local_addr(&listener);
    let server = serve(listener, 3);
    exchange(addr, 3);
    server
        .join()
        .unwrap_or_else(|_| panic!("child server panicked"));
}

/// With a pid filter, another process's connections are not counted: a child
/// making connections to itself leaves nothing, and bash connecting to this
/// process's listener counts only as this process's inbound connection.
#[test]
fn other_processes_are_not_counted() {
    let _serial = serial();
    let pid = std::process::id();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let child = Command::new(&exe)
        .args([
            "--exact",
            "child_process_helper",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    assert!(
        child.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );

    let listener = listen("127.0.0.1:0");
    let port = local_addr(&listener).port();
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} && printf abc >&3 && exec 3>&-"
        ))
        .spawn()
        .unwrap_or_else(|e| panic!("starting bash: {e}"));
    let bash_pid = bash.id();
    let (mut conn, peer) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    let mut got = Vec::new();
    conn.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(got, b"abc");
    drop(conn);
    let status = bash
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for bash: {e}"))
        .status;
    assert!(status.success(), "bash: {status}");

    let rows = settle(&collector, "the inbound connection closed", |rows| {
        row_or_empty(rows, TcpDirection::Inbound).closed >= 1
    });
    let strangers: Vec<&TcpRow> = rows.iter().filter(|r| r.pid != pid).collect();
    assert!(
        strangers.is_empty(),
        "rows of other processes (bash {bash_pid}): {strangers:#?}"
    );
    assert!(
        find(&rows, pid, TcpDirection::Outbound).is_none(),
        "this process connected nowhere: {rows:#?}"
    );
    let inb = row_or_empty(&rows, TcpDirection::Inbound);
    assert_eq!(
        (inb.opened, inb.closed, inb.bytes_received, inb.bytes_sent),
        (1, 1, 3, 0),
        "{inb:#?}"
    );
    let edges = edges(&collector);
    assert_eq!(edges.len(), 1, "{edges:#?}");
    assert_eq!(
        (
            edges[0].pid,
            edges[0].direction,
            edges[0].remote,
            edges[0].port,
            edges[0].connections
        ),
        (pid, TcpDirection::Inbound, peer.ip(), port, 1)
    );
    assert_no_losses(&collector);
}

/// A dual-stack IPv6 socket connecting to an IPv4-mapped address is an edge
/// to the IPv4 address, merged with the same peer reached over IPv4.
#[test]
fn ipv4_mapped_peers_are_ipv4_edges() {
    let _serial = serial();
    let pid = std::process::id();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());

    let listener = listen("127.0.0.1:0");
    let addr4 = local_addr(&listener);
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        addr4.port(),
    );
    let server = serve(listener, 2);
    exchange(mapped, 1);
    exchange(addr4, 1);
    server
        .join()
        .unwrap_or_else(|_| panic!("the server thread panicked"));

    settle(&collector, "both connections closed", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= 2
            && row_or_empty(rows, TcpDirection::Inbound).closed >= 2
    });
    let (req, resp) = (REQUEST as u64, RESPONSE as u64);
    let got: Vec<(u32, TcpDirection, IpAddr, u16, u64, u64, u64)> = edges(&collector)
        .iter()
        .map(|e| {
            (
                e.pid,
                e.direction,
                e.remote,
                e.port,
                e.connections,
                e.bytes_sent,
                e.bytes_received,
            )
        })
        .collect();
    let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        got,
        vec![
            (
                pid,
                TcpDirection::Outbound,
                lo4,
                addr4.port(),
                2,
                2 * req,
                2 * resp
            ),
            (
                pid,
                TcpDirection::Inbound,
                lo4,
                addr4.port(),
                2,
                2 * resp,
                2 * req
            ),
        ]
    );
    assert_no_losses(&collector);
}

/// Edges carry the time of their last update; `age_edges` deletes exactly the idle ones and
/// returns their final values, and a later connection to the same endpoint starts a new edge.
#[test]
fn idle_edges_age_out_with_their_final_values() {
    let _serial = serial();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());
    let pid = std::process::id();
    let old = listen("127.0.0.1:0");
    let old_addr = local_addr(&old);
    let server = serve(old, 3);
    exchange(old_addr, 3);
    server
        .join()
        .unwrap_or_else(|_| panic!("server thread panicked"));
    let outbound_to = |edges: &[TcpEdge], port: u16| -> Vec<TcpEdge> {
        edges
            .iter()
            .filter(|e| e.pid == pid && e.direction == TcpDirection::Outbound && e.port == port)
            .cloned()
            .collect()
    };
    // Closes finish asynchronously: wait for the bytes of all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let found = outbound_to(&edges(&collector), old_addr.port());
        if found.len() == 1 && found[0].bytes_received == 3 * RESPONSE as u64 {
            break found[0].clone();
        }
        assert!(Instant::now() < deadline, "edge never complete: {found:?}");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(before.connections, 3);
    assert_eq!(before.bytes_sent, 3 * REQUEST as u64);
    let now = goroscope_bpf::tcp::monotonic_now_ns();
    assert!(
        before.last_active_ns > 0 && before.last_active_ns <= now,
        "last activity {} not before now {now}",
        before.last_active_ns
    );

    // A second endpoint, active after the cut: it must stay.
    thread::sleep(Duration::from_millis(50));
    let cut = goroscope_bpf::tcp::monotonic_now_ns();
    let fresh = listen("127.0.0.1:0");
    let fresh_addr = local_addr(&fresh);
    let server = serve(fresh, 1);
    exchange(fresh_addr, 1);
    server
        .join()
        .unwrap_or_else(|_| panic!("server thread panicked"));
    let aged = collector
        .age_edges(cut)
        .unwrap_or_else(|e| panic!("aging edges: {e}"));
    let aged_old = outbound_to(&aged, old_addr.port());
    assert_eq!(aged_old.len(), 1, "aged: {aged:?}");
    assert_eq!(
        (
            aged_old[0].connections,
            aged_old[0].bytes_sent,
            aged_old[0].bytes_received
        ),
        (before.connections, before.bytes_sent, before.bytes_received),
        "the aged edge's final values"
    );
    assert!(
        outbound_to(&aged, fresh_addr.port()).is_empty(),
        "an edge active after the cut was aged out: {aged:?}"
    );
    let left = edges(&collector);
    assert!(
        outbound_to(&left, old_addr.port()).is_empty(),
        "still there: {left:?}"
    );
    assert_eq!(outbound_to(&left, fresh_addr.port()).len(), 1, "{left:?}");

    // The same endpoint again: a new edge from zero (the caller kept the old values).
    let again =
        TcpListener::bind(old_addr).unwrap_or_else(|e| panic!("binding {old_addr} again: {e}"));
    let server = serve(again, 1);
    exchange(old_addr, 1);
    server
        .join()
        .unwrap_or_else(|_| panic!("server thread panicked"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = outbound_to(&edges(&collector), old_addr.port());
        if found.len() == 1 && found[0].bytes_received == RESPONSE as u64 {
            assert_eq!(found[0].connections, 1, "{found:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no new edge: {found:?}");
        thread::sleep(Duration::from_millis(20));
    }
    assert_no_losses(&collector);
}

/// Set in a child process started by `a_new_server_on_a_seeded_port_is_not_its_owner`: the
/// port the child listens on, accepting one connection.
const LISTEN_CHILD_ENV: &str = "GOROSCOPE_TCP_TEST_LISTEN_PORT";

/// The inode of this process's network namespace.
#[track_caller]
fn own_netns() -> u32 {
    let link = std::fs::read_link("/proc/self/ns/net")
        .unwrap_or_else(|e| panic!("reading /proc/self/ns/net: {e}"));
    link.to_str()
        .and_then(|t| t.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
        .unwrap_or_else(|| panic!("odd network namespace link {}", link.display()))
}

/// Seeds the collector with those of this process's listening sockets that `/proc` shows on
/// `ports` (each must be there), as the agent does at start. Returns what `add_listener` said
/// for each port.
#[track_caller]
fn seed_own_listeners(c: &TcpCollector<'_>, ports: &[u16]) -> Vec<bool> {
    let pid = std::process::id();
    let procfs = goroscope_host::ProcFs::host();
    let sockets = goroscope_host::listening_sockets(&procfs, pid)
        .unwrap_or_else(|e| panic!("listening sockets of this process in /proc: {e}"));
    let comm = procfs
        .comm(pid)
        .unwrap_or_else(|e| panic!("comm of this process: {e}"));
    ports
        .iter()
        .map(|port| {
            let s = sockets
                .iter()
                .find(|s| s.port == *port)
                .unwrap_or_else(|| panic!("port {port} is not among {sockets:?}"));
            assert_eq!(s.netns, own_netns(), "{s:?}");
            c.add_listener(pid, &comm, s.netns, s.port)
                .unwrap_or_else(|e| panic!("add_listener {s:?}: {e}"))
        })
        .collect()
}

/// Servers listening before the collector started (IPv4 and IPv6): found in /proc and seeded
/// with `add_listener`, their accepted connections count exactly like those of a listener seen
/// at `listen()`, bytes and edges included. One left unseeded shows the gap this fills: its
/// connection is nobody's. Seeding twice adds nothing; a listener learnt from a real
/// `listen()` is never replaced; `forget` drops seeded listeners.
#[test]
fn listeners_open_before_the_start_are_seeded_from_proc() {
    let _serial = serial();
    for mode in [AttachMode::TpBtf, AttachMode::RawTp] {
        seeded_in_mode(mode);
    }
}

fn seeded_in_mode(mode: AttachMode) {
    let pid = std::process::id();
    let v4 = listen("127.0.0.1:0");
    let v6 = listen("[::1]:0");
    let unseeded = listen("127.0.0.1:0");
    let kept = listen("127.0.0.1:0");
    let (addr4, addr6) = (local_addr(&v4), local_addr(&v6));
    let (addr_unseeded, addr_kept) = (local_addr(&unseeded), local_addr(&kept));

    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode);
    // Opened after the start: learnt from its listen().
    let late = listen("127.0.0.1:0");
    let late_port = local_addr(&late).port();
    assert_eq!(
        seed_own_listeners(&collector, &[addr4.port(), addr6.port(), addr_kept.port()]),
        [true, true, true],
        "{mode}: seeded"
    );
    assert_eq!(
        seed_own_listeners(&collector, &[addr4.port(), late_port]),
        [false, false],
        "{mode}: seeding again, or over a listen() the collector saw, adds nothing"
    );
    assert!(
        !collector
            .add_listener(pid + 1, "intruder", own_netns(), late_port)
            .unwrap_or_else(|e| panic!("add_listener: {e}")),
        "{mode}: a listener learnt from listen() is never replaced"
    );
    drop(late);

    let servers = [serve(v4, N), serve(v6, N), serve(unseeded, 1)];
    exchange(addr4, N);
    exchange(addr6, N);
    exchange(addr_unseeded, 1);
    for server in servers {
        server
            .join()
            .unwrap_or_else(|_| panic!("a server thread panicked"));
    }
    let all = 2 * N;
    let rows = settle(&collector, "all connections closed", |rows| {
        row_or_empty(rows, TcpDirection::Inbound).closed >= all
            && row_or_empty(rows, TcpDirection::Outbound).closed > all
    });
    let inb = row_or_empty(&rows, TcpDirection::Inbound);
    let (req, resp) = (REQUEST as u64, RESPONSE as u64);
    assert_eq!(
        (inb.opened, inb.closed, inb.bytes_sent, inb.bytes_received),
        (all, all, all * resp, all * req),
        "{mode}: inbound of the seeded listeners (the unseeded one's is nobody's): {inb:#?}"
    );
    assert_eq!(
        row_or_empty(&rows, TcpDirection::Outbound).opened,
        all + 1,
        "{mode}: outbound, the unseeded listener's client included"
    );
    let out = row_or_empty(&rows, TcpDirection::Outbound);
    assert_eq!(inb.comm, out.comm, "{mode}: the seeded comm is /proc's");
    let mut inbound_edges: Vec<(u16, u64, u64, u64)> = edges(&collector)
        .iter()
        .filter(|e| e.direction == TcpDirection::Inbound)
        .map(|e| {
            assert_eq!(e.pid, pid, "{mode}: {e:?}");
            (e.port, e.connections, e.bytes_sent, e.bytes_received)
        })
        .collect();
    inbound_edges.sort();
    let mut expected = vec![
        (addr4.port(), N, N * resp, N * req),
        (addr6.port(), N, N * resp, N * req),
    ];
    expected.sort();
    assert_eq!(inbound_edges, expected, "{mode}: inbound edges");
    assert_no_losses(&collector);

    // forget() drops the seeded listener still open: its next connection is nobody's.
    collector
        .forget(&[pid])
        .unwrap_or_else(|e| panic!("forget: {e}"));
    let server = serve(kept, 1);
    exchange(addr_kept, 1);
    server
        .join()
        .unwrap_or_else(|_| panic!("the server thread panicked"));
    let rows = settle(&collector, "the last outbound connection closed", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= 1
    });
    assert!(
        find(&rows, pid, TcpDirection::Inbound).is_none(),
        "{mode}: a forgotten process's seeded listener still counts: {rows:#?}"
    );
}

/// Not a test on its own: the body of the child process that
/// `a_new_server_on_a_seeded_port_is_not_its_owner` starts. Listens on the given port and
/// serves one connection.
#[test]
fn listening_child_helper() {
    let Some(port) = std::env::var_os(LISTEN_CHILD_ENV) else {
        return;
    };
    let port = port
        .to_str()
        .unwrap_or_else(|| panic!("{LISTEN_CHILD_ENV} is not text"));
    let listener = listen(&format!("127.0.0.1:{port}"));
    serve(listener, 1)
        .join()
        .unwrap_or_else(|_| panic!("child server panicked"));
}

/// A seeded listener's close is not seen (its socket is unknown), so when another, untraced
/// process listens on the port afterwards, its connections must not count as the seeded
/// process's: that listen() removes the seeded entry.
#[test]
fn a_new_server_on_a_seeded_port_is_not_its_owner() {
    let _serial = serial();
    let pid = std::process::id();
    let old = listen("127.0.0.1:0");
    let port = local_addr(&old).port();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode());
    assert_eq!(seed_own_listeners(&collector, &[port]), [true]);
    drop(old);

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut child = Command::new(&exe)
        .args([
            "--exact",
            "listening_child_helper",
            "--test-threads=1",
            "--quiet",
        ])
        .env(LISTEN_CHILD_ENV, port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    // Refused until the child listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conn = loop {
        match TcpStream::connect(addr) {
            Ok(conn) => break conn,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connecting to the child on {addr}: {e}"),
        }
    };
    conn.write_all(&[b'q'; REQUEST])
        .unwrap_or_else(|e| panic!("client write: {e}"));
    let mut response = vec![0u8; RESPONSE];
    conn.read_exact(&mut response)
        .unwrap_or_else(|e| panic!("client read: {e}"));
    drop(conn);
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for the child: {e}"));
    assert!(status.success(), "the listening child failed: {status}");

    let rows = settle(&collector, "the connection to the child closed", |rows| {
        row_or_empty(rows, TcpDirection::Outbound).closed >= 1
    });
    assert!(
        find(&rows, pid, TcpDirection::Inbound).is_none(),
        "the child's accepted connection was counted as this process's: {rows:#?}"
    );
    assert!(
        rows.iter().all(|r| r.pid == pid),
        "rows of other processes: {rows:#?}"
    );
}
