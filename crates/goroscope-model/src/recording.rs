//! A recording of one process over a window (`goroscope record`): everything the HTML report
//! shows, as plain data. It is what `--format json` writes and `goroscope report DATA.json`
//! reads back, so a report rendered from the JSON is the report rendered at the end of the run.
//!
//! Times inside are nanoseconds since the recording started unless a name says otherwise.
//! Names (commands, paths, functions) are kept as the process gave them; the renderer escapes.

use serde::{Deserialize, Serialize};

use crate::goroutines::HealthReport;
use crate::profile::Profile;

/// The version of this layout. `goroscope report` refuses other versions rather than render a
/// recording it would misread.
pub const RECORDING_FORMAT: u32 = 1;

/// Everything recorded of one process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// [`RECORDING_FORMAT`] when written.
    pub format: u32,
    /// The goroscope version that recorded it.
    pub goroscope_version: String,
    /// The process recorded.
    pub target: Target,
    /// When and how long, and how the recording ended.
    pub window: Window,
    /// One point per interval: what changes over time.
    pub timeline: Vec<TimePoint>,
    /// The Go runtime's view; `None` for a process that is not Go (see `target.not_go`).
    pub go: Option<GoSection>,
    /// On-CPU profile of the process (CPU samples of all its threads).
    pub cpu_profile: Option<Profile>,
    /// Goroutine wall-clock profile (Go only): every goroutine's stack weighted by time, under a
    /// root frame naming its state or wait reason.
    pub wall_profile: Option<Profile>,
    /// Syscalls the process made, most total time first.
    pub syscalls: Vec<SyscallSummary>,
    /// Its TCP activity.
    pub tcp: TcpSection,
    /// Its file opens.
    pub files: FileSection,
    /// What could not be recorded, was lost or is approximate, in words for the reader.
    pub notes: Vec<String>,
}

/// The process recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Process id.
    pub pid: u32,
    /// Its name (`comm`).
    pub command: String,
    /// Its command line, arguments separated by spaces.
    pub command_line: String,
    /// Path of its executable.
    pub executable: String,
    /// Go version it was built with; `None` when not Go.
    pub go_version: Option<String>,
    /// Its main module path (from the Go build info), when known.
    pub main_module: Option<String>,
    /// Why the Go runtime could not be read (not Go, or unreadable), when it could not.
    pub not_go: Option<String>,
    /// The host's name.
    pub host: String,
    /// Online CPUs of the host.
    pub cpus: u32,
}

/// When the recording ran and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start, nanoseconds since the Unix epoch.
    pub started_unix_ns: i64,
    /// Duration asked for.
    pub requested_ns: u64,
    /// Duration recorded.
    pub recorded_ns: u64,
    /// Interval between timeline points (and goroutine snapshots) asked for.
    pub interval_ns: u64,
    /// How it ended.
    pub ended: Ended,
}

/// How a recording ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Ended {
    /// It ran for the duration asked.
    #[default]
    Completed,
    /// Ctrl-C or SIGTERM ended it early.
    Interrupted {
        /// When, since the start.
        after_ns: u64,
    },
    /// The process exited.
    Exited {
        /// When goroscope noticed, since the start.
        after_ns: u64,
    },
    /// The process replaced its program (execve): what followed is another program.
    Exec {
        /// When goroscope noticed, since the start.
        after_ns: u64,
        /// The new program, when known.
        into: String,
    },
}

/// What changes over time, taken once per interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// Since the start.
    pub at_ns: u64,
    /// Threads of the process.
    pub threads: Option<u64>,
    /// Open file descriptors of the process.
    pub fds: Option<u64>,
    /// CPU time the process has used since it started (user + system), nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// The Go runtime at that moment (Go processes, when the snapshot succeeded).
    pub go: Option<GoPoint>,
}

/// One goroutine snapshot's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GoPoint {
    /// Live goroutines by state name (`running`, `runnable`, `waiting`, `syscall`, …), the
    /// runtime's own included.
    pub by_state: Vec<(String, u64)>,
    /// Goroutines created since the process started (`sched.goidgen`).
    pub created_total: u64,
    /// Completed GC cycles since the process started.
    pub gc_cycles: u32,
    /// Heap bytes live or allocated since the last mark.
    pub heap_live_bytes: Option<u64>,
    /// Heap size at which the next GC cycle starts.
    pub heap_goal_bytes: Option<u64>,
    /// Goroutines in the global run queue.
    pub global_runqueue: u32,
    /// Goroutines in all Ps' local run queues.
    pub local_runqueues: u32,
    /// Idle Ps.
    pub idle_ps: u32,
    /// GOMAXPROCS.
    pub gomaxprocs: u32,
}

/// One stop-the-world GC pause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPause {
    /// When it was first seen (the snapshot after it), since the start.
    pub seen_at_ns: u64,
    /// How long the world was stopped.
    pub pause_ns: u64,
}

/// Goroutine time spent in one state or wait reason over the window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitTime {
    /// The state or wait reason, as the runtime names it (`chan receive`, `IO wait`, `running`).
    pub reason: String,
    /// Goroutine-nanoseconds: the sum over goroutines of the time spent so.
    pub goroutine_ns: u64,
}

/// The Go runtime's view of the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GoSection {
    /// The goroutine health model's conclusions at the end (leak suspects, groups, lifetimes,
    /// GC and scheduler summaries).
    pub health: HealthReport,
    /// GC pauses that happened during the window, in order.
    pub gc_pauses: Vec<GcPause>,
    /// Goroutine time by state or wait reason, largest first (the runtime's own goroutines
    /// included, as in the wall-clock profile).
    pub wait_time: Vec<WaitTime>,
    /// Snapshots that failed and were skipped.
    pub skipped_snapshots: u64,
}

/// One syscall's figures for the process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallSummary {
    /// Its name (`read`, `futex`), or `syscall_N`.
    pub name: String,
    /// Calls.
    pub count: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Failures by errno name (`EAGAIN`), most first.
    pub errors_by_errno: Vec<(String, u64)>,
    /// Time in the calls timed, nanoseconds.
    pub total_ns: u64,
    /// Longest call.
    pub max_ns: u64,
    /// Calls whose latency was measured (all of them, or a sample).
    pub timed: u64,
    /// Latency counts in the quarter-octave buckets of [`crate::histogram`].
    pub latency_buckets: Vec<u64>,
}

/// TCP activity of the process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpSection {
    /// Connections by direction.
    pub directions: Vec<TcpDirectionSummary>,
    /// Remote endpoints talked to, most connections first.
    pub peers: Vec<TcpPeer>,
}

/// TCP figures for one direction (outbound connects or inbound accepts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpDirectionSummary {
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Connections established.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Resets sent.
    pub resets_sent: u64,
    /// Resets received.
    pub resets_received: u64,
    /// Retransmitted segments.
    pub retransmits: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Connect latency counts in the quarter-octave buckets.
    pub connect_latency_buckets: Vec<u64>,
    /// Connection duration counts in the quarter-octave buckets.
    pub duration_buckets: Vec<u64>,
}

/// A remote endpoint of the process's TCP connections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpPeer {
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Remote address.
    pub address: String,
    /// Remote port (outbound), or the local port accepted on (inbound).
    pub port: u16,
    /// Connections.
    pub connections: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// File opens of the process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSection {
    /// Opens seen.
    pub opens: u64,
    /// Opens that failed.
    pub failures: u64,
    /// Opens by path, most first (at most [`MAX_FILE_PATHS`] paths; the rest summed in
    /// `other_paths`).
    pub paths: Vec<FileOpens>,
    /// Opens of paths beyond the ones listed.
    pub other_paths: u64,
    /// Open events the kernel dropped (ring buffer full): the counts above miss them.
    pub lost: u64,
}

/// The most distinct paths a recording lists.
pub const MAX_FILE_PATHS: usize = 500;

/// Opens of one path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileOpens {
    /// The path as passed to open.
    pub path: String,
    /// Opens.
    pub opens: u64,
    /// Failures by errno name, most first.
    pub failures: Vec<(String, u64)>,
}

/// Wait categories the report groups states and wait reasons into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitCategory {
    /// On a CPU.
    Running,
    /// Ready, waiting for a CPU.
    Runnable,
    /// Network I/O (`IO wait`).
    NetworkIo,
    /// Channel operations and `select`.
    Channels,
    /// Mutexes, RWMutexes, condition variables, wait groups, semaphores.
    Locks,
    /// In a syscall.
    Syscalls,
    /// `time.Sleep` and timers.
    SleepAndTimers,
    /// The garbage collector (assists, workers, sweeping).
    Gc,
    /// Anything else.
    Other,
}

impl WaitCategory {
    /// Every category, in the order the report lists them.
    pub const ALL: [WaitCategory; 9] = [
        WaitCategory::Running,
        WaitCategory::Runnable,
        WaitCategory::NetworkIo,
        WaitCategory::Channels,
        WaitCategory::Locks,
        WaitCategory::Syscalls,
        WaitCategory::SleepAndTimers,
        WaitCategory::Gc,
        WaitCategory::Other,
    ];

    /// The category of a state or wait reason as the runtime names it.
    pub fn of(reason: &str) -> WaitCategory {
        let r = reason.trim_matches(['[', ']']);
        match r {
            "running" => WaitCategory::Running,
            "runnable" => WaitCategory::Runnable,
            "syscall" => WaitCategory::Syscalls,
            "IO wait" => WaitCategory::NetworkIo,
            "sleep" | "timer goroutine (idle)" => WaitCategory::SleepAndTimers,
            _ if r.starts_with("chan ") || r.starts_with("select") => WaitCategory::Channels,
            _ if r.starts_with("GC ")
                || r.starts_with("garbage collection")
                || r.starts_with("force gc")
                || r.starts_with("finalizer wait")
                || r.starts_with("cleanup wait") =>
            {
                WaitCategory::Gc
            }
            _ if r.starts_with("sync.")
                || r.starts_with("semacquire")
                || r.starts_with("sync ")
                || r.contains("Mutex")
                || r.contains("WaitGroup") =>
            {
                WaitCategory::Locks
            }
            _ => WaitCategory::Other,
        }
    }

    /// Its name for people.
    pub fn name(self) -> &'static str {
        match self {
            WaitCategory::Running => "running",
            WaitCategory::Runnable => "runnable (waiting for a CPU)",
            WaitCategory::NetworkIo => "network I/O",
            WaitCategory::Channels => "channels",
            WaitCategory::Locks => "locks",
            WaitCategory::Syscalls => "syscalls",
            WaitCategory::SleepAndTimers => "sleep and timers",
            WaitCategory::Gc => "GC",
            WaitCategory::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_reasons_fall_into_their_categories() {
        let cases = [
            ("[chan receive]", WaitCategory::Channels),
            ("chan send (nil chan)", WaitCategory::Channels),
            ("select", WaitCategory::Channels),
            ("select (no cases)", WaitCategory::Channels),
            ("IO wait", WaitCategory::NetworkIo),
            ("sync.Mutex.Lock", WaitCategory::Locks),
            ("sync.RWMutex.RLock", WaitCategory::Locks),
            ("sync.WaitGroup.Wait", WaitCategory::Locks),
            ("sync.Cond.Wait", WaitCategory::Locks),
            ("semacquire", WaitCategory::Locks),
            ("sleep", WaitCategory::SleepAndTimers),
            ("GC assist wait", WaitCategory::Gc),
            ("GC worker (idle)", WaitCategory::Gc),
            ("force gc (idle)", WaitCategory::Gc),
            ("finalizer wait", WaitCategory::Gc),
            ("syscall", WaitCategory::Syscalls),
            ("running", WaitCategory::Running),
            ("runnable", WaitCategory::Runnable),
            ("debug call", WaitCategory::Other),
        ];
        for (reason, category) in cases {
            assert_eq!(WaitCategory::of(reason), category, "{reason}");
        }
    }

    #[test]
    fn a_recording_survives_json() {
        let recording = Recording {
            format: RECORDING_FORMAT,
            window: Window {
                ended: Ended::Exited { after_ns: 5 },
                ..Window::default()
            },
            timeline: vec![TimePoint {
                at_ns: 1,
                fds: Some(3),
                go: Some(GoPoint {
                    by_state: vec![("waiting".into(), 2)],
                    ..GoPoint::default()
                }),
                ..TimePoint::default()
            }],
            go: Some(GoSection::default()),
            cpu_profile: Some(Profile::new(crate::profile::ProfileKind::Cpu)),
            ..Recording::default()
        };
        let text = serde_json::to_string(&recording).expect("serializes");
        assert!(text.contains(r#""how":"exited","after_ns":5"#), "{text}");
        let back: Recording = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, recording);
    }
}
