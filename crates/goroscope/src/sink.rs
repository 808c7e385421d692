//! Where the commands' output goes: a thread of its own writes to stdout, so a pipe nobody reads
//! (`goroscope trace | less`, the pager stopped) blocks that thread and never the command. The
//! command hands over chunks through a bounded queue: while the queue is full it waits, as a
//! blocking write would, but it looks at the stop signals every 50 ms; once a SIGINT or SIGTERM
//! came after the sink was made it stops waiting, and what could not be written is counted in
//! lines (one event or row per line) so the command can say so. (A signal that came before, the
//! one that ended collection and asked for the report, does not abandon that report.) The writer thread is never joined after a stop: if it is
//! still blocked in `write(2)`, it ends with the process, and it starts no further write. The
//! count is exact up to that one write (at most 4 KiB of whole lines): if the reader drains the
//! pipe before the process is gone, those lines arrive although they were counted as not
//! written (and a write that completed while the count was taken is counted as not written).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::run_control::StopSignals;

/// Bytes gathered before they are handed to the writer thread.
const CHUNK: usize = 64 * 1024;
/// Bytes the queue holds before the command waits: bounds memory, smooths bursts.
const QUEUE_BYTES: usize = 1024 * 1024;
/// How often a waiting command looks at the stop flag.
const STEP: Duration = Duration::from_millis(50);
/// Writes to a pipe up to this size are atomic (POSIX; Linux's is 4096).
const PIPE_BUF: usize = 4096;
/// How long [`Sink::finish`] still lets the writer drain after a stop.
const GRACE: Duration = Duration::from_millis(200);

/// What the writer thread and the command share.
#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Lines queued, not yet taken by the writer.
    queued_lines: u64,
    /// Lines of the chunk being written that are not written yet.
    in_flight_lines: u64,
    /// Lines thrown away after a write error.
    discarded_lines: u64,
    /// The command sends nothing more.
    closed: bool,
    /// The writer thread has ended (everything written, or an error).
    finished: bool,
    /// The command gave up after a stop: the writer starts no further write.
    abandoned: bool,
    /// The write error that ended the writer.
    error: Option<(io::ErrorKind, String)>,
}

struct Channel {
    state: Mutex<State>,
    changed: Condvar,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>, step: Duration) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(guard, step) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// A `Write` whose bytes reach stdout (or any file) from a writer thread.
pub struct Sink {
    channel: Arc<Channel>,
    buffer: Vec<u8>,
    signals: StopSignals,
    /// Stop signals that had come when the sink was made: only a later one abandons output.
    signals_before: usize,
    /// Lines dropped by the command side after a stop.
    abandoned_lines: u64,
}

impl Sink {
    /// Output to this process's stdout, abandoned (and counted) once a stop signal comes while
    /// the reader is behind.
    pub fn stdout(signals: StopSignals) -> io::Result<Sink> {
        // SAFETY: dup takes no pointers; on success the new descriptor is ours alone.
        let fd = unsafe { libc::dup(libc::STDOUT_FILENO) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by dup and is owned by nothing else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Sink::to(file, signals)
    }

    /// Output to `file`.
    pub fn to(mut file: File, signals: StopSignals) -> io::Result<Sink> {
        let channel = Arc::new(Channel {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let writer = Arc::clone(&channel);
        std::thread::Builder::new()
            .name("goroscope-out".into())
            .spawn(move || write_queue(&writer, &mut file))?;
        Ok(Sink {
            channel,
            buffer: Vec::with_capacity(CHUNK),
            signals_before: signals.count(),
            signals,
            abandoned_lines: 0,
        })
    }

    /// A stop signal came since the sink was made.
    fn stopped(&self) -> bool {
        self.signals.count() > self.signals_before
    }

    /// Hands `chunk` to the writer, waiting while the queue is full unless a stop came.
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let lines = count_lines(&chunk);
        let mut state = self.channel.lock();
        loop {
            if let Some((kind, message)) = &state.error {
                return Err(io::Error::new(*kind, message.clone()));
            }
            if state.queued_bytes + chunk.len() <= QUEUE_BYTES || state.queue.is_empty() {
                state.queued_bytes += chunk.len();
                state.queued_lines += lines;
                state.queue.push_back(chunk);
                self.channel.changed.notify_all();
                return Ok(());
            }
            if self.stopped() {
                // Stopping, and the reader is behind: nothing more waits for it.
                self.abandoned_lines += lines;
                return Ok(());
            }
            state = self.channel.wait(state, STEP);
        }
    }

    /// Hands over what is buffered, waits until everything is written, and returns how many
    /// lines were not written because a stop came while stdout was blocked. A write error
    /// (a closed pipe included) is returned as such.
    pub fn finish(mut self) -> io::Result<u64> {
        let rest = std::mem::take(&mut self.buffer);
        self.send(rest)?;
        let mut state = self.channel.lock();
        state.closed = true;
        self.channel.changed.notify_all();
        let mut give_up: Option<Instant> = None;
        while !state.finished {
            if give_up.is_none() && self.stopped() {
                give_up = Some(Instant::now() + GRACE);
            }
            if give_up.is_some_and(|at| Instant::now() >= at) {
                state.abandoned = true;
                break;
            }
            state = self.channel.wait(state, STEP);
        }
        if let Some((kind, message)) = &state.error {
            return Err(io::Error::new(*kind, message.clone()));
        }
        Ok(self.abandoned_lines
            + state.queued_lines
            + state.in_flight_lines
            + state.discarded_lines)
    }
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
            self.send(full)?;
        }
        Ok(bytes.len())
    }

    /// Hands what is buffered to the writer thread (without waiting for it to be written).
    fn flush(&mut self) -> io::Result<()> {
        let pending = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.send(pending)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Without finish (an error path): let the writer end once the queue is written.
        let mut state = self.channel.lock();
        state.closed = true;
        self.channel.changed.notify_all();
    }
}

/// The writer thread: writes queued chunks in order until the command closes the queue.
fn write_queue(channel: &Channel, out: &mut File) {
    loop {
        let chunk = {
            let mut state = channel.lock();
            while state.queue.is_empty() && !state.closed {
                state = channel.wait(state, Duration::from_secs(1));
            }
            let Some(chunk) = state.queue.pop_front() else {
                state.finished = true;
                channel.changed.notify_all();
                return;
            };
            let lines = count_lines(&chunk);
            state.queued_bytes -= chunk.len();
            state.queued_lines -= lines;
            state.in_flight_lines = lines;
            channel.changed.notify_all();
            chunk
        };
        let mut written = 0;
        while written < chunk.len() {
            if channel.lock().abandoned {
                return;
            }
            // At most PIPE_BUF bytes at a time, ending at a line's end when one is in reach: a
            // pipe takes such a write whole or not at all, so what a stop finds unwritten is
            // exactly what never reached the reader, and the reader never sees half a line.
            let piece = &chunk[written..chunk.len().min(written + PIPE_BUF)];
            let piece = match piece.iter().rposition(|&b| b == b'\n') {
                Some(end) => &piece[..=end],
                None => piece,
            };
            let result = match out.write(piece) {
                Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
                other => other,
            };
            match result {
                Ok(n) => {
                    written += n;
                    channel.lock().in_flight_lines = count_lines(&chunk[written..]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let mut state = channel.lock();
                    state.discarded_lines += state.in_flight_lines + state.queued_lines;
                    state.in_flight_lines = 0;
                    state.queued_lines = 0;
                    state.queued_bytes = 0;
                    state.queue.clear();
                    state.error = Some((e.kind(), e.to_string()));
                    state.finished = true;
                    channel.changed.notify_all();
                    return;
                }
            }
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Says on stderr how many lines a stop left unwritten (nothing when none).
pub fn report_unwritten(lines: u64, what: &str) {
    if lines > 0 {
        eprintln!(
            "goroscope: {lines} {what} not written: stopped while stdout was blocked (its reader \
             was not reading)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array we pass.
        let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "pipe: {}", io::Error::last_os_error());
        // SAFETY: both descriptors were just created and are owned by nothing else.
        unsafe {
            (
                File::from(OwnedFd::from_raw_fd(fds[0])),
                File::from(OwnedFd::from_raw_fd(fds[1])),
            )
        }
    }

    #[test]
    fn everything_is_written_in_order_when_the_reader_reads() {
        let (mut read, write) = pipe();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            read.read_to_string(&mut all).map(|_| all)
        });
        let mut sink = Sink::to(write, StopSignals::default()).expect("sink");
        let mut expected = String::new();
        for i in 0..100_000 {
            writeln!(sink, "line {i}").expect("write");
            expected.push_str(&format!("line {i}\n"));
        }
        assert_eq!(sink.finish().expect("finish"), 0);
        assert_eq!(reader.join().expect("reader").expect("read"), expected);
    }

    #[test]
    fn a_stop_ends_waiting_on_a_blocked_reader_and_counts_every_line_not_written() {
        let (mut read, write) = pipe();
        let signals = StopSignals::default();
        let mut sink = Sink::to(write, signals.clone()).expect("sink");
        let lines = 200_000u64; // 2.4 MB: more than the pipe and the queue hold
        let stopper = {
            let signals = signals.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                signals.raise();
            })
        };
        let began = Instant::now();
        for i in 0..lines {
            writeln!(sink, "line {i:06}").expect("write");
        }
        let unwritten = sink.finish().expect("finish");
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "took {:?}",
            began.elapsed()
        );
        stopper.join().expect("stopper");
        // What did reach the pipe, plus what was counted, is every line.
        let mut reached = Vec::new();
        // SAFETY: fcntl on a descriptor we own; only a flag changes.
        unsafe {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&read);
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        }
        let _ = read.read_to_end(&mut reached);
        let written = count_lines(&reached);
        assert!(unwritten > 0, "nothing counted as unwritten");
        // Exact but for the one write(2) that may have been blocked when the count was taken:
        // reading the pipe here lets it through (see the module documentation).
        let one_write = (PIPE_BUF / "line 000000\n".len()) as u64;
        assert!(
            (lines..=lines + one_write).contains(&(written + unwritten)),
            "{written} written + {unwritten} counted unwritten, of {lines}"
        );
    }

    #[test]
    fn only_a_signal_after_the_sink_was_made_abandons_output() {
        let (mut read, write) = pipe();
        let signals = StopSignals::default();
        signals.raise(); // the Ctrl-C that ended collection
        let mut sink = Sink::to(write, signals.clone()).expect("sink");
        let reader = std::thread::spawn(move || {
            // A slow reader: the queue fills and the sink must wait, not give up.
            std::thread::sleep(Duration::from_millis(300));
            let mut all = Vec::new();
            read.read_to_end(&mut all).map(|_| count_lines(&all))
        });
        for i in 0..200_000 {
            writeln!(sink, "line {i:06}").expect("write");
        }
        assert_eq!(sink.finish().expect("finish"), 0);
        assert_eq!(reader.join().expect("reader").expect("read"), 200_000);
    }

    #[test]
    fn a_closed_reader_is_a_broken_pipe() {
        let (read, write) = pipe();
        drop(read);
        let mut sink = Sink::to(write, StopSignals::default()).expect("sink");
        let mut result = Ok(());
        for _ in 0..100 {
            result = sink.write_all(&[b'x'; CHUNK]);
            if result.is_err() {
                break;
            }
        }
        let error = result
            .err()
            .or_else(|| sink.finish().err())
            .expect("an error");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
