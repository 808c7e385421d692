//! Go's own goroutine dump, `/debug/pprof/goroutine?debug=2`, parsed: per goroutine its id, its
//! state or wait reason from the header, its frames innermost first (function without the
//! argument list, file, line) and its `created by` site; which goroutines serve the dump request
//! itself; and the blocking frame chosen by the rule goroscope documents for its groups.

use std::collections::BTreeSet;

/// One frame of a goroutine's stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function, e.g. `net/http.(*conn).serve`, without the argument list.
    pub function: String,
    /// The source file as the binary records it, e.g. `net/http/server.go`.
    pub file: String,
    /// The line.
    pub line: u64,
}

/// Where a goroutine was created: the `go` statement's function and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The function holding the `go` statement.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its line.
    pub line: u64,
    /// The creating goroutine (`created by F in goroutine N`, printed by Go 1.21 and later).
    pub parent: Option<u64>,
}

/// One goroutine of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goroutine {
    /// Its id.
    pub id: u64,
    /// Its state: `waiting` when the header names a wait reason, else the header's state
    /// (`running`, `runnable`, `syscall`, …).
    pub state: String,
    /// The wait reason (`chan receive`, `IO wait`, …), "" when the header names a state.
    pub wait_reason: String,
    /// Minutes blocked, when the header says so.
    pub minutes: Option<u64>,
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
    /// The creation site; None for the main goroutine.
    pub created_by: Option<Creation>,
}

/// The states Go prints instead of a wait reason (runtime.gStatusStrings).
const STATES: &[&str] = &[
    "idle",
    "runnable",
    "running",
    "syscall",
    "waiting",
    "dead",
    "copystack",
    "preempted",
];

impl Goroutine {
    /// The wait reason when waiting with one, else the state: the label a group is keyed by.
    pub fn label(&self) -> &str {
        if self.wait_reason.is_empty() {
            &self.state
        } else {
            &self.wait_reason
        }
    }

    /// Whether any frame is in `package` (exactly, not a sub-package).
    pub fn has_frame_in(&self, package: &str) -> bool {
        self.frames
            .iter()
            .any(|f| package_of(&f.function) == package)
    }

    /// The blocking frame by goroscope's rule: innermost → outermost, the first frame in the
    /// program's own code, else the first frame outside the runtime and `internal/…`, else the
    /// innermost frame. None for a goroutine without frames.
    pub fn blocked_at(&self) -> Option<&Frame> {
        self.frames
            .iter()
            .find(|f| is_own_code(package_of(&f.function)))
            .or_else(|| {
                self.frames
                    .iter()
                    .find(|f| !is_runtime_or_internal(package_of(&f.function)))
            })
            .or_else(|| self.frames.first())
    }
}

/// The import path of the package `function` belongs to: `github.com/a/b.(*T).M` → `github.com/a/b`,
/// `main.main.func7` → `main`. Type arguments and receivers after the package are ignored.
pub fn package_of(function: &str) -> &str {
    let head_end = function.find(['[', '(']).unwrap_or(function.len());
    let head = &function[..head_end];
    let name_start = head.rfind('/').map_or(0, |slash| slash + 1);
    match head[name_start..].find('.') {
        Some(dot) => &function[..name_start + dot],
        None => head,
    }
}

/// Package `main`, or an import path whose first element contains a dot (`github.com/…`,
/// `go.etcd.io/…`, `golang.org/x/…`, `google.golang.org/…`).
pub fn is_own_code(package: &str) -> bool {
    package == "main" || package.split('/').next().is_some_and(|e| e.contains('.'))
}

/// `runtime`, `runtime/internal/…` and `internal/…`.
pub fn is_runtime_or_internal(package: &str) -> bool {
    package == "runtime"
        || package.starts_with("runtime/internal/")
        || package.starts_with("internal/")
}

/// Parses a whole debug=2 dump. Errors name the offending line.
pub fn parse_dump(text: &str) -> Result<Vec<Goroutine>, String> {
    let mut goroutines = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let mut goroutine = parse_header(line).map_err(|e| format!("line {}: {e}", number + 1))?;
        // The body: pairs of (function line, "\tfile:line +0xNN" line), then maybe `created by`.
        while let Some(&(number, line)) = lines.peek() {
            if line.trim().is_empty() {
                break;
            }
            lines.next();
            let at = |e: String| format!("line {}: {e}: {line:?}", number + 1);
            if line.starts_with("...") {
                // "...additional frames elided..."
                continue;
            }
            let Some((_, position)) = lines.next() else {
                return Err(at("a frame without its file:line".into()));
            };
            let (file, position_line) = parse_position(position).map_err(at)?;
            if let Some(creator) = line.strip_prefix("created by ") {
                let (function, parent) = match creator.split_once(" in goroutine ") {
                    Some((f, n)) => (f, Some(n.trim().parse().map_err(|_| at("bad id".into()))?)),
                    None => (creator, None),
                };
                goroutine.created_by = Some(Creation {
                    function: function.trim().to_owned(),
                    file,
                    line: position_line,
                    parent,
                });
            } else {
                goroutine.frames.push(Frame {
                    function: strip_arguments(line).map_err(at)?.to_owned(),
                    file,
                    line: position_line,
                });
            }
        }
        goroutines.push(goroutine);
    }
    let ids: BTreeSet<u64> = goroutines.iter().map(|g| g.id).collect();
    if ids.len() != goroutines.len() {
        return Err("a goroutine id appears twice".into());
    }
    Ok(goroutines)
}

/// `goroutine 7 [chan receive, 5 minutes]:` (Go 1.22+ may add `gp=… m=…` before the bracket).
pub(super) fn parse_header(line: &str) -> Result<Goroutine, String> {
    let rest = line
        .strip_prefix("goroutine ")
        .ok_or_else(|| format!("expected `goroutine N [...]:`, got {line:?}"))?;
    let (id, rest) = rest
        .split_once(' ')
        .ok_or_else(|| format!("no state in {line:?}"))?;
    let id: u64 = id.parse().map_err(|_| format!("bad id in {line:?}"))?;
    let open = rest.find('[').ok_or_else(|| format!("no [ in {line:?}"))?;
    let inside = rest[open + 1..]
        .strip_suffix("]:")
        .ok_or_else(|| format!("no ]: at the end of {line:?}"))?;
    let mut parts = inside.split(", ");
    let status = parts.next().unwrap_or_default();
    let status = status.strip_suffix(" (scan)").unwrap_or(status);
    let mut minutes = None;
    for part in parts {
        if let Some(n) = part.strip_suffix(" minutes") {
            minutes = Some(n.parse().map_err(|_| format!("bad minutes in {line:?}"))?);
        }
    }
    let (state, wait_reason) = if STATES.contains(&status) {
        (status.to_owned(), String::new())
    } else {
        ("waiting".to_owned(), status.to_owned())
    };
    Ok(Goroutine {
        id,
        state,
        wait_reason,
        minutes,
        frames: Vec::new(),
        created_by: None,
    })
}

/// `\tnet/http/server.go:1991 +0x607` or `\tnet/http/server.go:674` → (file, line).
fn parse_position(line: &str) -> Result<(String, u64), String> {
    let position = line
        .strip_prefix('\t')
        .ok_or_else(|| format!("expected a tab-indented file:line, got {line:?}"))?;
    let position = position.split(" +0x").next().unwrap_or(position);
    let (file, number) = position
        .rsplit_once(':')
        .ok_or_else(|| format!("no :line in {line:?}"))?;
    let number = number
        .trim()
        .parse()
        .map_err(|_| format!("bad line number in {line:?}"))?;
    Ok((file.to_owned(), number))
}

/// `net/http.(*conn).serve(0xc0001d4960, {0x24e0d78, 0xc0006144b0})` → `net/http.(*conn).serve`.
/// The argument list is the last parenthesized group; arguments never contain parentheses.
fn strip_arguments(line: &str) -> Result<&str, String> {
    let line = line.trim_end();
    if !line.ends_with(')') {
        return Err("a function line must end with its argument list".into());
    }
    let open = line
        .rfind('(')
        .ok_or_else(|| "no argument list".to_owned())?;
    Ok(&line[..open])
}

/// The ids of the goroutines serving a dump or scrape: those with a frame in `runtime/pprof` or
/// `net/http/pprof`, and the connection reader goroutines net/http starts for a request being
/// handled (`created by net/http.(*connReader).startBackgroundRead`). When the dump says which
/// goroutine created a reader (Go 1.21+), only the readers of serving goroutines count; Go 1.19
/// does not say, and then every reader counts: on an idle daemon only the dump's own request is
/// being handled.
pub fn serving_ids(goroutines: &[Goroutine]) -> BTreeSet<u64> {
    let mut serving: BTreeSet<u64> = goroutines
        .iter()
        .filter(|g| g.has_frame_in("runtime/pprof") || g.has_frame_in("net/http/pprof"))
        .map(|g| g.id)
        .collect();
    let readers: Vec<u64> = goroutines
        .iter()
        .filter(|g| {
            g.created_by.as_ref().is_some_and(|c| {
                c.function == "net/http.(*connReader).startBackgroundRead"
                    && c.parent.is_none_or(|p| serving.contains(&p))
            })
        })
        .map(|g| g.id)
        .collect();
    serving.extend(readers);
    serving
}
