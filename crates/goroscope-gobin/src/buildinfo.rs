//! The Go build information every Go 1.18+ binary carries in `.go.buildinfo`: the toolchain version
//! (`go1.26.8`), the main package and module, the dependency modules and the build settings
//! (`-ldflags`, `CGO_ENABLED`, `-buildmode`, ...), as `go version -m` prints them.
//!
//! Layout of the blob (Go 1.18 and newer, "inline" format): a 32-byte header starting with the
//! 14-byte magic `"\xff Go buildinf:"`, then a pointer-size byte and a flags byte (bit 1 set means
//! the strings follow inline), then two strings each prefixed by its length as an unsigned varint:
//! the Go version and the module information. The module information is framed by two 16-byte
//! sentinels and holds tab-separated lines (`path`, `mod`, `dep`, `=>`, `build`).

use crate::elf::ElfFile;
use crate::error::GobinError;

/// The magic the build information blob starts with.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Size of the fixed header before the inline strings.
const HEADER_SIZE: usize = 32;
/// Offset of the flags byte in the header.
const FLAGS_OFFSET: usize = 15;
/// Flags bit saying the version and module strings follow the header inline (Go 1.18+).
const FLAG_VERSION_INLINE: u8 = 0x2;
/// Length of each sentinel framing the module information.
const SENTINEL_LEN: usize = 16;

/// Build information of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildInfo {
    /// The toolchain version exactly as `go version` prints it, e.g. `go1.26.8`.
    pub go_version: String,
    /// The main package's import path (`path` line), e.g. `example.com/sample/cmd/sample`.
    pub main_path: Option<String>,
    /// The main module's path (`mod` line), e.g. `example.com/sample`; absent in binaries built
    /// outside module mode (Debian's packages, for one).
    pub main_module: Option<String>,
    /// The main module's version (`mod` line), e.g. `(devel)` or `v1.2.3`.
    pub main_version: Option<String>,
    /// The `build` settings in order, e.g. `("-ldflags", "-s -w")`, `("CGO_ENABLED", "1")`.
    pub settings: Vec<(String, String)>,
    /// The dependency modules (`dep` lines) in order.
    pub deps: Vec<Module>,
}

impl BuildInfo {
    /// The paths of the main module and every dependency: the program's own code, as opposed to
    /// the standard library.
    pub fn module_paths(&self) -> Vec<String> {
        self.main_module
            .iter()
            .chain(self.main_path.iter())
            .cloned()
            .chain(self.deps.iter().map(|module| module.path.clone()))
            .collect()
    }

    /// The value of build setting `key` (the last one if repeated), e.g. `setting("CGO_ENABLED")`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A module the binary was built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// Module path, e.g. `golang.org/x/sys`.
    pub path: String,
    /// Module version, e.g. `v0.20.0`.
    pub version: String,
    /// Checksum (`h1:...`), if recorded.
    pub sum: Option<String>,
    /// The module that replaced this one (`=>` line), if any.
    pub replace: Option<Box<Module>>,
}

/// Why the `.go.buildinfo` bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildInfoError {
    /// The bytes do not start with the build information magic.
    #[error("the data does not start with the Go build information magic \"\\xff Go buildinf:\"")]
    NoMagic,
    /// The blob is shorter than its header or one of its strings.
    #[error("the build information is truncated ({what})")]
    Truncated {
        /// What was cut off.
        what: &'static str,
    },
    /// The blob uses the pointer format of Go 1.13–1.17.
    #[error("the binary was built by Go older than 1.18 (its build information uses the old pointer format); goroscope reads Go 1.19 and newer")]
    OldFormat,
    /// The version string is empty or not text.
    #[error("the build information has no Go version")]
    NoVersion,
    /// A line of the module information is malformed.
    #[error("module information line {line}: {reason}")]
    BadLine {
        /// 1-based line number in the module information.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Decodes the bytes of a `.go.buildinfo` section (or the bytes starting at its magic).
pub fn parse(section: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    if !section.starts_with(MAGIC) {
        return Err(BuildInfoError::NoMagic);
    }
    let header = section
        .get(..HEADER_SIZE)
        .ok_or(BuildInfoError::Truncated { what: "header" })?;
    let flags = header.get(FLAGS_OFFSET).copied().unwrap_or(0);
    if flags & FLAG_VERSION_INLINE == 0 {
        return Err(BuildInfoError::OldFormat);
    }
    let rest = section.get(HEADER_SIZE..).unwrap_or(&[]);
    let (version, rest) = length_prefixed(rest, "Go version")?;
    let (modinfo, _) = length_prefixed(rest, "module information")?;
    let go_version = std::str::from_utf8(version)
        .map_err(|_| BuildInfoError::NoVersion)?
        .to_string();
    if go_version.is_empty() {
        return Err(BuildInfoError::NoVersion);
    }
    let mut info = BuildInfo {
        go_version,
        ..BuildInfo::default()
    };
    // The module information is framed by 16-byte sentinels; without them there is none.
    let framed = modinfo.len() > 2 * SENTINEL_LEN
        && modinfo.get(modinfo.len() - SENTINEL_LEN - 1) == Some(&b'\n');
    if framed {
        let body = modinfo
            .get(SENTINEL_LEN..modinfo.len() - SENTINEL_LEN)
            .unwrap_or(&[]);
        parse_modinfo(&String::from_utf8_lossy(body), &mut info)?;
    }
    Ok(info)
}

/// Reads the build information of `elf`, from `.go.buildinfo` or, when the section headers are
/// missing, from the first 16-byte-aligned copy of the magic in the file's loadable segments.
pub fn read(elf: &ElfFile) -> Result<BuildInfo, GobinError> {
    let wrap = |source| GobinError::BuildInfo {
        path: elf.path().to_path_buf(),
        source,
    };
    if let Some((_, bytes)) = elf.section_data(".go.buildinfo") {
        return parse(bytes).map_err(wrap);
    }
    for segment in elf.segments() {
        let Ok(len) = usize::try_from(segment.file_size) else {
            continue;
        };
        let Some(bytes) = elf.read_at(segment.address, len) else {
            continue;
        };
        // Offsets within the segment whose virtual address is 16-byte aligned.
        let first = (16 - (segment.address % 16) as usize) % 16;
        let found = (first..bytes.len())
            .step_by(16)
            .find(|&at| bytes.get(at..).is_some_and(|tail| tail.starts_with(MAGIC)));
        if let Some(at) = found {
            return parse(bytes.get(at..).unwrap_or(&[])).map_err(wrap);
        }
    }
    Err(GobinError::NotGo {
        path: elf.path().to_path_buf(),
    })
}

/// Splits a uvarint-length-prefixed string off the front of `bytes`.
fn length_prefixed<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), BuildInfoError> {
    let mut length: u64 = 0;
    let mut used = 0;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        length |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            used = index + 1;
            break;
        }
    }
    if used == 0 {
        return Err(BuildInfoError::Truncated { what });
    }
    let rest = bytes.get(used..).unwrap_or(&[]);
    let length = usize::try_from(length).map_err(|_| BuildInfoError::Truncated { what })?;
    if length > rest.len() {
        return Err(BuildInfoError::Truncated { what });
    }
    Ok(rest.split_at(length))
}

/// Fills `info` from the module information text (the inverse of Go's `BuildInfo.String`).
fn parse_modinfo(text: &str, info: &mut BuildInfo) -> Result<(), BuildInfoError> {
    // Which module the next `=>` line replaces: None, the main module, or a dependency index.
    #[derive(Clone, Copy)]
    enum Last {
        None,
        Main,
        Dep(usize),
    }
    let mut last = Last::None;
    for (index, line) in text.split_terminator('\n').enumerate() {
        let bad = |reason: String| BuildInfoError::BadLine {
            line: index + 1,
            reason,
        };
        if let Some(path) = line.strip_prefix("path\t") {
            info.main_path = Some(path.to_string());
        } else if let Some(rest) = line.strip_prefix("mod\t") {
            let module = module_line(rest).map_err(bad)?;
            info.main_module = Some(module.path);
            info.main_version = Some(module.version);
            last = Last::Main;
        } else if let Some(rest) = line.strip_prefix("dep\t") {
            info.deps.push(module_line(rest).map_err(bad)?);
            last = Last::Dep(info.deps.len() - 1);
        } else if let Some(rest) = line.strip_prefix("=>\t") {
            let fields: Vec<&str> = rest.split('\t').collect();
            let [path, version, sum] = fields.as_slice() else {
                return Err(bad(format!(
                    "expected 3 columns for a replacement, got {}",
                    fields.len()
                )));
            };
            let replacement = Box::new(Module {
                path: path.to_string(),
                version: version.to_string(),
                sum: non_empty(sum),
                replace: None,
            });
            match last {
                Last::Dep(dep) => {
                    if let Some(module) = info.deps.get_mut(dep) {
                        module.replace = Some(replacement);
                    }
                }
                // The main module's replacement is not kept: BuildInfo has no field for it.
                Last::Main => {}
                Last::None => {
                    return Err(bad("replacement with no module on the previous line".into()))
                }
            }
            last = Last::None;
        } else if let Some(rest) = line.strip_prefix("build\t") {
            info.settings.push(build_line(rest).map_err(bad)?);
        }
        // Other lines (`go\t...` in some toolchains, unknown future lines) are ignored.
    }
    Ok(())
}

/// Parses `path\tversion[\tsum]`.
fn module_line(rest: &str) -> Result<Module, String> {
    let fields: Vec<&str> = rest.split('\t').collect();
    match fields.as_slice() {
        [path, version] => Ok(Module {
            path: path.to_string(),
            version: version.to_string(),
            sum: None,
            replace: None,
        }),
        [path, version, sum] => Ok(Module {
            path: path.to_string(),
            version: version.to_string(),
            sum: non_empty(sum),
            replace: None,
        }),
        _ => Err(format!("expected 2 or 3 columns, got {}", fields.len())),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Parses `key=value`, where key and value may be Go-quoted strings.
fn build_line(kv: &str) -> Result<(String, String), String> {
    let (key, raw_value) = match kv.chars().next() {
        None => return Err("build line missing '='".into()),
        Some('=') => return Err("build line with missing key".into()),
        Some('"') | Some('`') => {
            let quoted_len = quoted_prefix_len(kv).ok_or("invalid quoted key in build line")?;
            let (quoted, rest) = kv.split_at(quoted_len);
            let value = rest
                .strip_prefix('=')
                .ok_or("build line missing '=' after quoted key")?;
            (
                unquote(quoted).ok_or("invalid quoted key in build line")?,
                value,
            )
        }
        Some(_) => {
            let (key, value) = kv
                .split_once('=')
                .ok_or("build line missing '=' after key")?;
            (key.to_string(), value)
        }
    };
    let value = if raw_value.starts_with('"') || raw_value.starts_with('`') {
        unquote(raw_value).ok_or("invalid quoted value in build line")?
    } else {
        raw_value.to_string()
    };
    Ok((key, value))
}

/// Length in bytes of the Go-quoted string at the start of `text`, if it is one.
fn quoted_prefix_len(text: &str) -> Option<usize> {
    let mut chars = text.char_indices();
    let (_, quote) = chars.next()?;
    let mut escaped = false;
    for (at, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return Some(at + c.len_utf8());
        } else if c == '\n' && quote == '"' {
            return None;
        }
    }
    None
}

/// Decodes a whole Go string literal (`"..."` with escapes, or `` `...` `` raw).
fn unquote(text: &str) -> Option<String> {
    if let Some(raw) = text.strip_prefix('`') {
        let inner = raw.strip_suffix('`')?;
        return (!inner.contains('`')).then(|| inner.replace('\r', ""));
    }
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut bytes: Vec<u8> = Vec::new(); // pending \x / octal bytes, which may form UTF-8
    let mut chars = inner.chars();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return None,
            '\\' => {
                let escape = chars.next()?;
                let simple = match escape {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    '\'' => Some('\''),
                    _ => None,
                };
                if let Some(c) = simple {
                    flush(&mut bytes, &mut out);
                    out.push(c);
                    continue;
                }
                match escape {
                    'x' => bytes.push(u8::try_from(hex_digits(&mut chars, 2)?).ok()?),
                    '0'..='7' => {
                        let mut value = escape.to_digit(8)?;
                        for _ in 0..2 {
                            value = value * 8 + chars.next()?.to_digit(8)?;
                        }
                        bytes.push(u8::try_from(value).ok()?);
                    }
                    'u' | 'U' => {
                        let digits = if escape == 'u' { 4 } else { 8 };
                        flush(&mut bytes, &mut out);
                        out.push(char::from_u32(hex_digits(&mut chars, digits)?)?);
                    }
                    _ => return None,
                }
            }
            c => {
                flush(&mut bytes, &mut out);
                out.push(c);
            }
        }
    }
    flush(&mut bytes, &mut out);
    Some(out)
}

fn hex_digits(chars: &mut std::str::Chars<'_>, count: usize) -> Option<u32> {
    let mut value: u32 = 0;
    for _ in 0..count {
        value = value.checked_mul(16)? + chars.next()?.to_digit(16)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.push(8);
        data.push(FLAG_VERSION_INLINE);
        data.resize(HEADER_SIZE, 0);
        for text in [version.as_bytes().to_vec(), {
            let mut framed = vec![0x30; SENTINEL_LEN];
            framed.extend_from_slice(modinfo.as_bytes());
            framed.extend_from_slice(&[0x31; SENTINEL_LEN]);
            framed
        }] {
            let mut len = text.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    data.push(byte);
                    break;
                }
                data.push(byte | 0x80);
            }
            data.extend_from_slice(&text);
        }
        data
    }

    #[test]
    fn parses_inline_format() {
        let info = parse(&blob(
            "go1.26.8",
            "path\texample.com/x\nmod\texample.com/x\t(devel)\t\ndep\tgolang.org/x/sys\tv0.1.0\th1:abc=\n=>\t../sys\t\t\nbuild\t-ldflags=\"-s -w\"\nbuild\t\"we ird\"=`v`\nbuild\tCGO_ENABLED=1\n",
        ))
        .unwrap();
        assert_eq!(info.go_version, "go1.26.8");
        assert_eq!(info.main_path.as_deref(), Some("example.com/x"));
        assert_eq!(info.main_version.as_deref(), Some("(devel)"));
        assert_eq!(info.deps.len(), 1);
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:abc="));
        assert_eq!(info.deps[0].replace.as_ref().unwrap().path, "../sys");
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.setting("we ird"), Some("v"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
    }

    #[test]
    fn rejects_old_and_truncated() {
        let mut old = blob("go1.17", "");
        old[FLAGS_OFFSET] = 0;
        assert_eq!(parse(&old), Err(BuildInfoError::OldFormat));
        assert_eq!(parse(b"nope"), Err(BuildInfoError::NoMagic));
        let full = blob("go1.26.8", "path\tx\n");
        for cut in 0..full.len() - 1 {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn unquotes_go_strings() {
        assert_eq!(
            unquote(r#""a\tb\x41\101\u00e9\"""#).as_deref(),
            Some("a\tbAAé\"")
        );
        assert_eq!(unquote(r#""\xc3\xa9""#).as_deref(), Some("é"));
        assert_eq!(unquote("`raw`").as_deref(), Some("raw"));
        assert_eq!(unquote(r#""bad\q""#), None);
    }
}
