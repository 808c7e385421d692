//! One malformed config per kind of mistake, each checked for the exact line, column, field
//! and message an operator sees.

use super::tests::{check, refused};

#[test]
fn syntax_errors_point_at_the_line() {
    // An unclosed bracket points where it opens, not where the parser gave up (4:1); more
    // of these are in `tests_syntax`.
    let error = refused("listen: \"127.0.0.1:9949\"\ncollectors:\n  tcp: { enabled: true\n");
    assert_eq!((error.line(), error.column()), (Some(3), Some(8)));
    assert_eq!(error.field(), Some("collectors.tcp"));
    assert!(
        error.to_string().starts_with("agent.yaml:3:8: collectors.tcp: unclosed '{' (the file ends at 4:1 before the closing '}')"),
        "{error}"
    );
    let tab = refused("collectors:\n\ttcp: { enabled: true }\n");
    assert_eq!(tab.line(), Some(2));
    assert!(
        tab.to_string().ends_with("indent with spaces, not tabs"),
        "{tab}"
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text = "# agent\nlisten: \"127.0.0.1:9949\"\ninterval: 5s\ncollectors:\n  \
                syscalls: { enabled: true }\n  tcp:\n    enabled: yes please\n";
    check(
        text,
        7,
        Some("collectors.tcp.enabled"),
        "agent.yaml:7:14: collectors.tcp.enabled: expected a boolean (true or false), found \"yes please\"",
    );
    check(
        "collectors:\n  tcp: false\n",
        2,
        Some("collectors.tcp"),
        "agent.yaml:2:8: collectors.tcp: expected a mapping like { enabled: true, edges: false }, found false",
    );
    check(
        "targets:\n  comms: nginx\n",
        2,
        Some("targets.comms"),
        "agent.yaml:2:10: targets.comms: expected a list like [\"nginx\", \"api-*\"], found \"nginx\"",
    );
    check(
        "listen: 9949\n",
        1,
        Some("listen"),
        "agent.yaml:1:9: listen: expected an address like \"127.0.0.1:9949\", found 9949",
    );
    check(
        "interval: !duration 5s\n",
        1,
        Some("interval"),
        "agent.yaml:1:11: interval: expected a duration like 5s, 500ms or 1m30s, found a value tagged !duration",
    );
}

#[test]
fn unknown_fields_are_refused_with_the_known_ones() {
    check(
        "listen: \"127.0.0.1:9949\"\nlisten_addr: x\n",
        2,
        Some("listen_addr"),
        "agent.yaml:2:1: listen_addr: unknown field; expected one of listen, interval, collectors, targets, labels, histograms, limits, self_monitoring, exporters",
    );
    check(
        "listen: \"127.0.0.1:9949\"\ncollectors:\n  tpc: { enabled: false }\n",
        3,
        Some("collectors.tpc"),
        "agent.yaml:3:3: collectors.tpc: unknown field; expected one of syscalls, processes, files, scheduler, tcp, network, go (did you mean tcp?)",
    );
    check(
        "collectors:\n  go: { enabled: true, max-processes: 3 }\n",
        2,
        Some("collectors.go.max-processes"),
        "agent.yaml:2:24: collectors.go.max-processes: unknown field; expected one of enabled, interval, max_processes, leak_after, discover_every (did you mean max_processes?)",
    );
    check(
        "limits:\n  5: x\n",
        2,
        Some("limits.5"),
        "agent.yaml:2:3: limits.5: unknown field; expected one of max_series_per_family, max_tcp_edges",
    );
}

#[test]
fn repeated_fields_point_at_the_second() {
    check(
        "interval: 5s\nlabels: [comm]\ninterval: 10s\n",
        3,
        Some("interval"),
        "agent.yaml:3:1: interval: given twice; keep one",
    );
}

#[test]
fn bad_durations_and_ranges_say_what_is_allowed() {
    check(
        "interval: fast\n",
        1,
        Some("interval"),
        "agent.yaml:1:11: interval: \"fast\" is not a duration (expected number at 0); write it like 5s, 500ms or 1m30s",
    );
    check(
        "interval: 50ms\n",
        1,
        Some("interval"),
        "agent.yaml:1:11: interval: \"50ms\" is too short; use a duration from 100ms to 10m",
    );
    check(
        "collectors:\n  go:\n    leak_after: 2d\n",
        3,
        Some("collectors.go.leak_after"),
        "agent.yaml:3:17: collectors.go.leak_after: \"2d\" is too long; use a duration from 1s to 1day",
    );
    check(
        "limits:\n  max_series_per_family: 0\n",
        2,
        Some("limits.max_series_per_family"),
        "agent.yaml:2:26: limits.max_series_per_family: 0 is out of range; use a whole number from 1 to 1000000",
    );
    check(
        "limits:\n  max_tcp_edges: lots\n",
        2,
        Some("limits.max_tcp_edges"),
        "agent.yaml:2:18: limits.max_tcp_edges: expected a whole number from 1 to 1000000, found \"lots\"",
    );
}

#[test]
fn bad_listen_addresses_say_how_to_write_one() {
    check(
        "listen: localhost:9949\n",
        1,
        Some("listen"),
        "agent.yaml:1:9: listen: \"localhost:9949\" is not an IP address and port; write it like 127.0.0.1:9949 or [::]:9949 (host names are not looked up)",
    );
}

#[test]
fn labels_are_known_once_and_include_comm() {
    check(
        "labels: [comm, namespace]\n",
        1,
        Some("labels[1]"),
        "agent.yaml:1:16: labels[1]: unknown label \"namespace\"; the labels are comm, pid, cgroup, container_id",
    );
    check(
        "labels:\n  - pid\n  - cgroup\n",
        2,
        Some("labels"),
        "agent.yaml:2:3: labels: comm is missing; every series is labelled with its process name: add comm to the list",
    );
    check(
        "labels: [comm, pid, pid]\n",
        1,
        Some("labels[2]"),
        "agent.yaml:1:21: labels[2]: \"pid\" is listed twice; list each label once",
    );
}

#[test]
fn histogram_bounds_are_checked_together() {
    check(
        "histograms:\n  buckets_per_octave: 3\n",
        2,
        Some("histograms.buckets_per_octave"),
        "agent.yaml:2:23: histograms.buckets_per_octave: 3 is not allowed; use 1, 2 or 4 (bucket boundaries per doubling of latency)",
    );
    check(
        "histograms:\n  buckets_per_octave: 2\n  min: 10us\n  max: 5us\n",
        3,
        Some("histograms.min"),
        "agent.yaml:3:8: histograms.min: \"10us\" must be below histograms.max \"5us\"; lower min or raise max",
    );
    // Only max is set: the default min is not in the file, so max is blamed.
    check(
        "histograms:\n  max: 500ns\n",
        2,
        Some("histograms.max"),
        "agent.yaml:2:8: histograms.max: \"500ns\" must be above histograms.min \"1us\"; raise max or lower min",
    );
    check(
        "histograms:\n  min: 1000ns\n  max: 1010ns\n",
        2,
        Some("histograms.min"),
        "agent.yaml:2:8: histograms.min: no bucket boundary lies between histograms.min \"1us\" and histograms.max \"1us 10ns\" at 1 per octave; widen the range or raise buckets_per_octave",
    );
}

#[test]
fn patterns_that_cannot_match_are_refused() {
    check(
        "targets:\n  cgroups: [\"/kubepods.slice/**\", \"system.slice/*\"]\n",
        2,
        Some("targets.cgroups[1]"),
        "agent.yaml:2:35: targets.cgroups[1]: \"system.slice/*\" can never match: cgroup paths start with / (as in /proc/PID/cgroup after 0::); write \"/system.slice/*\"",
    );
    check(
        "targets:\n  comms:\n    - \"\"\n",
        3,
        Some("targets.comms[0]"),
        "agent.yaml:3:7: targets.comms[0]: \"\": an empty pattern matches nothing",
    );
    check(
        "targets:\n  comms: [kube-controller-manager]\n",
        2,
        Some("targets.comms[0]"),
        "agent.yaml:2:11: targets.comms[0]: \"kube-controller-manager\" can never match: process names (/proc/PID/comm) are cut to 15 bytes; match their first 15, like \"kube-controller\"",
    );
    check(
        "collectors:\n  network: { interfaces: [] }\n",
        2,
        Some("collectors.network.interfaces"),
        "agent.yaml:2:26: collectors.network.interfaces: an empty list matches no interface; write [\"*\"] for all of them, or turn the collector off with enabled: false",
    );
    check(
        "targets:\n  pids: [1, 0]\n",
        2,
        Some("targets.pids[1]"),
        "agent.yaml:2:13: targets.pids[1]: 0 is out of range; use a whole number from 1 to 4194304",
    );
}

#[test]
fn the_file_must_be_one_mapping() {
    check(
        "- listen\n- interval\n",
        1,
        None,
        "agent.yaml:1:1: not a YAML mapping (found a list); write fields like `listen:` and `collectors:`, as in config/agent.example.yaml",
    );
    check(
        "interval: 5s\n---\ninterval: 6s\n",
        3,
        None,
        "agent.yaml:3:1: a second YAML document starts here, after a `---` line; the file must hold one document: remove that line and what follows, or merge it into the first",
    );
    let empty_second = refused("---\ninterval: 5s\n---\n");
    assert_eq!(empty_second.field(), None);
    assert!(empty_second.line().is_some(), "{empty_second}");
}
