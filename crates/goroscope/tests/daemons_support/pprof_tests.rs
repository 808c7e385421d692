//! Tests of the goroutine dump parser on real dumps (tests/fixtures/pprof/): headers, frames,
//! creation sites, the blocking-frame rule and which goroutines serve the dump.

use std::collections::BTreeSet;

use super::pprof::*;

#[track_caller]
fn fixture(name: &str) -> Vec<Goroutine> {
    let path = format!("{}/tests/fixtures/pprof/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse_dump(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[track_caller]
fn by_id(goroutines: &[Goroutine], id: u64) -> &Goroutine {
    goroutines
        .iter()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("no goroutine {id}"))
}

fn frame(function: &str, file: &str, line: u64) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
    }
}

#[test]
fn packages_are_cut_at_the_first_dot_after_the_last_slash() {
    for (function, package) in [
        ("main.main.func7", "main"),
        ("runtime.gopark", "runtime"),
        ("net/http.(*conn).serve", "net/http"),
        ("internal/poll.(*FD).Read", "internal/poll"),
        (
            "runtime/internal/syscall.Syscall6",
            "runtime/internal/syscall",
        ),
        (
            "github.com/prometheus/prometheus/web.(*Handler).Run",
            "github.com/prometheus/prometheus/web",
        ),
        (
            "go.opencensus.io/stats/view.init.0",
            "go.opencensus.io/stats/view",
        ),
        (
            "golang.org/x/sync/errgroup.(*Group).Go.func1",
            "golang.org/x/sync/errgroup",
        ),
        ("sync/atomic.(*Pointer[...]).Load", "sync/atomic"),
        ("example.com/m.F[...]", "example.com/m"),
    ] {
        assert_eq!(package_of(function), package, "{function}");
    }
    assert!(is_own_code("main"));
    assert!(is_own_code("go.etcd.io/etcd/raft"));
    assert!(is_own_code("golang.org/x/net/http2"));
    assert!(!is_own_code("net/http"));
    assert!(!is_own_code("vendor/golang.org/x/net/http2/hpack"));
    assert!(is_runtime_or_internal("runtime"));
    assert!(is_runtime_or_internal("internal/poll"));
    assert!(is_runtime_or_internal("runtime/internal/atomic"));
    assert!(!is_runtime_or_internal("runtime/pprof"));
    assert!(!is_runtime_or_internal("os/signal"));
}

#[test]
fn headers_give_state_wait_reason_and_minutes() {
    let cases = [
        (
            "goroutine 7 [chan receive, 5 minutes]:",
            "waiting",
            "chan receive",
            Some(5),
        ),
        (
            "goroutine 8 [syscall, 5 minutes, locked to thread]:",
            "syscall",
            "",
            Some(5),
        ),
        ("goroutine 9 [running]:", "running", "", None),
        ("goroutine 10 [runnable]:", "runnable", "", None),
        (
            "goroutine 11 [select (no cases), 6 minutes]:",
            "waiting",
            "select (no cases)",
            Some(6),
        ),
        ("goroutine 12 [IO wait]:", "waiting", "IO wait", None),
        (
            "goroutine 13 [select (no cases), locked to thread]:",
            "waiting",
            "select (no cases)",
            None,
        ),
        (
            "goroutine 14 gp=0xc000007c00 m=nil [sync.Cond.Wait]:",
            "waiting",
            "sync.Cond.Wait",
            None,
        ),
    ];
    for (line, state, reason, minutes) in cases {
        let g = parse_header(line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (g.state.as_str(), g.wait_reason.as_str(), g.minutes),
            (state, reason, minutes),
            "{line}"
        );
    }
    assert!(parse_header("goroutine x [running]:").is_err());
    assert!(parse_header("goroutine 1 running").is_err());
}

#[test]
fn prometheus_dump_parses_frames_and_creation_sites() {
    let dump = fixture("prometheus-2.42.0.txt");
    assert_eq!(dump.len(), 31);
    let main = by_id(&dump, 1);
    assert_eq!(main.label(), "chan receive");
    assert_eq!(main.minutes, Some(6));
    assert_eq!(main.created_by, None);
    assert_eq!(
        main.frames,
        vec![
            frame(
                "github.com/oklog/run.(*Group).Run",
                "github.com/oklog/run/group.go",
                43
            ),
            frame(
                "main.main",
                "github.com/prometheus/prometheus/cmd/prometheus/main.go",
                1126
            ),
        ]
    );
    // A method value with a receiver in parentheses and arguments with braces and `?`.
    let accept = by_id(&dump, 362);
    assert_eq!(accept.frames.len(), 12);
    assert_eq!(
        accept.frames[3],
        frame(
            "internal/poll.(*FD).Accept",
            "internal/poll/fd_unix.go",
            614
        )
    );
    assert_eq!(
        accept.created_by,
        Some(Creation {
            function: "github.com/prometheus/prometheus/web.(*Handler).Run".into(),
            file: "github.com/prometheus/prometheus/web/web.go".into(),
            line: 553,
            parent: None,
        })
    );
    // An inlined frame, `(...)`, keeps its own position.
    let reader = by_id(&dump, 415);
    assert_eq!(
        reader.frames[2],
        frame(
            "internal/poll.(*pollDesc).waitRead",
            "internal/poll/fd_poll_runtime.go",
            89
        )
    );
    // A goroutine created but not started yet: its start function and runtime.goexit.
    let fresh = by_id(&dump, 1390);
    assert_eq!(fresh.label(), "runnable");
    assert_eq!(
        fresh.frames[0],
        frame(
            "net/http.(*connReader).startBackgroundRead.func2",
            "net/http/server.go",
            674
        )
    );
    assert_eq!(fresh.frames[1].function, "runtime.goexit");
}

#[test]
fn the_blocking_frame_follows_goroscopes_rule() {
    let dump = fixture("prometheus-2.42.0.txt");
    // Own code first: the innermost github.com/… frame.
    assert_eq!(
        by_id(&dump, 362).blocked_at(),
        Some(&frame(
            "golang.org/x/net/netutil.(*limitListener).Accept",
            "golang.org/x/net/netutil/listen.go",
            63
        ))
    );
    assert_eq!(
        by_id(&dump, 99).blocked_at(),
        Some(&frame(
            "main.main.func7",
            "github.com/prometheus/prometheus/cmd/prometheus/main.go",
            821
        ))
    );
    // Only the standard library: the first frame outside runtime and internal/….
    assert_eq!(
        by_id(&dump, 423).blocked_at(),
        Some(&frame("net.(*netFD).Read", "net/fd_posix.go", 55))
    );
    assert_eq!(
        by_id(&dump, 452).blocked_at(),
        Some(&frame(
            "net/http.(*persistConn).writeLoop",
            "net/http/transport.go",
            2392
        ))
    );
    // A syscall goroutine of Go 1.19: os/signal.signal_recv lives in runtime/sigqueue.go
    // but belongs to package os/signal.
    let signal = by_id(&dump, 217);
    assert_eq!(signal.label(), "syscall");
    assert_eq!(
        signal.blocked_at(),
        Some(&frame("os/signal.signal_recv", "runtime/sigqueue.go", 152))
    );
    // Nothing outside the runtime: the innermost frame.
    let only_runtime = Goroutine {
        frames: vec![
            frame("runtime.gopark", "runtime/proc.go", 363),
            frame("runtime.goexit", "runtime/asm_amd64.s", 1594),
        ],
        ..by_id(&dump, 1).clone()
    };
    assert_eq!(only_runtime.blocked_at(), Some(&only_runtime.frames[0]));
}

#[test]
fn the_dump_request_and_its_reader_are_serving_goroutines() {
    // The pprof handler (1389) and the not yet started reader of its connection (1390); the
    // idle keep-alive connection 423 of the self-scrape is not serving anything.
    let dump = fixture("prometheus-2.42.0.txt");
    assert_eq!(serving_ids(&dump), BTreeSet::from([1389, 1390]));
    // caddy: its admin handler (139) and that connection's reader, already reading (140).
    let caddy = fixture("caddy-2.6.2.txt");
    assert_eq!(caddy.len(), 11);
    assert_eq!(serving_ids(&caddy), BTreeSet::from([139, 140]));
    assert_eq!(by_id(&caddy, 1).label(), "select (no cases)");
    assert_eq!(
        by_id(&caddy, 140).blocked_at().map(|f| f.function.as_str()),
        Some("net.(*netFD).Read")
    );
    let node = fixture("node_exporter-1.5.0.txt");
    assert_eq!(node.len(), 5);
    assert_eq!(serving_ids(&node).len(), 2);
    assert_eq!(by_id(&node, 1).label(), "semacquire");
    assert_eq!(
        by_id(&node, 1).blocked_at().map(|f| f.function.as_str()),
        Some("golang.org/x/sync/errgroup.(*Group).Wait")
    );
}

#[test]
fn go_1_21_creation_sites_name_the_parent_goroutine() {
    let dump = fixture("go1.22-created-in-goroutine.txt");
    assert_eq!(dump.len(), 5);
    let nested = by_id(&dump, 21);
    let created = nested.created_by.as_ref().expect("created by");
    assert_eq!(created.function, "main.main.func1");
    assert_eq!(created.parent, Some(18));
    assert_eq!(created.line, 16);
    assert!(created.file.ends_with("/main.go"), "{}", created.file);
    let locked = by_id(&dump, 19);
    assert_eq!(locked.label(), "select (no cases)");
    // Inlined sync.(*Mutex).Lock sits between the runtime and main; main wins.
    let mutex = by_id(&dump, 20);
    assert_eq!(mutex.label(), "sync.Mutex.Lock");
    assert_eq!(mutex.frames[2].function, "sync.(*Mutex).Lock");
    assert_eq!(
        mutex.blocked_at().map(|f| f.function.as_str()),
        Some("main.main.func3")
    );
    // Only goroutine 1 runs runtime/pprof; no reader goroutines here.
    assert_eq!(serving_ids(&dump), BTreeSet::from([1]));
}

#[test]
fn readers_of_other_connections_are_not_serving_when_the_parent_is_known() {
    let text = "goroutine 5 [running]:\nruntime/pprof.writeGoroutineStacks({0x1, 0x2})\n\truntime/pprof/pprof.go:743 +0x6a\n\n\
                goroutine 6 [IO wait]:\nnet/http.(*connReader).backgroundRead(0xc0)\n\tnet/http/server.go:690 +0x37\n\
                created by net/http.(*connReader).startBackgroundRead in goroutine 5\n\tnet/http/server.go:686 +0xb6\n\n\
                goroutine 7 [IO wait]:\nnet/http.(*connReader).backgroundRead(0xc0)\n\tnet/http/server.go:690 +0x37\n\
                created by net/http.(*connReader).startBackgroundRead in goroutine 9\n\tnet/http/server.go:686 +0xb6\n";
    let dump = parse_dump(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(serving_ids(&dump), BTreeSet::from([5, 6]));
}

#[test]
fn malformed_dumps_are_refused_with_the_line() {
    let missing_position = "goroutine 1 [running]:\nmain.main()\n";
    let e = parse_dump(missing_position).expect_err("a frame without position");
    assert!(e.contains("line 2"), "{e}");
    let twice = "goroutine 1 [running]:\nmain.main()\n\tm.go:1\n\ngoroutine 1 [running]:\nmain.main()\n\tm.go:1\n";
    assert!(parse_dump(twice).is_err());
}
