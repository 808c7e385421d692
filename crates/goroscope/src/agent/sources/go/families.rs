//! The Go families and their label model: what a Go process is (`service`, `executable`), which
//! families are per process (gauges: always a `pid` label, whatever the config says) and which
//! add up (counters: summed per service, executable and configured process labels, and kept
//! through process exits, unless the config asks for `pid`).

use std::collections::HashMap;
use std::path::Path;

use goroscope_export::{BucketLayout, Exposition, Family, Labels};
use goroscope_gobin::buildinfo::BuildInfo;
use goroscope_model::goroutines::health_report::{HealthReport, LeakSuspect};
use goroscope_model::LatencyHistogram;

use crate::agent::ledger::Owner;
use crate::agent::series::{LabelPlan, Summed};

/// What a Go process runs, as labels: two processes of one program share it, a different
/// binary (or the same one under another name) does not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Program {
    /// The main package path from the binary's build info (`go version -m`'s `path` line, e.g.
    /// `github.com/prometheus/prometheus/cmd/prometheus`), or the executable's name when the
    /// binary has none (or was built from files: `command-line-arguments`).
    pub service: String,
    /// The executable's file name as `/proc/PID/exe` resolves it, without ` (deleted)`.
    pub executable: String,
}

impl Program {
    /// The program of a process whose executable is `exe` (the target of `/proc/PID/exe`) and
    /// whose binary holds `build`; `comm` names it when `exe` has no file name.
    pub fn new(exe: &Path, build: &BuildInfo, comm: &str) -> Program {
        let executable = executable_name(exe).unwrap_or_else(|| comm.to_owned());
        // The main module (`mod` line) says what the program is part of; binaries built outside
        // module mode (Debian's) have only the main package's path.
        let named = |path: &Option<String>| {
            path.as_deref()
                .filter(|p| !p.is_empty() && *p != "command-line-arguments")
                .map(str::to_owned)
        };
        let service = named(&build.main_module)
            .or_else(|| named(&build.main_path))
            .unwrap_or_else(|| executable.clone());
        Program {
            service,
            executable,
        }
    }

    /// `service` and `executable`, then the process labels `plan` asks for.
    fn labels(&self, plan: &LabelPlan, owner: &Owner, pid: Option<u32>) -> Labels {
        let labels = Labels::new()
            .push("service", self.service.clone())
            .push("executable", self.executable.clone());
        plan.extend(labels, owner, pid)
    }
}

/// The file name of `exe`, without the ` (deleted)` the kernel appends to a removed file.
fn executable_name(exe: &Path) -> Option<String> {
    let name = exe.file_name()?.to_string_lossy();
    let name = name.strip_suffix(" (deleted)").unwrap_or(&name);
    (!name.is_empty()).then(|| name.to_owned())
}

/// What ended Go processes of one (owner, program) counted, so counters summed over them never
/// go back.
#[derive(Clone, Debug, Default)]
pub struct Retired {
    /// Goroutines they created.
    pub created: u64,
    /// GC cycles they completed.
    pub gc_cycles: u64,
    /// Their GC pauses seen while watched.
    pub pauses: LatencyHistogram,
    /// The sum of those pauses.
    pub pause_sum_ns: u64,
}

impl Retired {
    /// Adds what a process that ended counted: its last report and the pauses seen.
    pub fn add(&mut self, report: Option<&HealthReport>, pauses: &LatencyHistogram, sum_ns: u64) {
        if let Some(report) = report {
            self.created = self.created.saturating_add(report.created_total);
            self.gc_cycles = self.gc_cycles.saturating_add(u64::from(report.gc.cycles));
        }
        self.pauses.merge(pauses);
        self.pause_sum_ns = self.pause_sum_ns.saturating_add(sum_ns);
    }
}

/// One watched Go process, as the families see it.
pub struct ProcessView<'a> {
    /// Its pid.
    pub pid: u32,
    /// Its process labels (comm, cgroup, container id).
    pub owner: &'a Owner,
    /// What it runs.
    pub program: &'a Program,
    /// The Go that built it.
    pub go_version: &'a str,
    /// Its latest health report; `None` before the first snapshot.
    pub report: Option<&'a HealthReport>,
    /// GC pauses seen since it was attached.
    pub pauses: &'a LatencyHistogram,
    /// Their sum.
    pub pause_sum_ns: u64,
}

/// Adds the Go families for `processes` and, unless `plan` has a `pid` label, what `retired`
/// processes counted.
///
/// Gauges describe one process (a goroutine count, a heap goal, GOMAXPROCS): summing two of them
/// means nothing, so they always carry `pid`. Counters count events (goroutines created, GC
/// cycles, pauses) and add up: without a configured `pid` label they are summed per
/// (service, executable, process labels), ended processes included, so they never go back.
pub fn add<'a>(
    processes: impl IntoIterator<Item = ProcessView<'a>>,
    retired: impl IntoIterator<Item = (&'a Owner, &'a Program, &'a Retired)>,
    plan: &LabelPlan,
    layout: &BucketLayout,
    out: &mut Exposition,
) {
    let per_process = LabelPlan { pid: true, ..*plan };
    // Gauges: the pid label makes every label set one process's; `Summed` only adds up leak
    // groups of one process that share their labels.
    let mut goroutines = Summed::gauge(
        "goroscope_go_goroutines",
        "Goroutines of the Go process by state, as Go counts them (runtime.NumGoroutine(): \
         without the runtime's own, which goroscope_go_runtime_goroutines counts).",
    );
    let mut runtime = Summed::gauge(
        "goroscope_go_runtime_goroutines",
        "The Go runtime's own goroutines in the process (GC workers, sweeper, scavenger, \
         finalizer, ...), which runtime.NumGoroutine() leaves out.",
    );
    let mut waiting = Summed::gauge(
        "goroscope_go_goroutines_waiting",
        "Waiting goroutines of the Go process (the runtime's own left out) by wait reason, \
         the runtime's own names.",
    );
    let mut suspects = Summed::gauge(
        "goroscope_go_leak_suspects",
        "Goroutines of the Go process blocked past leak_after in a leak-suspect group: stuck \
         on an operation that does not end (a send nobody receives, a nil channel, select {}, \
         a lock held far past any critical section, or proven leaked by the GC), growing while \
         its members stay, or both (evidence); by where they were created and where they block.",
    );
    let mut heap = Summed::gauge(
        "goroscope_go_heap_bytes",
        "Heap bytes of the Go process: live (marked live or allocated since the last GC) and \
         the goal at which the next GC starts.",
    );
    let mut procs = Summed::gauge("goroscope_go_gomaxprocs", "GOMAXPROCS of the Go process.");
    let mut runqueue = Summed::gauge(
        "goroscope_go_runqueue_goroutines",
        "Runnable goroutines of the Go process waiting in the global run queue or in its \
         per-P local queues.",
    );
    // Counters and the process count: summed per label set (per process with a pid label).
    let mut created = Summed::counter(
        "goroscope_go_goroutines_created_total",
        "Goroutines created (the runtime's goroutine id counter), summed over the processes \
         of the label set, those that ended included.",
    );
    let mut cycles = Summed::counter(
        "goroscope_go_gc_cycles_total",
        "Completed GC cycles, summed over the processes of the label set, those that ended \
         included.",
    );
    let mut info = Summed::gauge(
        "goroscope_go_processes",
        "Go processes being watched, by Go version.",
    );
    let mut pauses: HashMap<Labels, (LatencyHistogram, u64)> = HashMap::new();
    for p in processes {
        let counted = p.program.labels(plan, p.owner, Some(p.pid));
        let process = p.program.labels(&per_process, p.owner, Some(p.pid));
        info.add(counted.clone().push("go_version", p.go_version), 1.0);
        let (hist, sum) = pauses.entry(counted.clone()).or_default();
        hist.merge(p.pauses);
        *sum = sum.saturating_add(p.pause_sum_ns);
        let Some(report) = p.report else {
            continue;
        };
        created.add(counted.clone(), report.created_total as f64);
        cycles.add(counted, f64::from(report.gc.cycles));
        for (state, n) in &report.by_state {
            goroutines.add(process.clone().push("state", state.clone()), *n as f64);
        }
        runtime.add(process.clone(), report.runtime_goroutines as f64);
        for (reason, n) in &report.by_wait_reason {
            waiting.add(
                process.clone().push("wait_reason", reason.clone()),
                *n as f64,
            );
        }
        for s in &report.leak_suspects {
            suspects.add(
                process
                    .clone()
                    .push("evidence", evidence(s))
                    .push("created_at", location(&s.creation.file, s.creation.line))
                    .push(
                        "blocked_at",
                        location(&s.blocked_at.file, s.blocked_at.line),
                    )
                    .push("wait_reason", s.wait_reason.clone())
                    .push("start_function", s.start_function.clone()),
                s.count as f64,
            );
        }
        if let Some(live) = report.gc.heap_live_bytes {
            heap.add(process.clone().push("kind", "live"), live as f64);
        }
        if let Some(goal) = report.gc.heap_goal_bytes {
            heap.add(process.clone().push("kind", "goal"), goal as f64);
        }
        let sched = &report.scheduler.latest;
        procs.add(process.clone(), f64::from(sched.gomaxprocs));
        runqueue.add(
            process.clone().push("queue", "global"),
            f64::from(sched.global_runqueue),
        );
        let local: u64 = sched.local_runqueues.iter().map(|&n| u64::from(n)).sum();
        runqueue.add(process.push("queue", "local"), local as f64);
    }
    if !plan.pid {
        for (owner, program, r) in retired {
            let labels = program.labels(plan, owner, None);
            created.add(labels.clone(), r.created as f64);
            cycles.add(labels.clone(), r.gc_cycles as f64);
            let (hist, sum) = pauses.entry(labels).or_default();
            hist.merge(&r.pauses);
            *sum = sum.saturating_add(r.pause_sum_ns);
        }
    }
    let mut pause_family = Family::histogram(
        "goroscope_go_gc_pause_seconds",
        "Stop-the-world GC pauses seen since the agent attached, summed over the processes of \
         the label set, those that ended included.",
    );
    for (labels, (hist, sum)) in pauses {
        pause_family.add_latency(labels, layout, &hist, sum);
    }
    out.push(pause_family);
    for family in [
        goroutines, runtime, waiting, suspects, heap, procs, runqueue, created, cycles, info,
    ] {
        out.push(family.finish());
    }
}

/// Why a group is a leak suspect. The leak rule makes every suspect stuck, growing or both.
fn evidence(s: &LeakSuspect) -> &'static str {
    match (s.stuck, s.growing) {
        (true, true) => "stuck and growing",
        (false, true) => "growing",
        _ => "stuck",
    }
}

fn location(file: &str, line: u32) -> String {
    if file.is_empty() {
        "unknown".into()
    } else {
        format!("{file}:{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goroscope_export::Format;
    use goroscope_model::goroutines::snapshot::CodeLocation;

    fn owner() -> Owner {
        Owner {
            comm: "prometheus-node".into(),
            cgroup: "/".into(),
            container_id: String::new(),
        }
    }

    fn program(executable: &str) -> Program {
        Program {
            service: "github.com/prometheus/node_exporter".into(),
            executable: executable.into(),
        }
    }

    fn report(gomaxprocs: u32, created: u64) -> HealthReport {
        let mut report = HealthReport {
            created_total: created,
            by_state: vec![("waiting".into(), 7)],
            runtime_goroutines: 4,
            ..HealthReport::default()
        };
        report.scheduler.latest.gomaxprocs = gomaxprocs;
        report.gc.heap_goal_bytes = Some(4 << 20);
        report
    }

    fn render(out: &Exposition) -> Vec<String> {
        let mut text = Vec::new();
        out.render(Format::PrometheusText, &mut text);
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    fn lines<'t>(text: &'t [String], family: &str) -> Vec<&'t str> {
        text.iter()
            .map(String::as_str)
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .collect()
    }

    /// Two node_exporters (pids 10 and 11) of one binary, and one that ended.
    fn expose(plan: &LabelPlan) -> Vec<String> {
        let (o, p, none) = (owner(), program("node_exporter"), LatencyHistogram::new());
        let (r10, r11) = (report(2, 100), report(8, 50));
        let view = |pid, report| ProcessView {
            pid,
            owner: &o,
            program: &p,
            go_version: "go1.26.8",
            report: Some(report),
            pauses: &none,
            pause_sum_ns: 0,
        };
        let ended = Retired {
            created: 1000,
            ..Retired::default()
        };
        let layout = BucketLayout::new(1, 1_000, 1_000_000).expect("a layout");
        let mut out = Exposition::new();
        add(
            [view(10, &r10), view(11, &r11)],
            [(&o, &p, &ended)],
            plan,
            &layout,
            &mut out,
        );
        render(&out)
    }

    const DEFAULT: LabelPlan = LabelPlan {
        pid: false,
        cgroup: true,
        container_id: false,
        departed: false,
    };

    #[test]
    fn gauges_are_per_process_whatever_the_labels() {
        let text = expose(&DEFAULT);
        let service = r#"service="github.com/prometheus/node_exporter",executable="node_exporter""#;
        assert_eq!(
            lines(&text, "goroscope_go_gomaxprocs"),
            [
                format!(
                    r#"goroscope_go_gomaxprocs{{{service},comm="prometheus-node",pid="10",cgroup="/"}} 2"#
                ),
                format!(
                    r#"goroscope_go_gomaxprocs{{{service},comm="prometheus-node",pid="11",cgroup="/"}} 8"#
                ),
            ]
        );
        for family in [
            "goroscope_go_goroutines",
            "goroscope_go_runtime_goroutines",
            "goroscope_go_heap_bytes",
            "goroscope_go_runqueue_goroutines",
        ] {
            let found = lines(&text, family);
            assert!(
                found.iter().filter(|l| l.contains(r#"pid="10""#)).count() >= 1
                    && found.iter().all(|l| l.contains("pid=")),
                "{family}: {found:?}"
            );
        }
    }

    #[test]
    fn counters_add_up_per_program_with_the_processes_that_ended() {
        let text = expose(&DEFAULT);
        assert_eq!(
            lines(&text, "goroscope_go_goroutines_created_total"),
            [
                r#"goroscope_go_goroutines_created_total{service="github.com/prometheus/node_exporter",executable="node_exporter",comm="prometheus-node",cgroup="/"} 1150"#
            ]
        );
        assert_eq!(
            lines(&text, "goroscope_go_processes"),
            [
                r#"goroscope_go_processes{service="github.com/prometheus/node_exporter",executable="node_exporter",comm="prometheus-node",cgroup="/",go_version="go1.26.8"} 2"#
            ]
        );
    }

    #[test]
    fn with_a_pid_label_counters_are_per_process_and_end_with_it() {
        let text = expose(&LabelPlan {
            pid: true,
            ..DEFAULT
        });
        let created = lines(&text, "goroscope_go_goroutines_created_total");
        assert_eq!(created.len(), 2, "{created:?}");
        assert!(created[0].contains(r#"pid="10""#) && created[0].ends_with(" 100"));
        assert!(created[1].contains(r#"pid="11""#) && created[1].ends_with(" 50"));
        assert_eq!(lines(&text, "goroscope_go_gomaxprocs").len(), 2);
    }

    #[test]
    fn a_program_is_its_main_module_or_main_package_or_else_its_executable() {
        let build = BuildInfo {
            main_module: Some("github.com/prometheus/prometheus".into()),
            main_path: Some("github.com/prometheus/prometheus/cmd/promtool".into()),
            ..BuildInfo::default()
        };
        let p = Program::new(Path::new("/usr/bin/promtool"), &build, "promtool");
        assert_eq!(
            (p.service.as_str(), p.executable.as_str()),
            ("github.com/prometheus/prometheus", "promtool")
        );
        // Debian's binaries were built outside module mode: only the main package.
        let build = BuildInfo {
            main_path: Some("github.com/prometheus/prometheus/cmd/prometheus".into()),
            ..BuildInfo::default()
        };
        assert_eq!(
            Program::new(
                Path::new("/usr/bin/prometheus (deleted)"),
                &build,
                "prometheus"
            ),
            Program {
                service: "github.com/prometheus/prometheus/cmd/prometheus".into(),
                executable: "prometheus".into(),
            }
        );
        for main_path in [None, Some("command-line-arguments".to_owned())] {
            let build = BuildInfo {
                main_path,
                ..BuildInfo::default()
            };
            let p = Program::new(Path::new("/opt/app/app-v2"), &build, "app-v2");
            assert_eq!(
                (p.service.as_str(), p.executable.as_str()),
                ("app-v2", "app-v2")
            );
        }
        let p = Program::new(Path::new("/"), &BuildInfo::default(), "app");
        assert_eq!(p.executable, "app");
    }

    fn nowhere() -> CodeLocation {
        CodeLocation {
            function: String::new(),
            file: String::new(),
            line: 0,
        }
    }

    #[test]
    fn leak_evidence_names_the_rule_that_matched() {
        let suspect = |stuck, growing| LeakSuspect {
            count: 1,
            recently_blocked: 0,
            wait_reason: "chan send".into(),
            start_function: String::new(),
            creation: nowhere(),
            blocked_at: nowhere(),
            min_blocked_ns: 0,
            leak_score: 0.5,
            reason: String::new(),
            stuck,
            growing,
            growth: 0,
            growth_per_minute: 0.0,
            released: 0,
        };
        assert_eq!(evidence(&suspect(true, false)), "stuck");
        assert_eq!(evidence(&suspect(false, true)), "growing");
        assert_eq!(evidence(&suspect(true, true)), "stuck and growing");
    }
}
