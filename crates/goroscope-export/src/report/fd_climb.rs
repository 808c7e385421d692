//! The fd climb rule: whether a process's open file descriptors climb steadily over a
//! recording, which is a leak of descriptors even when it is slow.

/// A steady climb of open file descriptors (see [`fd_climb`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FdClimb {
    /// Open fds at the first point.
    pub from: u64,
    /// Open fds at the last point.
    pub to: u64,
    /// `(to - from)` per minute of the points' span.
    pub per_minute: f64,
    /// Window-to-window steps in which the floor rose.
    pub rising_steps: usize,
    /// Window-to-window steps looked at.
    pub steps: usize,
}

/// Fewest points [`fd_climb`] judges.
pub const FD_CLIMB_MIN_POINTS: usize = 10;
/// Windows [`fd_climb`] cuts the points into.
pub const FD_CLIMB_WINDOWS: usize = 10;

/// Whether open fds climb steadily over `points` (`(at_ns, fds)`, in time order): a leak of
/// descriptors, even when it is slow.
///
/// The rule: with at least [`FD_CLIMB_MIN_POINTS`] points, cut them into
/// [`FD_CLIMB_WINDOWS`] consecutive windows of (nearly) equal size and take each window's
/// *floor*, its lowest value. It is a climb when the floor rose in at least 80 % of the
/// window-to-window steps. Floors ignore the churn of descriptors opened and closed within a
/// window (a busy server's sockets), so a noisy flat series is not a climb, a leak under
/// churn is, and a single jump (a pool filled once) rises in only one step and is not.
pub fn fd_climb(points: &[(u64, u64)]) -> Option<FdClimb> {
    let n = points.len();
    if n < FD_CLIMB_MIN_POINTS {
        return None;
    }
    let floors: Vec<u64> = (0..FD_CLIMB_WINDOWS)
        .filter_map(|w| {
            let start = w * n / FD_CLIMB_WINDOWS;
            let end = (w + 1) * n / FD_CLIMB_WINDOWS;
            points[start..end].iter().map(|&(_, fds)| fds).min()
        })
        .collect();
    let steps = floors.len().saturating_sub(1);
    let rising_steps = floors.windows(2).filter(|pair| pair[1] > pair[0]).count();
    if steps == 0 || rising_steps * 5 < steps * 4 {
        return None;
    }
    let (first_ns, from) = points[0];
    let (last_ns, to) = points[n - 1];
    let minutes = last_ns.saturating_sub(first_ns) as f64 / 60e9;
    let per_minute = if minutes > 0.0 {
        (to as f64 - from as f64) / minutes
    } else {
        0.0
    };
    Some(FdClimb {
        from,
        to,
        per_minute,
        rising_steps,
        steps,
    })
}
