//! Streams events as readable lines or JSON lines. One writer is reused for
//! the whole run, so printing an event does not allocate (exec arguments,
//! which must be split, and JSON twins of names that are not UTF-8 excepted).
//!
//! Text escapes names, paths and arguments with goroscope-model's one rule
//! (`\n`, `\e`, `\xNN`…), so one event is always one line and no control
//! byte reaches the terminal. JSON keeps exact bytes: a field whose bytes are
//! not UTF-8 gets a `<field>_base64` twin (`comm_base64`, `filename_base64`,
//! `path_base64`, `args_base64`).

use std::borrow::Cow;
use std::io::{self, Write};

use goroscope_model::{
    base64, base64_if_not_utf8, errno_name, escaped, escaped_quoted, signal_name, syscall_name,
    write_open_flags, Event, EventDetail,
};
use serde::Serialize;

use crate::cli::StreamFormat;
use crate::clock::{write_time_of_day, WallClock};

use super::HumanNs;

/// Writes events in one format.
pub struct EventWriter {
    format: StreamFormat,
    clock: WallClock,
    flags: String,
}

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    ts_ns: u64,
    event: &'static str,
    pid: u32,
    tid: u32,
    comm: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm_base64: Option<String>,
    cgroup_id: u64,
    #[serde(flatten)]
    detail: JsonDetail<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonDetail<'a> {
    Exec {
        ppid: u32,
        filename: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        filename_base64: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        args: Option<Vec<Cow<'a, str>>>,
        /// Every argument in base64, when one of them is not UTF-8.
        #[serde(skip_serializing_if = "Option::is_none")]
        args_base64: Option<Vec<String>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        args_truncated: bool,
    },
    Exit {
        ppid: u32,
        exit_code: i32,
        signal: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal_name: Option<&'static str>,
        core_dumped: bool,
        lifetime_ns: u64,
    },
    Fork {
        child_pid: u32,
    },
    Open {
        path: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path_base64: Option<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        path_truncated: bool,
        flags: &'a str,
        flags_raw: u64,
        mode: u32,
        dirfd: i32,
        syscall: &'static str,
        ret: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'static str>,
    },
}

fn split_args(args: &[u8]) -> impl Iterator<Item = &[u8]> {
    args.split(|&b| b == 0).filter(|a| !a.is_empty())
}

/// Every argument in base64 when one of them is not UTF-8.
fn args_base64(args: &[u8]) -> Option<Vec<String>> {
    std::str::from_utf8(args)
        .is_err()
        .then(|| split_args(args).map(base64).collect())
}

impl EventWriter {
    /// A writer for `format`, converting timestamps with `clock`.
    pub fn new(format: StreamFormat, clock: WallClock) -> Self {
        Self {
            format,
            clock,
            flags: String::with_capacity(64),
        }
    }

    /// Writes one event.
    pub fn write(&mut self, out: &mut impl Write, event: &Event<'_>) -> io::Result<()> {
        if let EventDetail::Open { flags, .. } = event.detail {
            self.flags.clear();
            // Writing into a String cannot fail.
            let _ = write_open_flags(flags as u32, &mut self.flags);
        }
        match self.format {
            StreamFormat::Json => self.write_json(out, event),
            StreamFormat::Text => self.write_text(out, event),
        }
    }

    fn write_json(&self, out: &mut impl Write, event: &Event<'_>) -> io::Result<()> {
        let h = &event.header;
        let detail = match event.detail {
            EventDetail::Exec {
                ppid,
                filename,
                args,
                args_truncated,
            } => JsonDetail::Exec {
                ppid,
                filename: text(filename),
                filename_base64: base64_if_not_utf8(filename),
                args: args.map(|args| split_args(args).map(text).collect()),
                args_base64: args.and_then(args_base64),
                args_truncated,
            },
            EventDetail::Exit {
                ppid,
                status,
                lifetime_ns,
            } => JsonDetail::Exit {
                ppid,
                exit_code: status.exit_code,
                signal: status.signal,
                signal_name: signal_name(status.signal),
                core_dumped: status.core_dumped,
                lifetime_ns,
            },
            EventDetail::Fork { child_pid } => JsonDetail::Fork { child_pid },
            EventDetail::Open {
                syscall_nr,
                dirfd,
                path,
                path_truncated,
                flags,
                mode,
                ret,
            } => JsonDetail::Open {
                path: text(path),
                path_base64: base64_if_not_utf8(path),
                path_truncated,
                flags: &self.flags,
                flags_raw: flags,
                mode,
                dirfd,
                syscall: syscall_name(syscall_nr).unwrap_or("open"),
                ret,
                error: errno_of(ret),
            },
        };
        let json = JsonEvent {
            ts_ns: self.clock.to_unix_ns(h.ts_ns),
            event: event.kind().name(),
            pid: h.pid,
            tid: h.tid,
            comm: text(h.comm),
            comm_base64: base64_if_not_utf8(h.comm),
            cgroup_id: h.cgroup_id,
            detail,
        };
        serde_json::to_writer(&mut *out, &json)?;
        out.write_all(b"\n")
    }

    fn write_text(&self, out: &mut impl Write, event: &Event<'_>) -> io::Result<()> {
        let h = &event.header;
        write_time_of_day(out, self.clock.to_unix_ns(h.ts_ns))?;
        write!(
            out,
            " {:<5} {:>7} {:>7} {:<16} ",
            event.kind().name(),
            h.pid,
            h.tid,
            escaped(h.comm)
        )?;
        match event.detail {
            EventDetail::Exec {
                ppid,
                filename,
                args,
                args_truncated,
            } => {
                write!(out, "{} ppid={ppid}", escaped(filename))?;
                if let Some(args) = args {
                    out.write_all(b" args=[")?;
                    for (i, arg) in split_args(args).enumerate() {
                        let comma = if i == 0 { "" } else { ", " };
                        write!(out, "{comma}\"{}\"", escaped_quoted(arg))?;
                    }
                    out.write_all(b"]")?;
                    if args_truncated {
                        write!(out, "…")?;
                    }
                }
            }
            EventDetail::Exit {
                ppid,
                status,
                lifetime_ns,
            } => {
                match signal_name(status.signal) {
                    Some(sig) => write!(out, "killed by {sig}")?,
                    None if status.signal != 0 => {
                        write!(out, "killed by signal {}", status.signal)?
                    }
                    None => write!(out, "code={}", status.exit_code)?,
                }
                if status.core_dumped {
                    write!(out, " (core dumped)")?;
                }
                write!(out, " lived={} ppid={ppid}", HumanNs(lifetime_ns))?;
            }
            EventDetail::Fork { child_pid } => write!(out, "child={child_pid}")?,
            EventDetail::Open {
                path,
                path_truncated,
                ret,
                ..
            } => {
                let more = if path_truncated { "…" } else { "" };
                write!(out, "{}{more} {} ", escaped(path), self.flags)?;
                match errno_of(ret) {
                    Some(e) => write!(out, "-> {e}")?,
                    None if ret < 0 => write!(out, "-> error {}", -ret)?,
                    None => write!(out, "-> fd {ret}")?,
                }
            }
        }
        out.write_all(b"\n")
    }
}

fn errno_of(ret: i64) -> Option<&'static str> {
    if ret < 0 {
        u32::try_from(-ret).ok().and_then(errno_name)
    } else {
        None
    }
}
