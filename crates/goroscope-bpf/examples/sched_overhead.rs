//! What the scheduler collector costs an observed workload: a pipe
//! ping-pong between two threads (every round trip is two wakeups and, with
//! both threads on one CPU, two context switches), timed bare and with the
//! collector attached host-wide (this process included), alternating rounds.
//!
//! Run as root: `cargo run --release -p goroscope-bpf --example sched_overhead [round_trips] [rounds]`.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use goroscope_bpf::sched::SchedCollector;
use goroscope_bpf::{choose_attach_mode, AttachMode, ProcessFilter};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sched_overhead: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let round_trips: u64 = parse_arg(args.next(), 200_000)?;
    let rounds: usize = parse_arg(args.next(), 5)?;
    goroscope_bpf::init();
    let mode = choose_attach_mode().map_err(|e| e.to_string())?;
    println!("{round_trips} round trips per run, {rounds} rounds, attach mode {mode}");

    for (label, cpu) in [("same CPU", Some(first_allowed_cpu()?)), ("unpinned", None)] {
        let mut bare = Vec::with_capacity(rounds);
        let mut traced = Vec::with_capacity(rounds);
        let mut switches = 0u64;
        for _ in 0..rounds {
            bare.push(ping_pong(round_trips, cpu)?);
            let (t, s) = traced_run(mode, round_trips, cpu)?;
            traced.push(t);
            switches = switches.max(s);
        }
        let (b, t) = (median(&bare), median(&traced));
        let per_trip = |d: Duration| d.as_nanos() as f64 / round_trips as f64;
        println!(
            "{label}: bare {:.0} ns/round trip, traced {:.0} ns/round trip, \
             ratio {:.3} (medians; this process's switches in one traced run: {switches})",
            per_trip(b),
            per_trip(t),
            t.as_secs_f64() / b.as_secs_f64()
        );
        println!(
            "  bare   {} (ns/round trip, in run order)",
            list(&bare, round_trips)
        );
        println!("  traced {}", list(&traced, round_trips));
    }
    Ok(())
}

fn parse_arg<T: std::str::FromStr>(arg: Option<String>, default: T) -> Result<T, String> {
    match arg {
        None => Ok(default),
        Some(a) => a.parse().map_err(|_| format!("not a number: {a}")),
    }
}

/// One ping-pong with the collector attached; returns its time and the
/// context switches the collector counted for this process.
fn traced_run(
    mode: AttachMode,
    round_trips: u64,
    cpu: Option<usize>,
) -> Result<(Duration, u64), String> {
    let mut storage = MaybeUninit::uninit();
    let filter = ProcessFilter {
        include_self: true,
        ..ProcessFilter::default()
    };
    let collector =
        SchedCollector::start(&mut storage, mode, &filter).map_err(|e| e.to_string())?;
    let elapsed = ping_pong(round_trips, cpu)?;
    let rows = collector.rows().map_err(|e| e.to_string())?;
    let me = std::process::id();
    let switches = rows
        .iter()
        .filter(|r| r.pid == me)
        .map(|r| r.switches())
        .sum();
    let losses = collector.losses().map_err(|e| e.to_string())?;
    for (reason, n) in losses.nonzero() {
        eprintln!("lost: {reason}: {n}");
    }
    Ok((elapsed, switches))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn read_byte(fd: &OwnedFd) -> bool {
    let mut b = 0u8;
    // SAFETY: reads at most one byte into `b`, which outlives the call.
    unsafe { libc::read(fd.as_raw_fd(), (&mut b as *mut u8).cast(), 1) == 1 }
}

fn write_byte(fd: &OwnedFd) -> bool {
    let b = 1u8;
    // SAFETY: writes one byte from `b`, which outlives the call.
    unsafe { libc::write(fd.as_raw_fd(), (&b as *const u8).cast(), 1) == 1 }
}

/// Two threads bouncing one byte `round_trips` times through two pipes.
fn ping_pong(round_trips: u64, cpu: Option<usize>) -> Result<Duration, String> {
    let (ping_r, ping_w) = pipe()?;
    let (pong_r, pong_w) = pipe()?;
    let echo = thread::spawn(move || -> Result<(), String> {
        if let Some(cpu) = cpu {
            pin_to(cpu)?;
        }
        for _ in 0..round_trips {
            if !read_byte(&ping_r) || !write_byte(&pong_w) {
                return Err(format!("echo: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    });
    let pinned = match cpu {
        Some(cpu) => Some(PinGuard::pin(cpu)?),
        None => None,
    };
    let start = Instant::now();
    for _ in 0..round_trips {
        if !write_byte(&ping_w) || !read_byte(&pong_r) {
            return Err(format!("ping: {}", std::io::Error::last_os_error()));
        }
    }
    let elapsed = start.elapsed();
    drop(pinned);
    echo.join()
        .map_err(|_| "the echo thread panicked".to_owned())??;
    Ok(elapsed)
}

/// Pins the calling thread to one CPU; restores its previous CPUs on drop.
struct PinGuard {
    previous: libc::cpu_set_t,
}

impl PinGuard {
    fn pin(cpu: usize) -> Result<Self, String> {
        let previous = affinity()?;
        pin_to(cpu)?;
        Ok(Self { previous })
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        // SAFETY: pid 0 is the calling thread; the set is valid for the call.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of_val(&self.previous), &self.previous)
        };
    }
}

fn affinity() -> Result<libc::cpu_set_t, String> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is valid and writable for the call.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(set)
}

fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and cpu is below CPU_SETSIZE (from first_allowed_cpu).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is valid for the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        return Err(format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn first_allowed_cpu() -> Result<usize, String> {
    let set = affinity()?;
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `set` is initialised and i is below CPU_SETSIZE.
        .find(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .ok_or_else(|| "no CPU allowed".to_owned())
}

fn median(runs: &[Duration]) -> Duration {
    let mut sorted = runs.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn list(runs: &[Duration], round_trips: u64) -> String {
    runs.iter()
        .map(|d| format!("{:.0}", d.as_nanos() as f64 / round_trips as f64))
        .collect::<Vec<_>>()
        .join(" ")
}
