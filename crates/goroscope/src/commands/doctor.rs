//! `goroscope doctor`: what this kernel and machine allow, and a self-test of
//! every collector (load, attach, observe a known action, count losses).

use std::mem::MaybeUninit;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod go_reader;

use goroscope_bpf::privileges::{bpf_allowed, Refusal, HOW_TO_GRANT};
use goroscope_bpf::tracefs::{self, Tracefs};
use goroscope_bpf::{
    probe_program, AttachMode, EventCollector, EventObjects, EventOptions, Losses, Privileges,
    ProcessFilter, ProgramKind, SyscallCollector,
};
use goroscope_model::{syscall_names::SYS_GETPPID, EventDetail, EventKind};
use libbpf_rs::MapType;
use serde::Serialize;

use super::PROC_ROOT;
use crate::cli::{DoctorArgs, DoctorFormat};
use crate::output::doctor::{write_json, write_table};

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Check {
    /// The section: "host", "kernel", "attach" or "collector".
    pub group: &'static str,
    /// What was checked.
    pub name: String,
    /// Whether it works.
    pub ok: bool,
    /// Whether goroscope needs it (a failed optional check only limits future features).
    pub required: bool,
    /// What was found, or why not.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct DoctorReport {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// How collectors attach here, if they can.
    pub attach_mode: Option<String>,
    /// True when the syscalls, process and files collectors all work.
    pub core_collectors_ok: bool,
    /// Data lost in the kernel during the self-tests.
    pub kernel_losses: u64,
    /// Events dropped by the user-side queue during the self-tests.
    pub queue_drops: u64,
}

impl DoctorReport {
    fn push(
        &mut self,
        group: &'static str,
        name: impl Into<String>,
        result: Result<String, String>,
    ) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let name = name.into();
        let required = is_required(group, &name);
        self.checks.push(Check {
            group,
            name,
            ok,
            required,
            detail,
        });
    }
}

/// Runs the command.
pub fn run(args: &DoctorArgs) -> anyhow::Result<()> {
    goroscope_bpf::init();
    let mut report = DoctorReport {
        checks: Vec::new(),
        attach_mode: None,
        core_collectors_ok: false,
        kernel_losses: 0,
        queue_drops: 0,
    };
    let privileges = Privileges::of_self(Path::new(PROC_ROOT));
    let can_trace = privileges.is_some_and(|p| p.can_trace());
    report.push(
        "host",
        "privileges",
        match privileges {
            Some(p) if p.can_trace() => Ok(format!(
                "CAP_BPF {}, CAP_PERFMON {}, CAP_SYS_ADMIN {}",
                yes(p.bpf),
                yes(p.perfmon),
                yes(p.sys_admin)
            )),
            Some(p) => Err(format!(
                "missing {}; {HOW_TO_GRANT}",
                p.missing().join(" and ")
            )),
            None => Err("cannot read /proc/self/status".into()),
        },
    );
    report.push(
        "host",
        "CAP_SYS_PTRACE",
        go_reader::ptrace_check(privileges),
    );
    report.push(
        "host",
        "Go reader",
        go_reader::reader_check(Path::new(PROC_ROOT), privileges),
    );
    report.push(
        "host",
        "kernel",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .map_err(|e| e.to_string()),
    );
    // When bpf(2) itself is refused, every probe below fails for that reason, not for want of
    // the feature: say so instead of "not supported".
    let denied = match bpf_allowed() {
        Err(errno) if Refusal::from_errno(errno) == Refusal::Permission => Some(format!(
            "permission denied ({} from bpf(2)), not a kernel limit: whether the kernel supports it cannot be told without the privileges above",
            if errno == libc::EACCES { "EACCES" } else { "EPERM" }
        )),
        _ => None,
    };
    kernel_checks(&mut report, denied.as_deref());

    let mut attach_ok = Vec::new();
    for kind in ProgramKind::ALL {
        let result = match &denied {
            Some(why) => Err(why.clone()),
            None => probe_program(kind),
        }
        .map(|()| format!("works; {}", kind.used_for()));
        attach_ok.push((kind, result.is_ok()));
        report.push(
            "attach",
            kind.name(),
            result.map_err(|e| format!("{e}; used for: {}", kind.used_for())),
        );
    }
    let works = |k| attach_ok.iter().any(|&(kind, ok)| kind == k && ok);
    let mode = if works(ProgramKind::TpBtf) {
        Some(AttachMode::TpBtf)
    } else if works(ProgramKind::RawTp) {
        Some(AttachMode::RawTp)
    } else {
        None
    };
    report.attach_mode = mode.map(|m| m.to_string());

    match mode {
        Some(mode) => {
            let mut losses = Losses::default();
            let mut drops = 0;
            let syscalls = self_test_syscalls(mode, &mut losses);
            let process = self_test_process(mode, &mut losses, &mut drops);
            let files = self_test_files(mode, &mut losses, &mut drops);
            report.core_collectors_ok = syscalls.is_ok() && process.is_ok() && files.is_ok();
            report.push("collector", "syscalls", syscalls);
            report.push("collector", "process", process);
            report.push("collector", "files", files);
            report.push(
                "collector",
                "scheduler",
                self_test_scheduler(mode, &mut losses),
            );
            report.push("collector", "tcp", self_test_tcp(mode, &mut losses));
            report.kernel_losses = losses.total();
            report.queue_drops = drops;
        }
        None => {
            let why = if denied.is_some() {
                "skipped: permission denied (see privileges)"
            } else {
                "skipped: neither tp_btf nor raw_tp can attach"
            };
            for name in ["syscalls", "process", "files", "scheduler", "tcp"] {
                report.push("collector", name, Err(why.into()));
            }
        }
    }

    let mut out = std::io::stdout().lock();
    let written = match args.format {
        DoctorFormat::Table => write_table(&mut out, &report),
        DoctorFormat::Json => write_json(&mut out, &report),
    };
    if let Err(err) = written {
        if !super::is_broken_pipe(&err) {
            return Err(err.into());
        }
    }
    if !can_trace {
        crate::settings::require_privileges(Path::new(PROC_ROOT))?;
    }
    if !report.core_collectors_ok {
        anyhow::bail!(
            "the core collectors (syscalls, process, files) cannot all run here; see the FAIL lines above"
        );
    }
    Ok(())
}

/// Whether goroscope cannot work without this check passing. Attach types are
/// optional one by one (tp_btf or raw_tp is enough; the collector checks say
/// whether one worked); of the kernel checks, per-CPU hash and tracefs are not needed.
fn is_required(group: &str, name: &str) -> bool {
    match group {
        "attach" => false,
        "kernel" => matches!(name, "BTF" | "ring buffer" | "task storage"),
        // Only the Go collector and `goroutines` need them.
        "host" => !matches!(name, "CAP_SYS_PTRACE" | "Go reader"),
        // The agent runs without them, reporting them down.
        "collector" => !matches!(name, "scheduler" | "tcp"),
        _ => true,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The kernel feature checks; `denied` says why bpf(2) is refused altogether, if it is.
fn kernel_checks(report: &mut DoctorReport, denied: Option<&str>) {
    let btf = Path::new("/sys/kernel/btf/vmlinux");
    report.push(
        "kernel",
        "BTF",
        if btf.exists() {
            Ok(format!(
                "{} present: CO-RE and tp_btf possible",
                btf.display()
            ))
        } else {
            Err(format!(
                "{} missing: the kernel was built without CONFIG_DEBUG_INFO_BTF",
                btf.display()
            ))
        },
    );
    for (name, map_type) in [
        ("ring buffer", MapType::RingBuf),
        ("task storage", MapType::TaskStorage),
        ("per-CPU hash", MapType::PercpuHash),
    ] {
        let result = match (denied, map_type.is_supported()) {
            (_, Ok(true)) => Ok("supported".to_string()),
            (Some(why), _) => Err(why.to_string()),
            (None, Ok(false)) => Err("not supported by this kernel".to_string()),
            (None, Err(e)) => Err(format!("cannot tell: {e}")),
        };
        report.push("kernel", name, result);
    }
    report.push(
        "kernel",
        "tracefs",
        match tracefs::ensure_mounted() {
            Tracefs::Mounted(p) => Ok(format!("mounted at {}", p.display())),
            Tracefs::MountedNow(p) => Ok(format!(
                "was not mounted; goroscope mounted it at {}",
                p.display()
            )),
            Tracefs::Unavailable(why) => Err(why),
        },
    );
}

fn self_filter() -> ProcessFilter {
    ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    }
}

/// Makes `n` getppid calls and checks the collector counted them all.
fn self_test_syscalls(mode: AttachMode, losses: &mut Losses) -> Result<String, String> {
    const CALLS: u64 = 100;
    let mut storage = MaybeUninit::uninit();
    let collector = SyscallCollector::start(&mut storage, mode, &self_filter())
        .map_err(|e| format!("{e:#}"))?;
    for _ in 0..CALLS {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    let rows = collector.rows().map_err(|e| e.to_string())?;
    losses.add(&collector.losses().map_err(|e| e.to_string())?);
    let mode = collector.mode(); // raw_tp whatever was asked: see SyscallCollector::start
    let seen: u64 = rows
        .iter()
        .filter(|r| r.pid == std::process::id() && r.syscall_nr == SYS_GETPPID)
        .map(|r| r.count)
        .sum();
    if seen >= CALLS {
        Ok(format!(
            "works via {mode}: counted {seen} of {CALLS} getppid calls"
        ))
    } else {
        Err(format!(
            "attached via {mode} but counted {seen} of {CALLS} getppid calls"
        ))
    }
}

/// Sleeps 20 times and checks the scheduler collector saw at least 20 voluntary switches.
fn self_test_scheduler(mode: AttachMode, losses: &mut Losses) -> Result<String, String> {
    const SLEEPS: u64 = 20;
    let mut storage = MaybeUninit::uninit();
    let collector = goroscope_bpf::SchedCollector::start(&mut storage, mode, &self_filter())
        .map_err(|e| format!("{e:#}"))?;
    for _ in 0..SLEEPS {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let rows = collector.rows().map_err(|e| e.to_string())?;
    losses.add(&collector.losses().map_err(|e| e.to_string())?);
    let mode = collector.mode(); // raw_tp whatever was asked: see SyscallCollector::start
    let seen: u64 = rows
        .iter()
        .filter(|r| r.pid == std::process::id())
        .map(|r| r.voluntary_switches)
        .sum();
    if seen >= SLEEPS {
        Ok(format!(
            "works via {mode}: saw {seen} voluntary switches for {SLEEPS} sleeps"
        ))
    } else {
        Err(format!(
            "attached via {mode} but saw {seen} voluntary switches for {SLEEPS} sleeps"
        ))
    }
}

/// Makes 3 loopback connections to itself and checks the TCP collector counted them.
fn self_test_tcp(mode: AttachMode, losses: &mut Losses) -> Result<String, String> {
    const CONNECTIONS: u64 = 3;
    let mut storage = MaybeUninit::uninit();
    let collector = goroscope_bpf::TcpCollector::start(&mut storage, mode, &self_filter())
        .map_err(|e| format!("{e:#}"))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    for _ in 0..CONNECTIONS {
        let client = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
        let (server, _) = listener.accept().map_err(|e| e.to_string())?;
        drop(client);
        drop(server);
    }
    // Closes finish in softirq just after the calls return.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let rows = collector.rows().map_err(|e| e.to_string())?;
    losses.add(&collector.losses().map_err(|e| e.to_string())?);
    let opened: u64 = rows
        .iter()
        .filter(|r| r.pid == std::process::id())
        .filter(|r| {
            matches!(
                r.direction,
                goroscope_model::tcp_stats::TcpDirection::Outbound
            )
        })
        .map(|r| r.opened)
        .sum();
    if opened == CONNECTIONS {
        Ok(format!(
            "works via {mode}: counted {opened} of {CONNECTIONS} outbound connections"
        ))
    } else {
        Err(format!(
            "attached via {mode} but counted {opened} of {CONNECTIONS} outbound connections"
        ))
    }
}

/// Starts a child (this binary, `--version`) and checks its fork, exec and exit arrive.
fn self_test_process(
    mode: AttachMode,
    losses: &mut Losses,
    drops: &mut u64,
) -> Result<String, String> {
    let mut objects = EventObjects::default();
    let options = EventOptions {
        kinds: vec![EventKind::Exec, EventKind::Exit, EventKind::Fork],
        capture_args: false,
        filter: ProcessFilter {
            include_self: true,
            ..ProcessFilter::default()
        },
        ring_bytes: goroscope_bpf::PROCESS_RING_BYTES,
    };
    let collector =
        EventCollector::start(&mut objects, mode, &options).map_err(|e| format!("{e:#}"))?;
    let mut stream = collector.stream().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    Command::new(&exe)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    // The child is gone; its pid is in the events we look for.
    let (mut fork, mut exec, mut exit) = (None, false, false);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !(fork.is_some() && exec && exit) {
        let Some(raw) = stream
            .next(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let Ok(event) = raw.decode() else { continue };
        match event.detail {
            EventDetail::Fork { child_pid } if event.header.pid == std::process::id() => {
                fork = Some(child_pid)
            }
            EventDetail::Exec { .. } if Some(event.header.pid) == fork => exec = true,
            EventDetail::Exit { status, .. } if Some(event.header.pid) == fork => {
                exit = status.exit_code == 0
            }
            _ => {}
        }
    }
    let _ = stream.finish();
    *drops += stream.queue_drops();
    losses.add(&collector.losses().map_err(|e| e.to_string())?);
    match (fork, exec, exit) {
        (Some(pid), true, true) => Ok(format!("works via {mode}: saw fork, exec and exit of child {pid}")),
        _ => Err(format!(
            "attached via {mode} but saw fork: {}, exec: {exec}, exit: {exit} of a child it started",
            fork.is_some()
        )),
    }
}

/// Opens a path that does not exist a few times and checks every open arrives.
fn self_test_files(
    mode: AttachMode,
    losses: &mut Losses,
    drops: &mut u64,
) -> Result<String, String> {
    const OPENS: usize = 5;
    let mut objects = EventObjects::default();
    let options = EventOptions {
        kinds: vec![EventKind::Open],
        capture_args: false,
        filter: self_filter(),
        ring_bytes: goroscope_bpf::RING_BYTES,
    };
    let collector =
        EventCollector::start(&mut objects, mode, &options).map_err(|e| format!("{e:#}"))?;
    let mut stream = collector.stream().map_err(|e| e.to_string())?;
    let path =
        std::env::temp_dir().join(format!("goroscope-doctor-{}-missing", std::process::id()));
    for _ in 0..OPENS {
        let _ = std::fs::File::open(&path);
    }
    let wanted = path.as_os_str().as_encoded_bytes();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && seen < OPENS {
        let Some(raw) = stream
            .next(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        if let Ok(event) = raw.decode() {
            if matches!(event.detail, EventDetail::Open { path, ret, .. } if path == wanted && ret == -2)
            {
                seen += 1;
            }
        }
    }
    let _ = stream.finish();
    *drops += stream.queue_drops();
    losses.add(&collector.losses().map_err(|e| e.to_string())?);
    if seen == OPENS {
        Ok(format!(
            "works via {mode}: saw {seen} of {OPENS} opens, with path and ENOENT"
        ))
    } else {
        Err(format!(
            "attached via {mode} but saw {seen} of {OPENS} opens"
        ))
    }
}
