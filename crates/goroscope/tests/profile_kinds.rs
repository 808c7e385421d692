//! `goroscope profile --kind offcpu` and `--kind wall` on programs whose waits are known, read
//! back with `go tool pprof` as a user would: a thread that naps a known number of times (C and
//! Go) shows exactly that much blocked time, with the kernel's sleep frames under it; two
//! threads sharing one CPU show their run-queue wait; leaky's 23 receivers carry 23 × the
//! window under `[chan receive]`, one goid each; the labels program's pprof labels can be
//! shown and focused on; and a wall profile of what is not one Go process is refused.

mod common;
mod pprof_text;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{run_goroscope, Goroscope};
use gotest::{BuildMode, Running, Toolchain, NEWEST_TOOLCHAIN, TOOLCHAINS};
use pprof_text::{
    assert_near, build_go, compile_c, leaky_receivers, tags, temp_dir, top, wait_profiling,
    ReadyProgram, Sleepers,
};
use serde_json::Value;

/// Naps of the napping programs, and how long each is.
const NAPS: u32 = 40;
const NAP_MS: u32 = 50;
/// How far measured times may stray from what the programs did.
const TOLERANCE: f64 = 0.10;
/// How long a profile that ends with its process may take in all.
const PROFILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for a line on stdin, then one thread makes NAPS nanosleep(NAP_NS) calls in nap_loop
/// and the program exits. nap_loop makes the system call itself: behind libc's wrapper, which
/// keeps no frame pointer, frame-pointer unwinding would lose the wrapper's caller.
const NAP_C: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>

__attribute__((noinline)) void nap_loop(void)
{
	struct timespec nap = { 0, NAP_NS };

	for (int i = 0; i < NAPS; i++) {
		long ret;

		__asm__ volatile("syscall"
				 : "=a"(ret)
				 : "0"((long)SYS_nanosleep), "D"(&nap), "S"(0L)
				 : "rcx", "r11", "memory");
	}
}

static void *napper(void *unused)
{
	(void)unused;
	nap_loop();
	return NULL;
}

int main(void)
{
	char line[16];
	pthread_t thread;

	puts("ready");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 1;
	pthread_create(&thread, NULL, napper, NULL);
	pthread_join(thread, NULL);
	return 0;
}
"#;

/// The same in Go: a goroutine locked to its thread naps NAPS × NAP_MS in main.napLoop through
/// syscall.Nanosleep, after printing its goroutine id.
const NAP_GO: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

const naps, napMs = NAPS_AND_NAP_MS

//go:noinline
func napLoop(done chan<- struct{}) {
	runtime.LockOSThread()
	buf := make([]byte, 64)
	fmt.Println(strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1])
	nap := syscall.Timespec{Nsec: napMs * 1000000}
	for i := 0; i < naps; i++ {
		syscall.Nanosleep(&nap, nil)
	}
	done <- struct{}{}
}

func main() {
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	done := make(chan struct{})
	go napLoop(done)
	<-done
}
"#;

/// Pins itself to one CPU, then two threads spin in spin_forever: at any moment one of them
/// waits for the CPU the other holds.
const SPIN_C: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

volatile unsigned long sink;

__attribute__((noinline)) void spin_forever(void)
{
	for (unsigned long x = 1;; x = x * 6364136223846793005UL + 1)
		sink = x;
}

static void *spinner(void *unused)
{
	(void)unused;
	spin_forever();
	return NULL;
}

int main(void)
{
	cpu_set_t allowed, one;
	pthread_t a, b;

	CPU_ZERO(&one);
	if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
		return 1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, &allowed)) {
			CPU_SET(cpu, &one);
			break;
		}
	}
	if (sched_setaffinity(0, sizeof one, &one) != 0)
		return 1;
	pthread_create(&a, NULL, spinner, NULL);
	pthread_create(&b, NULL, spinner, NULL);
	puts("ready");
	fflush(stdout);
	pthread_join(a, NULL);
	return 0;
}
"#;

/// Profiles `program` off CPU from before it starts its work (it waits for a line) until it
/// exits, and returns the profile's path.
#[track_caller]
fn off_cpu_profile_of_its_work(program: &mut ReadyProgram, label: &str) -> std::path::PathBuf {
    let output = temp_dir(label).join("offcpu.pb.gz");
    let pid = program.pid().to_string();
    let goroscope = Goroscope::spawn(&[
        "profile",
        "--kind",
        "offcpu",
        "--pid",
        &pid,
        "--duration",
        "40s",
        "--output",
        output.to_str().expect("a UTF-8 temp path"),
    ]);
    wait_profiling(&goroscope);
    program.go();
    let status = program.wait(Duration::from_secs(30));
    assert!(status.success(), "the {label} program failed: {status}");
    // The profile ends by itself once its one process is gone.
    let finished = goroscope.wait_exit(PROFILE_TIMEOUT);
    finished.assert_code(0);
    assert!(
        finished.stderr.contains(&format!("process {pid} exited")),
        "goroscope should say the process exited:\n{}",
        finished.stderr
    );
    output
}

/// The naps, as `-sample_index=blocked` shows them under `function`: within TOLERANCE of what
/// the program slept, with the kernel's nanosleep frames in the same stacks, and one interval
/// per nap.
#[track_caller]
fn assert_naps_under(profile: &Path, function: &str) {
    let slept_ms = f64::from(NAPS * NAP_MS);
    let focus = format!("-focus=^{}$", function.replace('.', "\\."));
    let blocked = top(profile, &["-sample_index=blocked", &focus]);
    assert_near(
        &format!("blocked time under {function} (ms)"),
        blocked.cum(function),
        slept_ms,
        TOLERANCE,
        &blocked.text,
    );
    for kernel in ["do_nanosleep", "hrtimer_nanosleep"] {
        assert_near(
            &format!("blocked time under {function} through {kernel} (ms)"),
            blocked.cum(kernel),
            slept_ms,
            TOLERANCE,
            &blocked.text,
        );
    }
    // Off-CPU time is the blocked time and the wait for a CPU after each wakeup.
    let offcpu = top(profile, &["-sample_index=offcpu", &focus]).cum(function);
    let runqueue = top(profile, &["-sample_index=runqueue", &focus])
        .row(function)
        .map_or(0.0, |r| r.cum);
    assert!(
        (offcpu - blocked.cum(function) - runqueue).abs() < 1.0,
        "off-CPU time under {function} ({offcpu:.3} ms) should be its blocked ({:.3} ms) and \
         run-queue ({runqueue:.3} ms) time",
        blocked.cum(function)
    );
    let switches = top(profile, &["-sample_index=switches", &focus]).cum(function);
    assert!(
        (f64::from(NAPS)..=f64::from(NAPS + NAPS / 10)).contains(&switches),
        "{function} napped {NAPS} times, the profile counts {switches} switches"
    );
}

#[test]
fn a_c_thread_that_naps_is_blocked_for_its_naps_in_nanosleep() {
    let binary = compile_c(
        "nap",
        NAP_C,
        &[
            format!("NAPS={NAPS}"),
            format!("NAP_NS={}", u64::from(NAP_MS) * 1_000_000),
        ],
    );
    let mut program = ReadyProgram::start(&binary, &[]);
    let profile = off_cpu_profile_of_its_work(&mut program, "nap-c");
    assert_naps_under(&profile, "nap_loop");
}

#[test]
fn a_goroutine_that_naps_is_blocked_for_its_naps_with_its_goid() {
    let source = NAP_GO.replace("NAPS_AND_NAP_MS", &format!("{NAPS}, {NAP_MS}"));
    let binary = build_go("gonap", &source);
    let mut program = ReadyProgram::start(&binary, &[]);
    let profile = off_cpu_profile_of_its_work(&mut program, "nap-go");
    let goid = program.next_line(Duration::from_secs(5));
    assert_naps_under(&profile, "main.napLoop");
    let labels = tags(
        &profile,
        &["-sample_index=blocked", "-focus=^main\\.napLoop$"],
    );
    let goids: Vec<String> = labels.values("goid").into_keys().collect();
    assert_eq!(
        goids,
        std::slice::from_ref(&goid),
        "main.napLoop ran in goroutine {goid} only:\n{}",
        labels.text
    );
    // `go napLoop(done)` starts it through a wrapper; the goroutine is named as Go names it,
    // though the process has exited by the time the profile is written.
    let starts: Vec<String> = labels.values("goroutine_start").into_keys().collect();
    assert_eq!(starts, ["main.napLoop"], "{}", labels.text);
}

/// A thread's time waiting on a run queue so far (ns), by the kernel's own count.
#[track_caller]
fn run_delay_ns(pid: u32, tid: &str) -> u64 {
    let path = format!("/proc/{pid}/task/{tid}/schedstat");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {path}: {e} (a kernel without schedstats?)"),
    };
    match text.split_whitespace().nth(1).and_then(|n| n.parse().ok()) {
        Some(ns) => ns,
        None => panic!("{path} holds no run delay: {text:?}"),
    }
}

#[test]
fn two_threads_sharing_one_cpu_wait_in_its_run_queue() {
    let binary = compile_c("spin", SPIN_C, &[]);
    let program = ReadyProgram::start(&binary, &[]);
    let pid = program.pid();
    let task_dir = format!("/proc/{pid}/task");
    let tids: Vec<String> = std::fs::read_dir(&task_dir)
        .unwrap_or_else(|e| panic!("cannot list {task_dir}: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|tid| *tid != pid.to_string())
        .collect();
    assert_eq!(tids.len(), 2, "spin should run two threads besides main");
    let delays_before: Vec<u64> = tids.iter().map(|tid| run_delay_ns(pid, tid)).collect();
    let output = temp_dir("spin").join("offcpu.pb.gz");
    let finished = run_goroscope(
        &[
            "profile",
            "--kind",
            "offcpu",
            "--pid",
            &pid.to_string(),
            "--duration",
            "2s",
            "--output",
            output.to_str().expect("a UTF-8 temp path"),
        ],
        PROFILE_TIMEOUT,
    );
    finished.assert_code(0);
    let delays_after: Vec<u64> = tids.iter().map(|tid| run_delay_ns(pid, tid)).collect();
    drop(program);

    let focus = "-focus=^spin_forever$";
    let runqueue = top(&output, &["-sample_index=runqueue", focus]);
    let window_ms = runqueue.duration_ms();
    let waited = runqueue.cum("spin_forever");
    eprintln!("run-queue time under spin_forever: {waited:.1} ms in a {window_ms:.0} ms window");
    // One of the two always waits; more when something else takes the CPU too.
    assert!(
        waited > 0.5 * window_ms && waited <= 2.0 * window_ms * (1.0 + TOLERANCE),
        "two threads on one CPU should wait about the whole window ({window_ms:.0} ms) \
         between them, the profile says {waited:.1} ms:\n{}",
        runqueue.text
    );
    let blocked = top(&output, &["-sample_index=blocked", focus])
        .row("spin_forever")
        .map_or(0.0, |r| r.cum);
    assert!(
        blocked < 0.05 * waited,
        "spinning threads never block, yet {blocked:.1} ms are blocked under spin_forever"
    );
    let by_thread = tags(&output, &["-sample_index=runqueue", focus]).values("thread");
    for ((tid, before), after) in tids.iter().zip(delays_before).zip(delays_after) {
        let profiled = by_thread.get(tid).copied().unwrap_or(0.0);
        // The kernel's count covers more than the window (loading, writing the profile).
        let kernel_ms = (after - before) as f64 / 1e6;
        eprintln!("thread {tid}: {profiled:.1} ms on the run queue; schedstat: {kernel_ms:.1} ms");
        assert!(
            profiled > 0.2 * window_ms && profiled <= kernel_ms * 1.02 + 5.0,
            "thread {tid}: {profiled:.1} ms on the run queue in the profile, {kernel_ms:.1} ms \
             by the kernel's schedstat over a longer span; window {window_ms:.0} ms; by \
             thread: {by_thread:?}"
        );
    }
}

/// Profiles `pid` for 3 s of wall time and returns the profile's path.
#[track_caller]
fn wall_profile(pid: u32, label: &str) -> std::path::PathBuf {
    let output = temp_dir(label).join("wall.pb.gz");
    let finished = run_goroscope(
        &[
            "profile",
            "--kind",
            "wall",
            "--pid",
            &pid.to_string(),
            "--duration",
            "3s",
            "--output",
            output.to_str().expect("a UTF-8 temp path"),
        ],
        PROFILE_TIMEOUT,
    );
    finished.assert_code(0);
    output
}

/// The window of a wall profile (ms), checked against the 3 s asked for.
#[track_caller]
fn wall_window_ms(profile: &Path) -> f64 {
    let window_ms = top(profile, &[]).duration_ms();
    assert_near(
        "the wall profile's duration (ms)",
        window_ms,
        3000.0,
        TOLERANCE,
        "",
    );
    window_ms
}

/// leaky built with `toolchain`: its chan-recv group, N goroutines blocked in
/// main.leakChanRecv, carries N × the window under `[chan receive]`, one goid each.
#[track_caller]
fn leaky_receivers_in_a_wall_profile(toolchain: Toolchain) {
    let binary = gotest::build("leaky", toolchain, BuildMode::Default);
    let leaky = Running::start(&binary, &[]);
    let receivers = leaky_receivers(&leaky);
    let profile = wall_profile(leaky.pid(), &format!("wall-{}", toolchain.version));
    let window_ms = wall_window_ms(&profile);
    let expected_ms = receivers as f64 * window_ms;

    let focus = "-focus=^main\\.leakChanRecv$";
    let group = top(&profile, &["-sample_index=wall", focus]);
    let context = format!(
        "{} ({})\n{}",
        toolchain.version, leaky.ready_line, group.text
    );
    assert_near(
        "wall time of main.leakChanRecv (ms)",
        group.cum("main.leakChanRecv"),
        expected_ms,
        TOLERANCE,
        &context,
    );
    assert_near(
        "wall time of main.leakChanRecv under [chan receive] (ms)",
        group.cum("[chan receive]"),
        expected_ms,
        TOLERANCE,
        &context,
    );
    let roots: Vec<&str> = group
        .rows
        .iter()
        .map(|r| r.name.as_str())
        .filter(|name| name.starts_with('['))
        .collect();
    assert_eq!(roots, ["[chan receive]"], "{context}");

    let labels = tags(&profile, &["-sample_index=wall", focus]);
    let goids = labels.values("goid");
    assert_eq!(
        goids.len() as u64,
        receivers,
        "{} receivers should carry {receivers} distinct goids:\n{}",
        toolchain.version,
        labels.text
    );
    for (goid, ms) in &goids {
        assert_near(
            &format!("wall time of goroutine {goid} (ms)"),
            *ms,
            window_ms,
            TOLERANCE,
            &labels.text,
        );
    }
    let states: Vec<String> = labels.values("state").into_keys().collect();
    assert_eq!(states, ["chan receive"], "{}", labels.text);
}

#[test]
fn wall_profile_weighs_leakys_receivers_by_the_window_newest_go() {
    leaky_receivers_in_a_wall_profile(NEWEST_TOOLCHAIN);
}

#[test]
fn wall_profile_weighs_leakys_receivers_by_the_window_oldest_go() {
    leaky_receivers_in_a_wall_profile(TOOLCHAINS[0]);
}

/// Text from the hex that the labels program prints.
#[track_caller]
fn unhex(hex: &str) -> String {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    match bytes {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => panic!("bad hex {hex:?} from the labels program"),
    }
}

#[test]
fn wall_profile_carries_the_programs_pprof_labels() {
    let binary = gotest::build("labels", NEWEST_TOOLCHAIN, BuildMode::Default);
    let program = Running::start(&binary, &[]);
    let ready: Value = serde_json::from_str(&program.ready_line)
        .unwrap_or_else(|e| panic!("the ready line is not JSON ({e}): {}", program.ready_line));
    let planted = ready["goroutines"]
        .as_array()
        .unwrap_or_else(|| panic!("no goroutines in {}", program.ready_line));
    // For a few keys: value -> how many planted goroutines carry it.
    let checked = ["tenant", "worker", "region", "shard"];
    let mut expected: BTreeMap<&str, BTreeMap<String, u32>> = BTreeMap::new();
    let mut alpha_goids = BTreeSet::new();
    for goroutine in planted {
        for pair in goroutine["labels"].as_array().into_iter().flatten() {
            let key = unhex(pair[0].as_str().unwrap_or_default());
            let value = unhex(pair[1].as_str().unwrap_or_default());
            if let Some(&key) = checked.iter().find(|&&k| k == key) {
                *expected.entry(key).or_default().entry(value).or_default() += 1;
            }
        }
        if goroutine["kind"] == "do" {
            alpha_goids.insert(goroutine["goid"].to_string());
        }
    }
    assert_eq!(
        expected.get("tenant").map(|values| values.len()),
        Some(3),
        "the labels program should plant tenants alpha, beta and delta: {}",
        program.ready_line
    );

    let profile = wall_profile(program.pid(), "wall-labels");
    let window_ms = wall_window_ms(&profile);
    let labels = tags(&profile, &[]);
    for (key, values) in &expected {
        let shown = labels.values(key);
        let names: Vec<&String> = shown.keys().collect();
        assert_eq!(
            names,
            values.keys().collect::<Vec<_>>(),
            "values of label {key}:\n{}",
            labels.text
        );
        for (value, goroutines) in values {
            assert_near(
                &format!("wall time labelled {key}={value} (ms)"),
                shown[value],
                f64::from(*goroutines) * window_ms,
                TOLERANCE,
                &labels.text,
            );
        }
    }

    // -tagfocus picks out the goroutines that ran pprof.Do(tenant=alpha) themselves.
    let alpha = tags(&profile, &["-tagfocus=tenant=^alpha$"]);
    let goids: BTreeSet<String> = alpha.values("goid").into_keys().collect();
    assert_eq!(
        goids, alpha_goids,
        "goids under tenant=alpha:\n{}",
        alpha.text
    );
    let starts: Vec<String> = alpha.values("goroutine_start").into_keys().collect();
    assert_eq!(starts, ["main.doWorker"], "{}", alpha.text);
}

#[test]
fn a_wall_profile_is_of_one_go_process() {
    let sleepers = Sleepers::start(2);
    let pids: Vec<String> = sleepers.pids().iter().map(u32::to_string).collect();
    let dir = temp_dir("wall-refused");
    let output = dir.join("wall.pb.gz");
    let output = output.to_str().expect("a UTF-8 temp path");

    let not_go = run_goroscope(
        &[
            "profile",
            "--kind",
            "wall",
            "--pid",
            &pids[0],
            "--duration",
            "1s",
            "--output",
            output,
        ],
        PROFILE_TIMEOUT,
    );
    not_go.assert_code(2);
    assert!(
        not_go.stderr.contains("is not a Go program") && not_go.stderr.contains(&pids[0]),
        "a wall profile of sleep should be refused as not Go, naming the pid:\n{}",
        not_go.stderr
    );
    let two = run_goroscope(
        &[
            "profile",
            "--kind",
            "wall",
            "--pid",
            &pids[0],
            "--pid",
            &pids[1],
            "--duration",
            "1s",
            "--output",
            output,
        ],
        PROFILE_TIMEOUT,
    );
    two.assert_code(2);
    assert!(
        two.stderr.contains("exactly one --pid"),
        "two --pid should be refused for --kind wall:\n{}",
        two.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("listing the output directory")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "a refused profile left {left:?} behind");
}
