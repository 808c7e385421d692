//! The queue of encoded requests waiting to be sent, bounded in bytes over all signals.
//!
//! When a new request does not fit, the oldest requests make room, whichever signal they
//! belong to: metrics are cumulative, so a newer request supersedes an older one. A request
//! being sent (or retried) still counts against the bound, as its memory is still held; it
//! is the oldest of its signal, and when it is dropped it is marked cancelled so its sender
//! gives it up without counting it twice. Pure bookkeeping, no I/O: the caller counts what
//! the queue reports dropped.

use std::collections::VecDeque;

use crate::batch::mergeable;
use crate::config::Signal;

/// A request waiting.
struct Waiting {
    /// Order of arrival over all signals.
    seq: u64,
    body: Vec<u8>,
    items: u64,
}

/// The request one signal's sender is working on.
struct InFlight {
    /// The arrival order of the oldest request merged into it.
    seq: u64,
    bytes: usize,
    cancelled: bool,
}

/// Requests handed to a sender: one or several waiting requests merged.
#[derive(Debug)]
pub(crate) struct Taken {
    /// The encoded request.
    pub body: Vec<u8>,
    /// Its items.
    pub items: u64,
    /// How many requests were merged into it.
    pub requests: u64,
}

/// Items dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub signal: Signal,
    pub items: u64,
}

/// What the queue holds of one signal.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub bytes: u64,
    pub requests: u64,
}

/// The queue.
#[derive(Default)]
pub(crate) struct Queue {
    waiting: [VecDeque<Waiting>; 3],
    in_flight: [Option<(InFlight, u64)>; 3],
    /// Bytes held over all signals (waiting and in flight, cancelled excepted).
    bytes: usize,
    /// Bytes waiting, per signal.
    waiting_bytes: [usize; 3],
    next_seq: u64,
}

impl Queue {
    /// Adds a request of `signal`, first dropping the oldest requests until everything fits
    /// in `bound` bytes. A request larger than `bound` is dropped itself.
    pub fn push(
        &mut self,
        signal: Signal,
        body: Vec<u8>,
        items: u64,
        bound: usize,
    ) -> Vec<Dropped> {
        if body.len() > bound {
            return vec![Dropped { signal, items }];
        }
        let dropped = self.make_room(bound - body.len());
        self.bytes += body.len();
        self.waiting_bytes[signal as usize] += body.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting[signal as usize].push_back(Waiting { seq, body, items });
        dropped
    }

    /// Drops the oldest requests until at most `bound` bytes are held.
    pub fn make_room(&mut self, bound: usize) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        while self.bytes > bound {
            match self.drop_oldest() {
                Some(d) => dropped.push(d),
                None => break,
            }
        }
        dropped
    }

    fn drop_oldest(&mut self) -> Option<Dropped> {
        let mut oldest: Option<(u64, Signal, bool)> = None;
        for signal in Signal::ALL {
            let i = signal as usize;
            let candidates = [
                self.in_flight[i]
                    .as_ref()
                    .filter(|(f, _)| !f.cancelled)
                    .map(|(f, _)| (f.seq, true)),
                self.waiting[i].front().map(|w| (w.seq, false)),
            ];
            for (seq, in_flight) in candidates.into_iter().flatten() {
                if oldest.is_none_or(|(s, _, _)| seq < s) {
                    oldest = Some((seq, signal, in_flight));
                }
            }
        }
        let (_, signal, in_flight) = oldest?;
        let i = signal as usize;
        if in_flight {
            let (flight, items) = self.in_flight[i].as_mut()?;
            flight.cancelled = true;
            self.bytes -= flight.bytes;
            Some(Dropped {
                signal,
                items: *items,
            })
        } else {
            let waiting = self.waiting[i].pop_front()?;
            self.bytes -= waiting.body.len();
            self.waiting_bytes[i] -= waiting.body.len();
            Some(Dropped {
                signal,
                items: waiting.items,
            })
        }
    }

    /// Takes the oldest waiting requests of `signal` for its sender, merged up to
    /// `batch_bytes` when the signal allows; `None` when nothing waits or the sender has not
    /// finished its last request.
    pub fn take(&mut self, signal: Signal, batch_bytes: usize) -> Option<Taken> {
        let i = signal as usize;
        if self.in_flight[i].is_some() {
            return None;
        }
        let first = self.waiting[i].pop_front()?;
        self.waiting_bytes[i] -= first.body.len();
        let seq = first.seq;
        let mut taken = Taken {
            body: first.body,
            items: first.items,
            requests: 1,
        };
        if mergeable(signal) {
            while let Some(next) = self.waiting[i].front() {
                if taken.body.len() + next.body.len() > batch_bytes {
                    break;
                }
                let Some(next) = self.waiting[i].pop_front() else {
                    break;
                };
                self.waiting_bytes[i] -= next.body.len();
                taken.body.extend_from_slice(&next.body);
                taken.items += next.items;
                taken.requests += 1;
            }
        }
        let flight = InFlight {
            seq,
            bytes: taken.body.len(),
            cancelled: false,
        };
        self.in_flight[i] = Some((flight, taken.items));
        Some(taken)
    }

    /// Whether the request `signal`'s sender holds was dropped to make room.
    pub fn is_cancelled(&self, signal: Signal) -> bool {
        self.in_flight[signal as usize]
            .as_ref()
            .is_some_and(|(f, _)| f.cancelled)
    }

    /// The sender of `signal` is done with its request (delivered or dropped): its bytes
    /// are released. Returns false when it had been cancelled (its drop is already counted).
    pub fn finish(&mut self, signal: Signal) -> bool {
        match self.in_flight[signal as usize].take() {
            Some((flight, _)) if !flight.cancelled => {
                self.bytes -= flight.bytes;
                true
            }
            _ => false,
        }
    }

    /// Removes every waiting request of `signal` and returns their items.
    pub fn drain(&mut self, signal: Signal) -> u64 {
        let waiting = std::mem::take(&mut self.waiting[signal as usize]);
        self.waiting_bytes[signal as usize] = 0;
        waiting
            .into_iter()
            .map(|w| {
                self.bytes -= w.body.len();
                w.items
            })
            .sum()
    }

    /// What is held of `signal`: waiting, plus its request in flight unless cancelled.
    pub fn held(&self, signal: Signal) -> Held {
        let i = signal as usize;
        let mut held = Held {
            bytes: self.waiting_bytes[i] as u64,
            requests: self.waiting[i].len() as u64,
        };
        if let Some((flight, _)) = self.in_flight[i].as_ref().filter(|(f, _)| !f.cancelled) {
            held.bytes += flight.bytes as u64;
            held.requests += 1;
        }
        held
    }

    /// Bytes held over all signals.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        vec![0; n]
    }

    #[test]
    fn the_oldest_requests_of_any_signal_make_room_and_the_bound_holds() {
        let mut q = Queue::default();
        assert!(q.push(Signal::Metrics, body(40), 1, 100).is_empty());
        assert!(q.push(Signal::Logs, body(40), 2, 100).is_empty());
        let dropped = q.push(Signal::Metrics, body(40), 3, 100);
        assert_eq!(
            dropped,
            vec![Dropped {
                signal: Signal::Metrics,
                items: 1
            }]
        );
        assert_eq!(q.bytes(), 80);
        let dropped = q.push(Signal::Metrics, body(100), 4, 100);
        assert_eq!(dropped.len(), 2);
        assert_eq!(q.bytes(), 100);
        assert_eq!(
            q.push(Signal::Logs, body(101), 5, 100),
            vec![Dropped {
                signal: Signal::Logs,
                items: 5
            }]
        );
        assert_eq!(q.bytes(), 100);
    }

    #[test]
    fn waiting_requests_merge_up_to_the_batch_size_but_profiles_never() {
        let mut q = Queue::default();
        for items in 1..=4 {
            q.push(Signal::Metrics, body(30), items, 1000);
            q.push(Signal::Profiles, body(30), items, 1000);
        }
        let taken = q
            .take(Signal::Metrics, 90)
            .unwrap_or_else(|| panic!("nothing taken"));
        assert_eq!((taken.body.len(), taken.items, taken.requests), (90, 6, 3));
        assert!(
            q.take(Signal::Metrics, 90).is_none(),
            "one request in flight at a time"
        );
        assert!(q.finish(Signal::Metrics));
        let taken = q
            .take(Signal::Metrics, 90)
            .unwrap_or_else(|| panic!("nothing taken"));
        assert_eq!(taken.requests, 1);
        let profiles = q
            .take(Signal::Profiles, 1000)
            .unwrap_or_else(|| panic!("no profile"));
        assert_eq!(profiles.requests, 1);
        assert_eq!(
            q.held(Signal::Profiles),
            Held {
                bytes: 120,
                requests: 4
            }
        );
    }

    #[test]
    fn a_request_in_flight_is_cancelled_when_it_is_the_oldest() {
        let mut q = Queue::default();
        q.push(Signal::Metrics, body(60), 1, 100);
        let _ = q.take(Signal::Metrics, 100);
        let dropped = q.push(Signal::Metrics, body(60), 2, 100);
        assert_eq!(
            dropped,
            vec![Dropped {
                signal: Signal::Metrics,
                items: 1
            }]
        );
        assert!(q.is_cancelled(Signal::Metrics));
        assert_eq!(q.bytes(), 60);
        assert!(
            !q.finish(Signal::Metrics),
            "a cancelled request is not counted twice"
        );
        assert_eq!(q.bytes(), 60);
        assert_eq!(q.drain(Signal::Metrics), 2);
        assert_eq!(q.bytes(), 0);
    }
}
