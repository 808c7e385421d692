//! A collector's life across reloads: off, up, or down with the reason, and what it counted
//! kept through all three. Every source says once what survives it ([`Source::Kept`]: its
//! ledgers, with what live processes counted carried per process; its own loss counters) and
//! how to stop ([`Source::park`]); [`Probe`] does the rest the same way for every collector, so
//! turning one off and on again (or losing it and starting it again) resets no counter.

use goroscope_bpf::Losses;

use crate::agent::owners::Owners;

/// A source whose counts outlive its collector.
pub trait Source: Sized {
    /// What the source counted, kept while its collector is off or down.
    type Kept: Default;

    /// Kernel-side losses so far (None for sources without a kernel side).
    fn losses(&self) -> Option<anyhow::Result<Losses>> {
        None
    }

    /// Stops collecting: reads the kernel one last time (best effort), releases it and returns
    /// everything counted, live processes' values carried into the next life.
    fn park(self, owners: &mut Owners) -> Self::Kept;
}

/// A collector's state: turned off by the config, running, or down with the reason. Off and
/// down keep what it counted.
pub enum Probe<T: Source> {
    /// Not enabled in the config.
    Off(T::Kept),
    /// Running.
    Up(T),
    /// Enabled but could not start (or failed while running): why.
    Down(String, T::Kept),
}

impl<T: Source> Default for Probe<T> {
    fn default() -> Self {
        Probe::Off(T::Kept::default())
    }
}

impl<T: Source> Probe<T> {
    /// Starts the collector unless it is up: `start` makes the kernel side, `resume` joins it
    /// with what was kept. A failed start leaves it down, keeping what was kept.
    pub fn turn_on<K>(
        &mut self,
        name: &str,
        start: impl FnOnce() -> anyhow::Result<K>,
        resume: impl FnOnce(K, T::Kept) -> T,
    ) {
        let kept = match std::mem::take(self) {
            Probe::Off(kept) | Probe::Down(_, kept) => kept,
            up @ Probe::Up(_) => {
                *self = up;
                return;
            }
        };
        *self = match start() {
            Ok(kernel) => Probe::Up(resume(kernel, kept)),
            Err(error) => {
                eprintln!("goroscope: agent: {name} collector is down: {error:#}");
                Probe::Down(format!("{error:#}"), kept)
            }
        };
    }

    /// Turns the collector off, keeping what it counted. Returns its kernel losses so far, for
    /// the caller to keep counting.
    pub fn turn_off(&mut self, owners: &mut Owners) -> Losses {
        let (losses, kept) = match std::mem::take(self) {
            Probe::Up(source) => park(source, owners),
            Probe::Off(kept) | Probe::Down(_, kept) => (Losses::default(), kept),
        };
        *self = Probe::Off(kept);
        losses
    }

    /// Marks a running collector down (it failed), keeping what it counted. Returns its kernel
    /// losses so far.
    pub fn fail(&mut self, reason: String, owners: &mut Owners) -> Losses {
        let (losses, kept) = match std::mem::take(self) {
            Probe::Up(source) => park(source, owners),
            Probe::Off(kept) | Probe::Down(_, kept) => (Losses::default(), kept),
        };
        *self = Probe::Down(reason, kept);
        losses
    }

    /// The running source.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Probe::Up(source) => Some(source),
            _ => None,
        }
    }

    /// The running source.
    pub fn get(&self) -> Option<&T> {
        match self {
            Probe::Up(source) => Some(source),
            _ => None,
        }
    }

    /// Why it is down, when it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Probe::Down(why, _) => Some(why),
            _ => None,
        }
    }

    /// 1 up, 0 down, None off.
    pub fn up(&self) -> Option<bool> {
        match self {
            Probe::Off(_) => None,
            Probe::Up(_) => Some(true),
            Probe::Down(..) => Some(false),
        }
    }
}

/// Reads a running source's losses, then parks it.
fn park<T: Source>(source: T, owners: &mut Owners) -> (Losses, T::Kept) {
    let losses = match source.losses() {
        Some(Ok(losses)) => losses,
        Some(Err(error)) => {
            eprintln!(
                "goroscope: agent: reading a stopping collector's losses failed ({error:#}); \
                 goroscope_events_dropped_total may miss what it lost since the last cycle"
            );
            Losses::default()
        }
        None => Losses::default(),
    };
    (losses, source.park(owners))
}
