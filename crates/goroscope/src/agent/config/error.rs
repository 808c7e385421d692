//! What can be wrong with a config file, said as `FILE:LINE:COLUMN: FIELD: what is wrong; what
//! to do`, and the field paths (`collectors.tcp.enabled`, `targets.pids[2]`) errors name. A
//! standard `OTEL_*` variable the config reads is named instead of the file:
//! `environment variable OTEL_EXPORTER_OTLP_TIMEOUT: what is wrong; what to do`.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use goroscope_model::{escaped, escaped_quoted};

use super::locate::{locate, Spot};
use super::node::{Node, Position};

/// How many characters of a value an error message repeats.
const ECHO_CHARS: usize = 60;

/// `text` as an error message repeats it: quoted, control characters escaped, and cut to
/// [`ECHO_CHARS`] characters with what was left out counted (a 10 MB pattern must not come
/// back whole in the message).
pub(super) fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => format!("\"{}\"", escaped_quoted(text.as_bytes())),
        Some((cut, _)) => {
            let rest = text.len() - cut;
            let shown = escaped_quoted(&text.as_bytes()[..cut]);
            format!("\"{shown}\"… ({rest} more bytes)")
        }
    }
}

/// `text` cut like [`echo`] but not quoted, control characters escaped: for text repeated
/// inside a message (a port, a key, a parser's complaint).
pub(super) fn clip(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => escaped(text.as_bytes()).to_string(),
        Some((cut, _)) => {
            let rest = text.len() - cut;
            format!("{}… ({rest} more bytes)", escaped(&text.as_bytes()[..cut]))
        }
    }
}

/// One step of a field path: a field name or a list position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    /// A mapping key.
    Key(String),
    /// A list position, from 0.
    Index(usize),
}

/// Where a value sits in the document, from the top: `histograms.min`, `targets.comms[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document itself.
    pub(super) fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// The field `name` of this mapping.
    pub(super) fn key(&self, name: &str) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(name.to_owned()));
        FieldPath(segments)
    }

    /// Item `index` of this list.
    pub(super) fn index(&self, index: usize) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }

    pub(super) fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(&clip(key))?,
                Segment::Key(key) => write!(f, ".{}", clip(key))?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A problem found before the file name is known to the finder: turned into a [`ConfigError`]
/// by [`Problem::in_file`].
#[derive(Debug)]
pub(super) enum Problem {
    /// The text is not YAML (or not one document); the parser knows where.
    Syntax {
        /// Where to point, when known.
        at: Option<Position>,
        /// The field the mistake is in, when the parser knows it (an unclosed bracket).
        field: Option<FieldPath>,
        message: String,
    },
    /// The YAML is well formed but a field is unknown, of the wrong type or out of range.
    Invalid {
        /// The offending field.
        at: FieldPath,
        /// Whether to point at the field's key or its value.
        spot: Spot,
        message: String,
    },
    /// An environment variable the config reads (`OTEL_EXPORTER_OTLP_ENDPOINT`) is wrong.
    Environment {
        /// The variable's name.
        variable: String,
        message: String,
    },
}

impl Problem {
    /// A problem with the field at `at`, pointing at its value.
    pub(super) fn value(at: &FieldPath, message: impl Into<String>) -> Problem {
        Problem::Invalid {
            at: at.clone(),
            spot: Spot::Value,
            message: message.into(),
        }
    }

    /// A problem with the field at `at`, pointing at occurrence `occurrence` (from 0) of its key.
    pub(super) fn key(at: &FieldPath, occurrence: usize, message: impl Into<String>) -> Problem {
        Problem::Invalid {
            at: at.clone(),
            spot: Spot::Key { occurrence },
            message: message.into(),
        }
    }

    /// A problem with the environment variable `variable`.
    pub(super) fn environment(variable: &str, message: impl Into<String>) -> Problem {
        Problem::Environment {
            variable: variable.to_owned(),
            message: message.into(),
        }
    }

    /// The error to report when no file was read: only the environment can be wrong then.
    pub(super) fn in_environment(self) -> ConfigError {
        match self {
            Problem::Environment { variable, message } => {
                ConfigError::environment(variable, message)
            }
            Problem::Syntax { field, message, .. } => ConfigError {
                origin: Whence::Unknown,
                at: None,
                field: field.map(|f| f.to_string()),
                message,
                source: None,
            },
            Problem::Invalid { at, message, .. } => ConfigError {
                origin: Whence::Unknown,
                at: None,
                field: Some(at.to_string()),
                message,
                source: None,
            },
        }
    }

    /// The error to report for `file`, parsed into `root` when it could be: validation
    /// problems are located in the tree (at the nearest enclosing field present, when the
    /// field itself is absent).
    pub(super) fn in_file(self, file: &Path, root: Option<&Node>) -> ConfigError {
        match self {
            Problem::Syntax { at, field, message } => ConfigError {
                origin: Whence::File(file.to_path_buf()),
                at,
                field: field.map(|f| f.to_string()),
                message,
                source: None,
            },
            Problem::Environment { variable, message } => {
                ConfigError::environment(variable, message)
            }
            Problem::Invalid { at, spot, message } => {
                let segments = at.segments();
                let position = root.and_then(|root| {
                    (0..=segments.len()).rev().find_map(|len| {
                        let spot = if len == segments.len() {
                            spot
                        } else {
                            Spot::Value
                        };
                        locate(root, &segments[..len], spot)
                    })
                });
                ConfigError {
                    origin: Whence::File(file.to_path_buf()),
                    at: position,
                    field: (!segments.is_empty()).then(|| at.to_string()),
                    message,
                    source: None,
                }
            }
        }
    }
}

/// What a [`ConfigError`] is about.
#[derive(Debug)]
enum Whence {
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Variable(String),
    /// Neither is known.
    Unknown,
}

/// Why a config file was refused: which file, where in it, which field, what is wrong and
/// what to do. Displays as `FILE:LINE:COLUMN: FIELD: message`, leaving out what is unknown, or
/// as `environment variable NAME: message` when a variable the config reads is wrong.
#[derive(Debug)]
pub struct ConfigError {
    origin: Whence,
    at: Option<Position>,
    field: Option<String>,
    message: String,
    source: Option<std::io::Error>,
}

// The agent only displays these errors so far; the accessors are for callers that point at
// the file themselves (editors, --check output) and for the tests.
#[allow(dead_code)]
impl ConfigError {
    /// `file` could not be read.
    pub(super) fn unreadable(file: &Path, error: std::io::Error) -> ConfigError {
        ConfigError {
            origin: Whence::File(file.to_path_buf()),
            at: None,
            field: None,
            message: format!("cannot read: {error}"),
            source: Some(error),
        }
    }

    /// `file` as a whole is refused (not a regular file, too large).
    pub(super) fn whole_file(file: &Path, message: String) -> ConfigError {
        ConfigError {
            origin: Whence::File(file.to_path_buf()),
            at: None,
            field: None,
            message,
            source: None,
        }
    }

    /// `file` holds bytes that are not UTF-8.
    pub(super) fn not_utf8(file: &Path, error: &std::string::FromUtf8Error) -> ConfigError {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + valid.iter().rev().take_while(|&&b| b != b'\n').count();
        ConfigError {
            origin: Whence::File(file.to_path_buf()),
            at: Some((line, column)),
            field: None,
            message: "not UTF-8 text; save the file as UTF-8".to_owned(),
            source: None,
        }
    }

    /// The environment variable `variable` is wrong.
    fn environment(variable: String, message: String) -> ConfigError {
        ConfigError {
            origin: Whence::Variable(variable),
            at: None,
            field: None,
            message,
            source: None,
        }
    }

    /// The file the error is about; `None` when an environment variable is wrong.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Whence::File(file) => Some(file),
            _ => None,
        }
    }

    /// The environment variable that is wrong, like `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn variable(&self) -> Option<&str> {
        match &self.origin {
            Whence::Variable(variable) => Some(variable),
            _ => None,
        }
    }

    /// The 1-based line of the offending text, when known.
    pub fn line(&self) -> Option<usize> {
        self.at.map(|(line, _)| line)
    }

    /// The 1-based column of the offending text, when known.
    pub fn column(&self) -> Option<usize> {
        self.at.map(|(_, column)| column)
    }

    /// The offending field, like `collectors.tcp.enabled` or `targets.comms[1]`; `None` for
    /// problems of the whole file.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong and what to do, without the file, position and field.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Whence::Variable(variable) => {
                let variable = clip(variable);
                return write!(f, "environment variable {variable}: {}", self.message);
            }
            // The path is the operator's, but may hold any byte: print it escaped.
            Whence::File(file) => write!(f, "{}", escaped(file.as_os_str().as_bytes()))?,
            Whence::Unknown => f.write_str("config")?,
        }
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
