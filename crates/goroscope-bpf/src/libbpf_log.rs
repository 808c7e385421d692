//! Captures what libbpf prints (warnings and the verifier log) instead of
//! letting it reach the terminal, so that a failed load can report the
//! relevant end of the verifier log in its error.

use std::sync::Mutex;

use libbpf_rs::PrintLevel;

/// How many lines of the verifier log an error keeps.
const VERIFIER_LOG_LINES: usize = 20;

static CAPTURED: Mutex<String> = Mutex::new(String::new());

fn capture(_level: PrintLevel, msg: String) {
    if let Ok(mut buf) = CAPTURED.lock() {
        // Bound the buffer: only the end of a log is ever reported.
        if buf.len() > 1 << 20 {
            buf.clear();
        }
        buf.push_str(&msg);
    }
}

/// Routes libbpf's messages into the capture buffer (idempotent).
pub fn install() {
    libbpf_rs::set_print(Some((PrintLevel::Info, capture)));
}

/// Empties the capture buffer; call before an operation whose log you want.
pub fn clear() {
    if let Ok(mut buf) = CAPTURED.lock() {
        buf.clear();
    }
}

/// Takes what was captured since the last `clear`, trimmed to its last lines.
pub fn take_trimmed() -> String {
    let text = match CAPTURED.lock() {
        Ok(mut buf) => std::mem::take(&mut *buf),
        Err(_) => return String::new(),
    };
    trim_log(&text, VERIFIER_LOG_LINES)
}

/// The last `max_lines` non-empty lines of `log`, with a marker when cut.
pub fn trim_log(log: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let skipped = lines.len().saturating_sub(max_lines);
    let mut out = String::new();
    if skipped > 0 {
        out.push_str(&format!("... ({skipped} earlier lines)\n"));
    }
    out.push_str(&lines[skipped..].join("\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::trim_log;

    #[test]
    fn keeps_the_last_lines_and_says_how_many_were_cut() {
        let log = "a\n\nb\nc\nd\n";
        assert_eq!(trim_log(log, 2), "... (2 earlier lines)\nc\nd");
        assert_eq!(trim_log(log, 10), "a\nb\nc\nd");
        assert_eq!(trim_log("", 3), "");
    }
}
