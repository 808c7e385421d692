//! Files that are not YAML: an unclosed bracket or quote points where it was opened and says
//! where the parser gave up; every other syntax error points where the parser gave up.

use super::tests::check;

#[test]
fn an_unclosed_bracket_points_where_it_opens() {
    // The example: the parser gives up at 4:1, the fix goes at 3:8.
    check(
        "listen: \"127.0.0.1:9949\"\ncollectors:\n  tcp: [oops\n",
        3,
        Some("collectors.tcp"),
        "agent.yaml:3:8: collectors.tcp: unclosed '[' (the file ends at 4:1 before the closing ']'); add the ']'",
    );
    check(
        "labels: [comm, pid\n",
        1,
        Some("labels"),
        "agent.yaml:1:9: labels: unclosed '[' (the file ends at 2:1 before the closing ']'); add the ']'",
    );
    check(
        "interval: 5s\nself_monitoring: { bpf_stats: true\n",
        2,
        Some("self_monitoring"),
        "agent.yaml:2:18: self_monitoring: unclosed '{' (the file ends at 3:1 before the closing '}'); add the '}'",
    );
    check(
        "collectors:\n  go:\n    enabled: true\n  network:\n    interfaces: [\"eth*\", \"ens*\"\n",
        5,
        Some("collectors.network.interfaces"),
        "agent.yaml:5:17: collectors.network.interfaces: unclosed '[' (the file ends at 6:1 before the closing ']'); add the ']'",
    );
    // Without a final line break the file ends on the line after the last, as libyaml counts.
    check(
        "targets:\n  pids: [1, 2",
        2,
        Some("targets.pids"),
        "agent.yaml:2:9: targets.pids: unclosed '[' (the file ends at 3:1 before the closing ']'); add the ']'",
    );
}

#[test]
fn an_unclosed_bracket_followed_by_more_fields_says_where_the_parser_gave_up() {
    check(
        "collectors:\n  tcp: [oops\n  go: { enabled: true }\ninterval: 5s\n",
        2,
        Some("collectors.tcp"),
        "agent.yaml:2:8: collectors.tcp: unclosed '[' (the parser gave up at 3:5, on a line indented no deeper than this one, before the closing ']'); add the ']' or indent the lines the list spans deeper than this one",
    );
    check(
        "targets:\n  comms: { a: 1\n  pids: [1]\nlabels: [comm]\n",
        2,
        Some("targets.comms"),
        "agent.yaml:2:10: targets.comms: unclosed '{' (the parser gave up at 3:7, on a line indented no deeper than this one, before the closing '}'); add the '}' or indent the lines the mapping spans deeper than this one",
    );
    check(
        "targets:\n  comms: [\"a\"\n---\nx: 1\n",
        2,
        Some("targets.comms"),
        "agent.yaml:2:10: targets.comms: unclosed '[' (the `---` at 3:1 ends the document before the closing ']'); add the ']'",
    );
}

#[test]
fn brackets_unclosed_inside_brackets_are_all_named_innermost_first() {
    check(
        "collectors:\n  tcp: { enabled: [true\n",
        2,
        Some("collectors.tcp.enabled"),
        "agent.yaml:2:19: collectors.tcp.enabled: unclosed '[' (the file ends at 3:1 before the closing ']'); add the ']'; then close the '{' at 2:8 with '}'",
    );
    check(
        "collectors:\n  network:\n    interfaces: [eth0, { a: [b\n    exclude: [lo]\nlabels: [comm]\n",
        3,
        Some("collectors.network.interfaces[1].a"),
        "agent.yaml:3:29: collectors.network.interfaces[1].a: unclosed '[' (the parser gave up at 4:12, on a line indented no deeper than this one, before the closing ']'); add the ']' or indent the lines the list spans deeper than this one; then close the '{' at 3:24 with '}' and the '[' at 3:17 with ']'",
    );
    check(
        "- [a\n- b\n",
        1,
        Some("[0]"),
        "agent.yaml:1:3: [0]: unclosed '[' (the file ends at 3:1 before the closing ']'); add the ']'",
    );
}

#[test]
fn an_unterminated_string_points_at_its_opening_quote() {
    check(
        "listen: \"127.0.0.1:9949\ninterval: 5s\n",
        1,
        Some("listen"),
        "agent.yaml:1:9: listen: unclosed '\"' (the file ends at 3:1 before the closing '\"'); add the closing '\"' where the text ends",
    );
    check(
        "targets:\n  comms: ['nginx, api]\n",
        2,
        Some("targets.comms[0]"),
        "agent.yaml:2:11: targets.comms[0]: unclosed \"'\" (the file ends at 3:1 before the closing \"'\"); add the closing \"'\" where the text ends",
    );
    check(
        "collectors:\n  network:\n    exclude: [\"lo\", \"docker*]\n",
        3,
        Some("collectors.network.exclude[1]"),
        "agent.yaml:3:21: collectors.network.exclude[1]: unclosed '\"' (the file ends at 4:1 before the closing '\"'); add the closing '\"' where the text ends",
    );
    check(
        "interval: \"5s\n...\n",
        1,
        Some("interval"),
        "agent.yaml:1:11: interval: unclosed '\"' (the `...` at 2:1 ends the document before the closing '\"'); add the closing '\"' where the text ends",
    );
}

#[test]
fn a_missing_comma_inside_closed_brackets_points_where_the_parser_gave_up() {
    check(
        "targets:\n  comms: [a, \"b\" \"c\"]\n",
        2,
        None,
        "agent.yaml:2:18: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence started at 2:10; put a ',' between two items, and check the quotes",
    );
    check(
        "targets:\n  comms: [\n    \"a\"\n    \"b\"\n  ]\n",
        4,
        None,
        "agent.yaml:4:5: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence started at 2:10; put a ',' between two items, and check the quotes",
    );
}

#[test]
fn other_syntax_errors_point_where_they_did() {
    // Positions as serde_yaml_ng reported them before the parser's events were read directly.
    check(
        "collectors:\n\ttcp: { enabled: true }\n",
        2,
        None,
        "agent.yaml:2:1: invalid YAML: found character that cannot start any token, while scanning for the next token; indent with spaces, not tabs",
    );
    check(
        "interval: 5s\n\tlisten: x\n",
        2,
        None,
        "agent.yaml:2:1: invalid YAML: found a tab character that violates indentation, while scanning a plain scalar; indent with spaces, not tabs",
    );
    check(
        "collectors:\n  tcp: enabled: true\n",
        2,
        None,
        "agent.yaml:2:15: invalid YAML: mapping values are not allowed in this context; check the indentation (spaces only) and the quotes on this line and the one above",
    );
    check(
        "collectors:\n  tcp: {}\n go: {}\n",
        3,
        None,
        "agent.yaml:3:2: invalid YAML: did not find expected key, while parsing a block mapping; check the indentation (spaces only) and the quotes on this line and the one above",
    );
    check(
        "labels: [comm]]\n",
        1,
        None,
        "agent.yaml:1:15: invalid YAML: did not find expected key, while parsing a block mapping; check the indentation (spaces only) and the quotes on this line and the one above",
    );
    check(
        "labels:\n  - comm\n  pid: 1\n",
        3,
        None,
        "agent.yaml:3:3: invalid YAML: did not find expected '-' indicator, while parsing a block collection; check the indentation (spaces only) and the quotes on this line and the one above",
    );
    check(
        "listen: \"127.0.0.1\\q\"\n",
        1,
        None,
        "agent.yaml:1:19: invalid YAML: found unknown escape character, while parsing a quoted scalar; check the indentation (spaces only) and the quotes on this line and the one above",
    );
}

#[test]
fn what_yaml_cannot_hold_is_named() {
    check(
        "listen: \"127.0.0.1:9949\"\ninterval: 5\u{1}s\n",
        2,
        None,
        "agent.yaml:2:12: invalid YAML: control characters are not allowed (found U+0001); remove it, or write it as an escape in a double-quoted string, like \"\\u0001\"",
    );
    check(
        "interval: *five\n",
        1,
        None,
        "agent.yaml:1:11: invalid YAML: unknown anchor; *five must come after an &five that it repeats",
    );
    check(
        "interval: !!int 5s\n",
        1,
        None,
        "agent.yaml:1:11: invalid YAML: \"5s\" is tagged !!int but is not an integer; remove the tag or fix the value",
    );
}

#[test]
fn anchors_and_aliases_still_read_and_point_at_what_they_repeat() {
    let config = super::AgentConfig::parse(
        "interval: &every 30s\ncollectors:\n  go: { interval: *every }\n",
        std::path::Path::new("agent.yaml"),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(
        config.collectors.go.interval,
        std::time::Duration::from_secs(30)
    );
    check(
        "limits: &l { max_tcp_edges: 0 }\nself_monitoring: *l\n",
        1,
        Some("limits.max_tcp_edges"),
        "agent.yaml:1:29: limits.max_tcp_edges: 0 is out of range; use a whole number from 1 to 1000000",
    );
}
