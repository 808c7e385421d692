//! Synthetic recordings for the report's tests: a Go one (two leak suspects, 300 timeline
//! points with a steady fd climb, CPU and wall profiles, a hostile function name) and one of
//! a process that is not Go.

use goroscope_model::goroutines::{
    CodeLocation, GcSummary, GoroutineGroup, HealthReport, LeakSuspect, LifetimeSummary,
    SchedulerState, SchedulerSummary, WindowSummary,
};
use goroscope_model::profile::{Line, Location, Profile, ProfileKind, Sample};
use goroscope_model::recording::{
    Ended, FileOpens, FileSection, GcPause, GoPoint, GoSection, Recording, SyscallSummary, Target,
    TcpDirectionSummary, TcpPeer, TcpSection, TimePoint, WaitTime, Window, RECORDING_FORMAT,
};
use goroscope_model::{bucket_index, LATENCY_BUCKETS};

/// A function name written to break out of HTML, of a script and of a terminal.
pub(crate) const HOSTILE: &str = "</script><script>alert(1)</script>\u{1b}[31m";

/// 100 ms in ns.
const INTERVAL_NS: u64 = 100_000_000;

pub(crate) fn at(function: &str, file: &str, line: u32) -> CodeLocation {
    CodeLocation {
        function: function.to_string(),
        file: file.to_string(),
        line,
    }
}

/// A profile of `kind` whose samples are `(leaf-first function names, time ns)`.
pub(crate) fn profile(kind: ProfileKind, stacks: &[(Vec<&str>, i64)]) -> Profile {
    let mut profile = Profile::new(kind);
    let mut names: Vec<String> = Vec::new();
    for (stack, ns) in stacks {
        let mut locations = Vec::new();
        for name in stack {
            let index = match names.iter().position(|n| n == name) {
                Some(index) => index,
                None => {
                    names.push(name.to_string());
                    profile.locations.push(Location {
                        address: 0x40_0000 + 0x10 * names.len() as u64,
                        mapping: None,
                        lines: vec![Line {
                            function: name.to_string(),
                            file: "/src/app/main.go".to_string(),
                            line: 10,
                            start_line: 1,
                        }],
                    });
                    names.len() - 1
                }
            };
            locations.push(index);
        }
        profile.samples.push(Sample {
            locations,
            values: vec![ns / 10_000_000, *ns],
            labels: vec![],
        });
    }
    profile.duration_ns = 30_000_000_000;
    profile
}

fn latency_buckets(values: &[(u64, u64)]) -> Vec<u64> {
    let mut buckets = vec![0u64; LATENCY_BUCKETS];
    for &(ns, count) in values {
        buckets[bucket_index(ns)] += count;
    }
    buckets
}

fn suspect(
    count: u64,
    reason: &str,
    start: &str,
    creation: CodeLocation,
    blocked: CodeLocation,
    growth_per_minute: f64,
) -> LeakSuspect {
    LeakSuspect {
        count,
        recently_blocked: 3,
        wait_reason: reason.to_string(),
        start_function: start.to_string(),
        creation,
        blocked_at: blocked,
        min_blocked_ns: 12_000_000_000,
        leak_score: 0.93,
        reason: format!("{count} goroutines blocked in {reason} for over 12s and growing"),
        stuck: true,
        growing: growth_per_minute > 0.0,
        growth: (growth_per_minute / 2.0) as i64,
        growth_per_minute,
        released: 0,
    }
}

fn group(suspect: &LeakSuspect, stack: Vec<CodeLocation>) -> GoroutineGroup {
    GoroutineGroup {
        count: suspect.count + suspect.recently_blocked,
        creation: suspect.creation.clone(),
        start_function: suspect.start_function.clone(),
        blocked_at: suspect.blocked_at.clone(),
        wait_reason: suspect.wait_reason.clone(),
        by_state: vec![(
            "waiting".to_string(),
            suspect.count + suspect.recently_blocked,
        )],
        stack,
    }
}

/// The Go recording: 30 s, 300 points, fds climbing from 20 to about 50.
pub(crate) fn go_recording() -> Recording {
    let first = suspect(
        1234,
        "chan send",
        "main.worker",
        at("main.startWorkers", "/src/app/workers.go", 42),
        at("main.worker", "/src/app/workers.go", 57),
        96.0,
    );
    let second = suspect(
        17,
        "sync.Mutex.Lock",
        HOSTILE,
        at("main.serve", "/src/app/<server>&.go", 88),
        at("main.(*cache).get", "/src/app/cache.go", 12),
        0.0,
    );
    let groups = vec![
        group(
            &first,
            vec![
                at("runtime.chansend1", "/usr/lib/go/src/runtime/chan.go", 161),
                at("main.worker", "/src/app/workers.go", 57),
            ],
        ),
        group(
            &second,
            vec![
                at("sync.(*Mutex).Lock", "/usr/lib/go/src/sync/mutex.go", 90),
                at("main.(*cache).get", "/src/app/cache.go", 12),
                at(HOSTILE, "/src/app/cache.go", 30),
            ],
        ),
        GoroutineGroup {
            count: 40,
            creation: at(
                "net/http.(*Server).Serve",
                "/usr/lib/go/src/net/http/server.go",
                3285,
            ),
            start_function: "net/http.(*conn).serve".to_string(),
            blocked_at: at(
                "net/http.(*conn).readRequest",
                "/usr/lib/go/src/net/http/server.go",
                1009,
            ),
            wait_reason: "IO wait".to_string(),
            by_state: vec![("waiting".to_string(), 40)],
            stack: vec![],
        },
    ];
    let timeline: Vec<TimePoint> = (0..300u64)
        .map(|i| TimePoint {
            at_ns: i * INTERVAL_NS,
            threads: Some(12 + i / 100),
            fds: Some(20 + i / 10 + (i * 7) % 3),
            cpu_ns: Some(i * 45_000_000),
            rss_bytes: Some(30 * 1024 * 1024 + i * 20 * 1024),
            go: Some(GoPoint {
                by_state: vec![
                    ("waiting".to_string(), 1200 + i * 4),
                    ("running".to_string(), 2 + i % 3),
                    ("runnable".to_string(), i % 5),
                    ("syscall".to_string(), 1),
                ],
                created_total: 5000 + i * 30 + (i % 7) * 3,
                gc_cycles: (i / 25) as u32,
                heap_live_bytes: Some(8 * 1024 * 1024 + (i % 25) * 300 * 1024),
                heap_goal_bytes: Some(16 * 1024 * 1024),
                global_runqueue: (i % 4) as u32,
                local_runqueues: (i % 9) as u32,
                idle_ps: 5 - (i % 3) as u32,
                gomaxprocs: 8,
            }),
        })
        .collect();
    let health = HealthReport {
        window: WindowSummary {
            first_ns: 0,
            last_ns: 299 * INTERVAL_NS,
            snapshots: 300,
            interval_ns: Some(INTERVAL_NS),
        },
        goroutines_total: 2396,
        by_state: vec![("waiting".to_string(), 2392)],
        by_wait_reason: vec![("chan send".to_string(), 1237)],
        runtime_goroutines: 6,
        runtime_by_wait_reason: vec![],
        created_total: 13_970,
        created_per_second: Some(300.0),
        lifetimes: LifetimeSummary {
            count: 8000,
            p50_ns: Some(220_000_000),
            p90_ns: Some(900_000_000),
            p99_ns: Some(3_100_000_000),
            max_ns: Some(9_000_000_000),
            resolution_ns: Some(INTERVAL_NS),
            seen_once: 2100,
            appeared: 8970,
            long_lived: 1240,
            long_lived_share: Some(1240.0 / 8970.0),
            long_lived_threshold_ns: 10_000_000_000,
            histogram: vec![
                (134_217_728, 2100),
                (268_435_456, 2500),
                (536_870_912, 1800),
                (1_073_741_824, 900),
                (2_147_483_648, 500),
                (4_294_967_296, 150),
                (8_589_934_592, 40),
                (17_179_869_184, 10),
            ],
        },
        groups,
        leak_suspects: vec![first, second],
        gc: GcSummary {
            cycles: 412,
            cycles_in_window: 12,
            pauses_sampled: 256,
            pause_p50_ns: Some(120_000),
            pause_p99_ns: Some(1_400_000),
            pause_max_ns: Some(2_100_000),
            pause_total_ns: Some(90_000_000),
            heap_live_bytes: Some(11 * 1024 * 1024),
            heap_goal_bytes: Some(16 * 1024 * 1024),
        },
        scheduler: SchedulerSummary {
            latest: SchedulerState {
                gomaxprocs: 8,
                idle_ps: 5,
                spinning_ms: 1,
                global_runqueue: 0,
                local_runqueues: vec![0, 1, 0, 0, 2, 0, 0, 0],
            },
            max_global_runqueue: 3,
        },
        read_cost: Default::default(),
    };
    let gc_pauses = (0..12u64)
        .map(|i| GcPause {
            seen_at_ns: 1_000_000_000 + i * 2_400_000_000,
            pause_ns: 80_000 + i * 20_000 + if i == 7 { 2_000_000 } else { 0 },
        })
        .collect();
    let wait_time = [
        ("chan send", 900_000_000_000u64),
        ("IO wait", 1_200_000_000_000),
        ("running", 60_000_000_000),
        ("runnable", 9_000_000_000),
        ("sync.Mutex.Lock", 14_000_000_000),
        ("sleep", 30_000_000_000),
        ("GC worker (idle)", 200_000_000_000),
        ("select", 45_000_000_000),
    ]
    .into_iter()
    .map(|(reason, ns)| WaitTime {
        reason: reason.to_string(),
        goroutine_ns: ns,
    })
    .collect();
    let cpu = profile(
        ProfileKind::Cpu,
        &[
            (
                vec!["main.parse", "main.handle", "main.serve", "main.main"],
                12_000_000_000,
            ),
            (
                vec![
                    "encoding/json.Marshal",
                    "main.handle",
                    "main.serve",
                    "main.main",
                ],
                6_000_000_000,
            ),
            (
                vec![
                    "runtime.mallocgc",
                    "main.parse",
                    "main.handle",
                    "main.serve",
                    "main.main",
                ],
                3_000_000_000,
            ),
            (vec![HOSTILE, "main.serve", "main.main"], 1_000_000_000),
            (
                vec!["runtime.gcBgMarkWorker", "runtime.goexit"],
                2_500_000_000,
            ),
            (
                vec![
                    "syscall.Syscall",
                    "os.(*File).Write",
                    "main.handle",
                    "main.serve",
                    "main.main",
                ],
                800_000_000,
            ),
        ],
    );
    let wall = profile(
        ProfileKind::Wall,
        &[
            (
                vec![
                    "runtime.gopark",
                    "runtime.chansend1",
                    "main.worker",
                    "[chan send]",
                ],
                900_000_000_000,
            ),
            (
                vec![
                    "internal/poll.(*FD).Read",
                    "net/http.(*conn).readRequest",
                    "[IO wait]",
                ],
                1_200_000_000_000,
            ),
            (
                vec!["main.parse", "main.handle", "[running]"],
                60_000_000_000,
            ),
            (
                vec!["sync.(*Mutex).Lock", HOSTILE, "[sync.Mutex.Lock]"],
                14_000_000_000,
            ),
        ],
    );
    Recording {
        format: RECORDING_FORMAT,
        goroscope_version: "0.1.0".to_string(),
        target: Target {
            pid: 4242,
            command: "api-server".to_string(),
            command_line: "/srv/api-server --listen :8080 --name \"<b>\"".to_string(),
            executable: "/srv/api-server".to_string(),
            go_version: Some("go1.24.1".to_string()),
            main_module: Some("example.com/api".to_string()),
            not_go: None,
            host: "web-1".to_string(),
            cpus: 8,
        },
        window: Window {
            started_unix_ns: 1_750_000_000_000_000_000,
            requested_ns: 30_000_000_000,
            recorded_ns: 30_000_000_000,
            interval_ns: INTERVAL_NS,
            ended: Ended::Completed,
        },
        timeline,
        go: Some(GoSection {
            health,
            gc_pauses,
            wait_time,
            skipped_snapshots: 2,
        }),
        cpu_profile: Some(cpu),
        wall_profile: Some(wall),
        syscalls: syscalls(),
        tcp: TcpSection {
            directions: vec![
                TcpDirectionSummary {
                    direction: "inbound".to_string(),
                    opened: 1200,
                    closed: 1180,
                    resets_received: 4,
                    bytes_sent: 80 * 1024 * 1024,
                    bytes_received: 12 * 1024 * 1024,
                    duration_buckets: latency_buckets(&[(40_000_000, 1180)]),
                    ..TcpDirectionSummary::default()
                },
                TcpDirectionSummary {
                    direction: "outbound".to_string(),
                    opened: 300,
                    closed: 300,
                    connect_failures: 7,
                    retransmits: 12,
                    bytes_sent: 2 * 1024 * 1024,
                    bytes_received: 9 * 1024 * 1024,
                    connect_latency_buckets: latency_buckets(&[(300_000, 280), (2_000_000, 27)]),
                    ..TcpDirectionSummary::default()
                },
            ],
            peers: vec![
                TcpPeer {
                    direction: "outbound".to_string(),
                    address: "10.0.0.5".to_string(),
                    port: 5432,
                    connections: 250,
                    bytes_sent: 1024 * 1024,
                    bytes_received: 8 * 1024 * 1024,
                },
                TcpPeer {
                    direction: "inbound".to_string(),
                    address: "10.0.3.17".to_string(),
                    port: 8080,
                    connections: 1200,
                    bytes_sent: 80 * 1024 * 1024,
                    bytes_received: 12 * 1024 * 1024,
                },
            ],
        },
        files: FileSection {
            opens: 420,
            failures: 30,
            paths: vec![
                FileOpens {
                    path: "/etc/app/config.yaml".to_string(),
                    opens: 300,
                    failures: vec![],
                },
                FileOpens {
                    path: "/var/cache/app/missing\u{1b}]0;pwned\u{7}".to_string(),
                    opens: 30,
                    failures: vec![("ENOENT".to_string(), 30)],
                },
            ],
            other_paths: 90,
            lost: 0,
        },
        notes: vec!["Off-CPU profile not recorded: kernel lacks BTF.".to_string()],
    }
}

fn syscalls() -> Vec<SyscallSummary> {
    let call = |name: &str, count: u64, errors: Vec<(&str, u64)>, values: &[(u64, u64)]| {
        let total_ns = values.iter().map(|&(ns, n)| ns * n).sum();
        SyscallSummary {
            name: name.to_string(),
            count,
            errors: errors.iter().map(|&(_, n)| n).sum(),
            errors_by_errno: errors
                .into_iter()
                .map(|(e, n)| (e.to_string(), n))
                .collect(),
            total_ns,
            max_ns: values.iter().map(|&(ns, _)| ns).max().unwrap_or(0),
            timed: count,
            latency_buckets: latency_buckets(values),
        }
    };
    vec![
        call(
            "futex",
            40_000,
            vec![("ETIMEDOUT", 300), ("EAGAIN", 1200)],
            &[(2_000, 30_000), (900_000, 10_000)],
        ),
        call(
            "read",
            90_000,
            vec![("EAGAIN", 45_000)],
            &[(1_500, 80_000), (40_000, 10_000)],
        ),
        call(
            "write",
            60_000,
            vec![("EPIPE", 12)],
            &[(3_000, 59_000), (2_000_000, 1_000)],
        ),
        call("openat", 420, vec![("ENOENT", 30)], &[(8_000, 420)]),
        call("epoll_pwait", 20_000, vec![], &[(5_000_000, 20_000)]),
    ]
}

/// A process that is not Go: no Go section, no wall profile, fds flat with noise.
pub(crate) fn not_go_recording() -> Recording {
    let mut recording = go_recording();
    recording.target.command = "nginx".to_string();
    recording.target.go_version = None;
    recording.target.main_module = None;
    recording.target.not_go = Some("no Go build info in /usr/sbin/nginx".to_string());
    recording.go = None;
    recording.wall_profile = None;
    recording.window.ended = Ended::Exited {
        after_ns: 21_000_000_000,
    };
    recording.window.recorded_ns = 21_000_000_000;
    recording.timeline = (0..210u64)
        .map(|i| TimePoint {
            at_ns: i * INTERVAL_NS,
            threads: Some(4),
            fds: Some(40 + (i * 7919) % 11),
            cpu_ns: Some(i * 10_000_000),
            rss_bytes: Some(12 * 1024 * 1024),
            go: None,
        })
        .collect();
    recording
}
