//! The kernel's side of a recording: the process's syscalls, TCP connections and file opens,
//! and its CPU profile, each collected in the kernel for the one pid. Each is optional: one the
//! kernel refuses is left out and the report says why, the others go on.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use goroscope_bpf::syscalls::SyscallOptions;
use goroscope_bpf::{
    AttachMode, EventCollector, EventObjects, EventOptions, EventStream, ProcessFilter,
    SyscallCollector, TcpCollector,
};
use goroscope_model::recording::{
    FileOpens, FileSection, SyscallSummary, TcpDirectionSummary, TcpPeer, TcpSection,
    MAX_FILE_PATHS,
};
use goroscope_model::{errno_name, EventDetail, EventKind, SyscallRow};
use goroscope_profiler::CpuProfile;
use libbpf_rs::OpenObject;

/// CPU samples per second per CPU.
pub const CPU_FREQUENCY: u32 = 99;
/// The CPU sampler's counts are read every this many ticks.
const CPU_COUNT_EVERY: u64 = 10;
/// Ring buffer for open events of one process.
const OPEN_RING_BYTES: u32 = 4 * 1024 * 1024;
/// Distinct paths counted before further paths are only summed (memory stays bounded whatever
/// the process opens).
const MAX_TRACKED_PATHS: usize = 20_000;

/// Where the BPF objects live while the collectors run (each collector borrows its own).
pub struct Storage {
    syscalls: MaybeUninit<OpenObject>,
    tcp: MaybeUninit<OpenObject>,
    events: EventObjects,
    cpu: MaybeUninit<OpenObject>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            syscalls: MaybeUninit::uninit(),
            tcp: MaybeUninit::uninit(),
            events: EventObjects::default(),
            cpu: MaybeUninit::uninit(),
        }
    }
}

/// Opens of one path so far.
#[derive(Default)]
struct PathOpens {
    opens: u64,
    failures: HashMap<i64, u64>,
}

/// The running kernel collectors.
pub struct KernelSources<'s> {
    syscalls: Option<SyscallCollector<'s>>,
    tcp: Option<TcpCollector<'s>>,
    opens: Option<(EventCollector<'s>, EventStream)>,
    cpu: Option<CpuProfile<'s>>,
    by_path: HashMap<Vec<u8>, PathOpens>,
    other_paths: u64,
    malformed_events: u64,
    ticks: u64,
    /// What could not be started or read, for the report.
    pub notes: Vec<String>,
}

/// What the kernel collectors gathered.
pub struct KernelResults {
    pub syscalls: Vec<SyscallSummary>,
    pub tcp: TcpSection,
    pub files: FileSection,
    pub cpu_profile: Option<goroscope_model::profile::Profile>,
    pub notes: Vec<String>,
}

impl<'s> KernelSources<'s> {
    /// Starts every collector for `pid`; those that fail are noted and left out.
    pub fn start(
        storage: &'s mut Storage,
        mode: AttachMode,
        pid: u32,
        proc_root: &Path,
    ) -> KernelSources<'s> {
        let filter = ProcessFilter {
            pids: vec![pid],
            comm: None,
            include_self: false,
        };
        let mut notes = Vec::new();
        let mut note = |what: &str, error: &dyn std::fmt::Display| {
            notes.push(format!("{what} could not be recorded: {error}"));
        };
        let syscalls = match SyscallCollector::start_with(
            &mut storage.syscalls,
            &filter,
            SyscallOptions::default(),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                note("syscalls", &e);
                None
            }
        };
        let tcp = match TcpCollector::start(&mut storage.tcp, mode, &filter) {
            Ok(c) => {
                // A server listens long before it is recorded: its listening ports are found
                // in /proc, or none of its accepted connections would be counted.
                let procfs = goroscope_host::ProcFs::new(proc_root);
                if let Err(e) = crate::tcp_seed::seed_listeners(&c, &procfs, &filter) {
                    note(
                        "inbound connections on ports opened before the recording",
                        &e,
                    );
                }
                Some(c)
            }
            Err(e) => {
                note("TCP connections", &e);
                None
            }
        };
        let options = EventOptions {
            kinds: vec![EventKind::Open],
            capture_args: false,
            filter: filter.clone(),
            ring_bytes: OPEN_RING_BYTES,
        };
        let opens = match EventCollector::start(&mut storage.events, mode, &options)
            .and_then(|c| c.stream().map(|s| (c, s)))
        {
            Ok(pair) => Some(pair),
            Err(e) => {
                note("file opens", &e);
                None
            }
        };
        let cpu = match CpuProfile::start(&mut storage.cpu, &filter, CPU_FREQUENCY, proc_root) {
            Ok(c) => Some(c),
            Err(e) => {
                note("the CPU profile", &e);
                None
            }
        };
        KernelSources {
            syscalls,
            tcp,
            opens,
            cpu,
            by_path: HashMap::new(),
            other_paths: 0,
            malformed_events: 0,
            ticks: 0,
            notes,
        }
    }

    /// Reads what is pending (open events, the CPU sampler's counts). Call it often enough that
    /// the open events' ring does not fill (every 100 ms is plenty).
    pub fn tick(&mut self) {
        if let Some((_, stream)) = &mut self.opens {
            loop {
                match stream.next(Duration::ZERO) {
                    Ok(Some(event)) => match event.decode() {
                        Ok(event) => {
                            if let EventDetail::Open { path, ret, .. } = event.detail {
                                count_open(&mut self.by_path, &mut self.other_paths, path, ret);
                            }
                        }
                        Err(_) => self.malformed_events += 1,
                    },
                    Ok(None) => break,
                    Err(e) => {
                        self.notes.push(format!("reading file opens stopped: {e}"));
                        self.opens = None;
                        break;
                    }
                }
            }
        }
        self.ticks += 1;
        if let Some(cpu) = &mut self.cpu {
            // Label sets are read while their goroutines still hold them; the counts (a pass
            // over the whole sample map) once a second, as `goroscope profile` does.
            if !self.ticks.is_multiple_of(CPU_COUNT_EVERY) {
                cpu.read_new_labels();
            } else if let Err(e) = cpu.tick() {
                self.notes
                    .push(format!("the CPU profile stopped early: {e}"));
                self.cpu = None;
            }
        }
    }

    /// CPU samples so far.
    pub fn cpu_samples(&self) -> u64 {
        self.cpu.as_ref().map_or(0, |c| c.samples_so_far())
    }

    /// Stops every collector and gathers what they counted.
    pub fn finish(mut self) -> KernelResults {
        self.tick();
        let mut notes = std::mem::take(&mut self.notes);
        let syscalls = match self.syscalls.take().map(|c| (c.rows(), c.losses())) {
            Some((Ok(rows), losses)) => {
                if let Ok(losses) = losses {
                    for (reason, count) in losses.nonzero() {
                        notes.push(format!("syscalls: {count} lost in the kernel ({reason})"));
                    }
                }
                summarize_syscalls(rows)
            }
            Some((Err(e), _)) => {
                notes.push(format!("syscalls could not be read: {e}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        let tcp = match &self.tcp {
            Some(c) => match (c.rows(), c.edges()) {
                (Ok(rows), Ok(edges)) => summarize_tcp(rows, edges),
                (Err(e), _) | (_, Err(e)) => {
                    notes.push(format!("TCP connections could not be read: {e}"));
                    TcpSection::default()
                }
            },
            None => TcpSection::default(),
        };
        drop(self.tcp.take());
        let mut lost_opens = 0;
        if let Some((collector, mut stream)) = self.opens.take() {
            if let Ok(rest) = stream.finish() {
                for event in rest {
                    if let Ok(event) = event.decode() {
                        if let EventDetail::Open { path, ret, .. } = event.detail {
                            count_open(&mut self.by_path, &mut self.other_paths, path, ret);
                        }
                    }
                }
            }
            lost_opens = collector.losses().map_or(0, |l| l.total()) + stream.queue_drops();
        }
        if self.malformed_events > 0 {
            notes.push(format!(
                "{} file open events could not be decoded",
                self.malformed_events
            ));
        }
        let files = summarize_files(self.by_path, self.other_paths, lost_opens);
        let cpu_profile = match self.cpu.take().map(|c| c.finish()) {
            Some(Ok((profile, summary))) => {
                for comment in &profile.comments {
                    if comment.contains("dropped") || comment.contains("no user stack") {
                        notes.push(format!("CPU profile: {comment}"));
                    }
                }
                if summary.samples == 0 {
                    notes.push("the CPU profile has no samples: the process used no CPU".into());
                }
                Some(profile)
            }
            Some(Err(e)) => {
                notes.push(format!("the CPU profile could not be read: {e}"));
                None
            }
            None => None,
        };
        KernelResults {
            syscalls,
            tcp,
            files,
            cpu_profile,
            notes,
        }
    }
}

fn count_open(by_path: &mut HashMap<Vec<u8>, PathOpens>, other: &mut u64, path: &[u8], ret: i64) {
    if !by_path.contains_key(path) {
        if by_path.len() >= MAX_TRACKED_PATHS {
            *other += 1;
            return;
        }
        by_path.insert(path.to_vec(), PathOpens::default());
    }
    let Some(entry) = by_path.get_mut(path) else {
        return;
    };
    entry.opens += 1;
    if ret < 0 {
        *entry.failures.entry(-ret).or_default() += 1;
    }
}

/// Failures by errno name, most first.
fn by_errno(failures: impl IntoIterator<Item = (i64, u64)>) -> Vec<(String, u64)> {
    let mut named: Vec<(String, u64)> = failures
        .into_iter()
        .map(|(errno, n)| {
            let name = u32::try_from(errno)
                .ok()
                .and_then(errno_name)
                .map_or_else(|| format!("errno {errno}"), str::to_string);
            (name, n)
        })
        .collect();
    named.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    named
}

fn summarize_files(
    by_path: HashMap<Vec<u8>, PathOpens>,
    other_paths: u64,
    lost: u64,
) -> FileSection {
    let mut section = FileSection {
        lost,
        ..FileSection::default()
    };
    let mut paths: Vec<FileOpens> = by_path
        .into_iter()
        .map(|(path, opens)| {
            section.opens += opens.opens;
            section.failures += opens.failures.values().sum::<u64>();
            FileOpens {
                path: String::from_utf8_lossy(&path).into_owned(),
                opens: opens.opens,
                failures: by_errno(opens.failures),
            }
        })
        .collect();
    section.opens += other_paths;
    // Paths with failures first among equals: they are what a reader looks for.
    paths.sort_by(|a, b| {
        b.opens
            .cmp(&a.opens)
            .then_with(|| b.failures.len().cmp(&a.failures.len()))
            .then_with(|| a.path.cmp(&b.path))
    });
    if paths.len() > MAX_FILE_PATHS {
        section.other_paths =
            other_paths + paths[MAX_FILE_PATHS..].iter().map(|p| p.opens).sum::<u64>();
        paths.truncate(MAX_FILE_PATHS);
    } else {
        section.other_paths = other_paths;
    }
    section.paths = paths;
    section
}

fn summarize_syscalls(rows: Vec<SyscallRow>) -> Vec<SyscallSummary> {
    // One process: rows differ only by syscall (and by comm when it renamed itself).
    let mut by_nr: HashMap<u32, SyscallRow> = HashMap::new();
    for row in rows {
        match by_nr.get_mut(&row.syscall_nr) {
            Some(sum) => {
                sum.count += row.count;
                sum.error_count += row.error_count;
                for (errno, n) in &row.errors {
                    *sum.errors.entry(*errno).or_default() += n;
                }
                sum.total_ns += row.total_ns;
                sum.max_ns = sum.max_ns.max(row.max_ns);
                sum.timed += row.timed;
                sum.histogram.merge(&row.histogram);
            }
            None => {
                by_nr.insert(row.syscall_nr, row);
            }
        }
    }
    let mut summaries: Vec<SyscallSummary> = by_nr
        .into_values()
        .map(|row| SyscallSummary {
            name: goroscope_model::syscall_name(row.syscall_nr)
                .map_or_else(|| format!("syscall_{}", row.syscall_nr), str::to_string),
            count: row.count,
            errors: row.error_count,
            errors_by_errno: by_errno(row.errors.iter().map(|(&e, &n)| (i64::from(e), n))),
            total_ns: row.total_ns,
            max_ns: row.max_ns,
            timed: row.timed,
            latency_buckets: row.histogram.buckets().to_vec(),
        })
        .collect();
    summaries.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.name.cmp(&b.name))
    });
    summaries
}

fn summarize_tcp(
    rows: Vec<goroscope_model::tcp_stats::TcpRow>,
    edges: Vec<goroscope_model::tcp_stats::TcpEdge>,
) -> TcpSection {
    let mut directions: Vec<TcpDirectionSummary> = Vec::new();
    for row in rows {
        let name = row.direction.as_str();
        let index = match directions.iter().position(|d| d.direction == name) {
            Some(i) => i,
            None => {
                directions.push(TcpDirectionSummary {
                    direction: name.to_string(),
                    connect_latency_buckets: vec![0; goroscope_model::LATENCY_BUCKETS],
                    duration_buckets: vec![0; goroscope_model::LATENCY_BUCKETS],
                    ..TcpDirectionSummary::default()
                });
                directions.len() - 1
            }
        };
        let d = &mut directions[index];
        d.opened += row.opened;
        d.closed += row.closed;
        d.connect_failures += row.connect_failures;
        d.resets_sent += row.resets_sent;
        d.resets_received += row.resets_received;
        d.retransmits += row.retransmits;
        d.bytes_sent += row.bytes_sent;
        d.bytes_received += row.bytes_received;
        for (sum, n) in d
            .connect_latency_buckets
            .iter_mut()
            .zip(row.connect_latency.buckets())
        {
            *sum += n;
        }
        for (sum, n) in d.duration_buckets.iter_mut().zip(row.duration.buckets()) {
            *sum += n;
        }
    }
    directions.sort_by(|a, b| a.direction.cmp(&b.direction));
    let mut peers: Vec<TcpPeer> = edges
        .into_iter()
        .map(|edge| TcpPeer {
            direction: edge.direction.as_str().to_string(),
            address: edge.remote.to_string(),
            port: edge.port,
            connections: edge.connections,
            bytes_sent: edge.bytes_sent,
            bytes_received: edge.bytes_received,
        })
        .collect();
    peers.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.address.cmp(&b.address))
            .then_with(|| a.port.cmp(&b.port))
    });
    TcpSection { directions, peers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_opens_are_counted_by_path_and_errno_and_bounded() {
        let mut by_path = HashMap::new();
        let mut other = 0;
        for _ in 0..3 {
            count_open(&mut by_path, &mut other, b"/etc/hosts", 3);
        }
        count_open(&mut by_path, &mut other, b"/missing", -2);
        count_open(&mut by_path, &mut other, b"/missing", -2);
        count_open(&mut by_path, &mut other, b"/secret", -13);
        let files = summarize_files(by_path, other, 4);
        assert_eq!((files.opens, files.failures, files.lost), (6, 3, 4));
        assert_eq!(files.paths[0].path, "/etc/hosts");
        assert_eq!(files.paths[1].path, "/missing");
        assert_eq!(files.paths[1].failures, vec![("ENOENT".to_string(), 2)]);
        assert_eq!(files.paths[2].failures, vec![("EACCES".to_string(), 1)]);

        let mut by_path = HashMap::new();
        let mut other = 0;
        for i in 0..MAX_TRACKED_PATHS + 10 {
            count_open(&mut by_path, &mut other, format!("/f{i}").as_bytes(), 3);
        }
        assert_eq!(by_path.len(), MAX_TRACKED_PATHS);
        let files = summarize_files(by_path, other, 0);
        assert_eq!(files.opens, (MAX_TRACKED_PATHS + 10) as u64);
        assert_eq!(files.paths.len(), MAX_FILE_PATHS);
        assert_eq!(
            files.other_paths,
            (MAX_TRACKED_PATHS + 10 - MAX_FILE_PATHS) as u64
        );
    }
}
