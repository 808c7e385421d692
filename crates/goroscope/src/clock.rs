//! Kernel timestamps are CLOCK_MONOTONIC; users want wall-clock time. The
//! offset between the two is measured once at start.

/// Converts CLOCK_MONOTONIC nanoseconds to Unix-epoch nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl WallClock {
    /// Measures the offset now.
    pub fn measure() -> Self {
        let mono = now_ns(libc::CLOCK_MONOTONIC);
        let real = now_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    /// Unix-epoch nanoseconds of a monotonic timestamp.
    pub fn to_unix_ns(self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.offset_ns).unwrap_or(0)
    }
}

/// Writes `HH:MM:SS.mmm` (UTC) of a Unix-epoch time in nanoseconds.
pub fn write_time_of_day(out: &mut impl std::io::Write, unix_ns: u64) -> std::io::Result<()> {
    let ms = unix_ns / 1_000_000;
    let secs = ms / 1000;
    write!(
        out,
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_is_utc_with_milliseconds() {
        let mut out = Vec::new();
        // 1970-01-02 01:02:03.456789
        write_time_of_day(&mut out, ((86_400 + 3723) * 1_000_000_000) + 456_789_000).unwrap();
        assert_eq!(out, b"01:02:03.456");
    }

    #[test]
    fn monotonic_now_maps_to_about_now() {
        let clock = WallClock::measure();
        let mono = now_ns(libc::CLOCK_MONOTONIC) as u64;
        let real = now_ns(libc::CLOCK_REALTIME) as u64;
        let mapped = clock.to_unix_ns(mono);
        assert!(mapped.abs_diff(real) < 50_000_000, "{mapped} vs {real}");
    }
}
