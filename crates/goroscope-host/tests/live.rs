//! Tests against the real `/proc` and `/sys` of the machine running them: this test process, a
//! busy loop, UDP packets over `lo`, and a Go program built and started here. They need the Go
//! toolchain on PATH and fail (never skip) without it.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use goroscope_host::{own_usage, GoDiscovery, ProcFs, ProcessCache, SysFs};

/// The name the kernel gives a process: the executable's file name cut to 15 bytes.
fn expected_comm() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current_exe: {e}"));
    let name = exe
        .file_name()
        .unwrap_or_else(|| panic!("{} has no file name", exe.display()))
        .to_string_lossy()
        .into_owned();
    String::from_utf8_lossy(&name.as_bytes()[..name.len().min(15)]).into_owned()
}

#[test]
fn finds_this_process_with_its_name() {
    let procfs = ProcFs::host();
    let pid = std::process::id();
    let pids = procfs.pids().unwrap_or_else(|e| panic!("{e}"));
    assert!(pids.contains(&pid), "own pid {pid} not listed in /proc");
    assert!(procfs.exists(pid));
    let info = procfs.process(pid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.pid, pid);
    assert_eq!(info.comm, expected_comm());
    assert!(info.start_time_ticks > 0);

    let mut cache = ProcessCache::new();
    let cached = cache
        .get_or_read(&procfs, pid)
        .unwrap_or_else(|| panic!("own pid not readable through the cache"))
        .clone();
    assert_eq!(cached, info);
    assert!(cache.retain_alive(&procfs).is_empty());
    assert_eq!(cache.read_errors(), 0);
}

#[test]
fn own_usage_is_nonzero_and_cpu_grows_with_work() {
    let procfs = ProcFs::host();
    let before = own_usage(&procfs).unwrap_or_else(|e| panic!("{e}"));
    assert!(before.rss_bytes > 0, "{before:?}");
    assert!(before.threads >= 1, "{before:?}");
    let cpu = |u: &goroscope_host::OwnUsage| u.cpu_user_seconds + u.cpu_system_seconds;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = before;
    let mut sink = 0u64;
    while cpu(&after) < cpu(&before) + 0.05 && Instant::now() < deadline {
        for i in 0..1_000_000u64 {
            sink = std::hint::black_box(sink.wrapping_mul(31).wrapping_add(i));
        }
        after = own_usage(&procfs).unwrap_or_else(|e| panic!("{e}"));
    }
    std::hint::black_box(sink);
    assert!(
        cpu(&after) >= cpu(&before) + 0.05,
        "CPU time did not grow: before {before:?}, after {after:?}"
    );
}

#[test]
fn loopback_counters_grow_with_udp_packets() {
    let sysfs = SysFs::host();
    let lo = |sysfs: &SysFs| {
        sysfs
            .interfaces()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|i| i.name == "lo")
            .unwrap_or_else(|| panic!("no lo in /sys/class/net"))
    };
    let before = lo(&sysfs);
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let target = receiver.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    for _ in 0..100 {
        sender
            .send_to(b"goroscope-host!!", target)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }
    let after = lo(&sysfs);
    assert!(
        after.rx_packets >= before.rx_packets + 100,
        "rx_packets {} -> {}",
        before.rx_packets,
        after.rx_packets
    );
    assert!(after.tx_packets >= before.tx_packets + 100);
    assert!(after.rx_bytes >= before.rx_bytes + 100 * 16);
    assert!(after.tx_bytes >= before.tx_bytes + 100 * 16);
}

/// A temporary directory and child processes, removed and killed on drop (also on panic).
struct Scratch {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The version `go version` reports, e.g. `go1.26.8`.
#[track_caller]
fn go_version() -> String {
    let output = Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| {
            panic!("the Go toolchain is required for this test: `go version`: {e}")
        });
    assert!(output.status.success(), "`go version` failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    // "go version go1.26.8 linux/amd64"
    text.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected `go version` output {text:?}"))
        .to_string()
}

#[track_caller]
fn build_go_program(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/gsleeper\n\ngo 1.19\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"time\"\n)\n\nfunc main() {\n\tfmt.Println(\"ready\")\n\tfor {\n\t\ttime.Sleep(time.Second)\n\t}\n}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let binary = dir.join("gsleeper");
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local");
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        build.env(
            "GOCACHE",
            std::env::temp_dir().join("goroscope-host-gocache"),
        );
    }
    let output = build
        .output()
        .unwrap_or_else(|e| panic!("the Go toolchain is required for this test: `go build`: {e}"));
    assert!(output.status.success(), "`go build` failed: {output:?}");
    binary
}

#[test]
fn discovers_a_real_go_process_and_not_others() {
    let expected_version = go_version();
    let dir = std::env::temp_dir().join(format!("goroscope-host-live-go-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = Scratch {
        dir: dir.clone(),
        children: Vec::new(),
    };
    let binary = build_go_program(&dir);

    let mut go = Command::new(&binary)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let stdout = go.stdout.take().unwrap_or_else(|| panic!("no stdout pipe"));
    let go_pid = go.id();
    scratch.children.push(go);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line.trim(), "ready");

    let sleep = Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start /bin/sleep: {e}"));
    let sleep_pid = sleep.id();
    scratch.children.push(sleep);

    let procfs = ProcFs::host();
    let mut discovery = GoDiscovery::new();
    let pids = procfs.pids().unwrap_or_else(|e| panic!("{e}"));
    assert!(pids.contains(&go_pid) && pids.contains(&sleep_pid));
    let found = discovery.scan(&procfs, pids);

    let ours = found
        .iter()
        .find(|p| p.pid == go_pid)
        .unwrap_or_else(|| panic!("the Go program (pid {go_pid}) was not found in {found:?}"));
    assert_eq!(ours.go_version, expected_version);
    assert_eq!(ours.comm, "gsleeper");
    let canonical = std::fs::canonicalize(&binary).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.exe, canonical);

    let own_pid = std::process::id();
    assert!(
        !found.iter().any(|p| p.pid == own_pid),
        "the (Rust) test binary was reported as Go: {found:?}"
    );
    assert!(
        !found.iter().any(|p| p.pid == sleep_pid),
        "/bin/sleep was reported as Go: {found:?}"
    );
    // Kernel threads exist on any Linux host and are counted, not reported.
    assert!(discovery.without_executable() > 0);

    // A second look at the same process parses nothing new.
    let parsed = discovery.binaries_parsed();
    let again = discovery.scan(&procfs, [go_pid, sleep_pid, own_pid]);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].pid, go_pid);
    assert_eq!(discovery.binaries_parsed(), parsed);

    // Deleting the file does not hide the program: it is read through /proc/PID/exe.
    std::fs::remove_file(&binary).unwrap_or_else(|e| panic!("{e}"));
    let after_delete = GoDiscovery::new().scan(&procfs, [go_pid]);
    assert_eq!(after_delete.len(), 1, "{after_delete:?}");
    assert_eq!(after_delete[0].go_version, expected_version);
    assert!(
        after_delete[0]
            .exe
            .to_string_lossy()
            .ends_with(" (deleted)"),
        "{after_delete:?}"
    );
}

#[test]
fn a_real_process_is_named_by_its_own_otel_environment() {
    let mut child = Command::new("sleep")
        .arg("30")
        .env("OTEL_SERVICE_NAME", "live-check")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=core,service.name=overridden",
        )
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sleep: {e}"));
    // Until it has exec'd, the child's environment is still the test's own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ProcFs::host().comm(child.id()).ok().as_deref() != Some("sleep") {
        assert!(Instant::now() < deadline, "sleep did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let attributes = goroscope_host::resource::process_resource(
        &ProcFs::host(),
        child.id(),
        goroscope_host::resource::GoIdentity::default(),
        "this-host",
    );
    let _ = child.kill();
    let _ = child.wait();
    let attributes = attributes.unwrap_or_else(|e| panic!("reading sleep's resource: {e}"));
    let get = |key: &str| {
        attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("service.name").as_deref(),
        Some("live-check"),
        "{attributes:?}"
    );
    assert_eq!(get("team").as_deref(), Some("core"), "{attributes:?}");
    assert_eq!(
        get("process.executable.name").as_deref(),
        Some("sleep"),
        "{attributes:?}"
    );
    assert_eq!(get("process.pid"), Some(child.id().to_string()));
}
