//! Go release versions as `go version` prints them (`go1.26.8`, `go1.21rc2`), parsed so they can be
//! compared and used as keys into the per-version offset tables.

use std::fmt;

/// A Go release: major.minor.patch plus any pre-release suffix (`rc1`, `beta2`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GoVersion {
    /// Always 1 for every Go release so far.
    pub major: u32,
    /// The release line: 26 for go1.26.8.
    pub minor: u32,
    /// The point release: 8 for go1.26.8; 0 for go1.21.0, go1.20 and pre-releases.
    pub patch: u32,
    /// Text after the numbers (`rc1`, `beta2`, or a trailing ` X:...` experiment note), empty for releases.
    pub suffix: String,
    /// The text exactly as the binary carries it.
    pub raw: String,
}

impl GoVersion {
    /// Parses `go1.26.8`, `go1.20`, `go1.21rc2` and `devel go1.27-abc…`-style strings.
    /// Returns `None` for anything that does not start with `go<digits>.<digits>`.
    pub fn parse(text: &str) -> Option<GoVersion> {
        let raw = text.trim().to_string();
        let body = raw.strip_prefix("devel ").unwrap_or(&raw);
        let rest = body.strip_prefix("go")?;
        let (major, rest) = leading_number(rest)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = leading_number(rest)?;
        let (patch, rest) = match rest.strip_prefix('.') {
            Some(after_dot) => leading_number(after_dot)?,
            None => (0, rest),
        };
        Some(GoVersion {
            major,
            minor,
            patch,
            suffix: rest.to_string(),
            raw,
        })
    }

    /// The release line, e.g. `(1, 26)`, which is what struct layouts follow.
    pub fn line(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// True when this release is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn leading_number(text: &str) -> Option<(u32, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value = text[..digits].parse().ok()?;
    Some((value, &text[digits..]))
}

#[cfg(test)]
mod tests {
    use super::GoVersion;

    #[test]
    fn parses_releases_and_prereleases() {
        let v = GoVersion::parse("go1.26.8").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 26, 8));
        assert_eq!(v.to_string(), "go1.26.8");
        let v = GoVersion::parse("go1.20").unwrap();
        assert_eq!((v.minor, v.patch), (20, 0));
        let v = GoVersion::parse("go1.21rc2").unwrap();
        assert_eq!((v.minor, v.suffix.as_str()), (21, "rc2"));
        assert!(v.at_least(1, 21) && !v.at_least(1, 22));
        assert!(GoVersion::parse("1.26").is_none());
        assert!(GoVersion::parse("gox").is_none());
    }
}
