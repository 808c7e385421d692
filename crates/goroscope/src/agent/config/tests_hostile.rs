//! Configs written to hurt: huge values echoed back, control characters in values, keys and
//! the file name, deep nesting and alias bombs. Every error must stay short, print no control
//! character, carry a line, and come back fast.

use std::path::Path;
use std::time::{Duration, Instant};

use super::tests::refused;
use super::AgentConfig;

/// No control character but the final newline-free text: what a terminal would act on.
#[track_caller]
fn assert_printable(message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "control character in {message:?}"
    );
}

#[test]
fn a_huge_value_is_echoed_cut_short() {
    let pattern = "x".repeat(10_000_000);
    let text = format!("targets:\n  comms: [\"{pattern}\"]\n");
    let error = refused(&text);
    let message = error.to_string();
    assert!(
        message.len() < 400,
        "{} bytes: {}",
        message.len(),
        &message[..400]
    );
    assert!(message.contains("… (9999940 more bytes)"), "{message}");
    assert_eq!(
        (error.line(), error.column()),
        (Some(2), Some(11)),
        "{message}"
    );

    let long_key = "k".repeat(1_000_000);
    let error = refused(&format!("{long_key}: 1\n"));
    assert!(
        error.to_string().len() < 400,
        "{}",
        &error.to_string()[..400]
    );
    assert_eq!(error.line(), Some(1));

    let duration = format!("interval: \"{}\"\n", "9".repeat(1_000_000));
    let message = refused(&duration).to_string();
    assert!(message.len() < 400, "{}", &message[..400]);
}

#[test]
fn control_characters_in_values_keys_and_file_names_are_escaped() {
    for text in [
        "targets:\n  cgroups: [\"\\e]0;pwned\\a\\e[2J\"]\n",
        "\"evil\\e[2J\\nkey\": 1\n",
        "interval: \"5\\e[2Js\"\n",
        "labels: [comm, \"\\e[31mred\"]\n",
        "listen: \"\\e[2J:99\"\n",
    ] {
        let error = refused(text);
        let message = error.to_string();
        assert_printable(&message);
        assert!(error.line().is_some(), "{message}");
    }
    // Echoed values follow goroscope-model's rule, like every other printed name.
    let message = refused("targets:\n  cgroups: [\"\\e]0;t\\a\\n\"]\n").to_string();
    assert!(
        message.contains(r#""\e]0;t\x07\n" can never match"#),
        "{message}"
    );
    let error = AgentConfig::parse(
        "interval: x\n",
        Path::new("/tmp/a\u{1b}[2J\nb.yaml"),
        &|_| None,
    )
    .expect_err("a bad interval");
    let message = error.to_string();
    assert_printable(&message);
    assert!(
        message.starts_with("/tmp/a\\e[2J\\nb.yaml:1:11: interval:"),
        "{message}"
    );
}

#[test]
fn deep_nesting_is_refused_in_linear_time() {
    for text in [
        format!("a: {}", "[".repeat(100_000)),
        format!("a: {}", "{a: ".repeat(100_000)),
        "- ".repeat(100_000),
        "[\n".repeat(100_000),
    ] {
        let started = Instant::now();
        let error = refused(&text);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?} for {error}",
            started.elapsed()
        );
        assert!(
            error.to_string().contains("nest more than 128 deep"),
            "{error}"
        );
        assert!(error.line().is_some(), "{error}");
    }
}

#[test]
fn alias_bombs_are_refused_with_a_line() {
    // Nine levels of ten: a billion values from 100 lines.
    let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = Instant::now();
    let error = refused(&text);
    assert!(started.elapsed() < Duration::from_secs(5), "{error}");
    assert!(
        error.to_string().contains("more than 100000 values"),
        "{error}"
    );
    assert!(error.line().is_some(), "{error}");

    // The same bomb hidden in a mapping key, and in a value the schema reads.
    let keyed = format!("{text}? *a9\n: 1\n");
    let error = refused(&keyed);
    assert!(error.line().is_some(), "{error}");
    let read = "targets:\n  comms: &c [\"a\", \"b\"]\n  cgroups: *c\n";
    let error = refused(read);
    assert!(error.line().is_some(), "{error}");
}
