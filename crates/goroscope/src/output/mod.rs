//! Everything goroscope prints: one module per command's output, each with
//! a text and a JSON form. Text goes through goroscope-model's one escaping
//! rule (`goroscope_model::text`) wherever it holds a name, path or message
//! that came from outside goroscope.

pub mod doctor;
pub mod events;
pub mod goroutines;
pub mod syscalls;

use std::fmt;

use goroscope_model::{escaped, Escaped};

/// `text` (from another process, a binary or the system) escaped for printing.
pub fn safe(text: &str) -> Escaped<'_> {
    escaped(text.as_bytes())
}

/// A duration in nanoseconds, printed with a unit a person reads at a glance.
pub struct HumanNs(pub u64);

impl fmt::Display for HumanNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0 as f64;
        if self.0 < 1_000 {
            write!(f, "{}ns", self.0)
        } else if self.0 < 1_000_000 {
            write!(f, "{:.1}µs", ns / 1e3)
        } else if self.0 < 1_000_000_000 {
            write!(f, "{:.1}ms", ns / 1e6)
        } else {
            write!(f, "{:.2}s", ns / 1e9)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HumanNs;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(HumanNs(999).to_string(), "999ns");
        assert_eq!(HumanNs(1_500).to_string(), "1.5µs");
        assert_eq!(HumanNs(2_340_000).to_string(), "2.3ms");
        assert_eq!(HumanNs(12_345_678_901).to_string(), "12.35s");
    }
}
