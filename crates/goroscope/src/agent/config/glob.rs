//! Glob patterns on process names, interface names and cgroup paths: `*` any run of
//! characters (in cgroup paths: not crossing `/`), `**` any run at all, `?` one character
//! (in cgroup paths: not `/`); every other character stands for itself (no `[...]` classes,
//! no escapes). Matching is linear in the text and allocates nothing.

use std::fmt;

/// Longest pattern, in characters (consecutive `*` count once): the matcher's state set is a
/// fixed 256-bit set.
pub const MAX_GLOB_LEN: usize = 255;

/// What a pattern is matched against, which decides what `*` and `?` may cross.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobKind {
    /// A name (process comm, interface): `*` matches any run of characters.
    Name,
    /// A cgroup path: `*` and `?` do not match `/`; `**` matches anything.
    Path,
}

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    kind: GlobKind,
    tokens: Vec<Token>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    /// This character.
    Char(char),
    /// `?`: one character (not `/` in paths).
    One,
    /// `*` in paths: any run without `/`.
    Segment,
    /// `*` in names, `**` in paths: any run.
    Any,
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// The pattern is empty.
    Empty,
    /// The pattern is longer than [`MAX_GLOB_LEN`].
    TooLong,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::Empty => f.write_str("an empty pattern matches nothing"),
            GlobError::TooLong => write!(
                f,
                "the pattern is longer than {MAX_GLOB_LEN} characters; shorten it with * or **"
            ),
        }
    }
}

impl std::error::Error for GlobError {}

impl Glob {
    /// Compiles `pattern` for matching texts of `kind`.
    pub fn new(pattern: &str, kind: GlobKind) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    let mut run = 1;
                    while chars.next_if_eq(&'*').is_some() {
                        run += 1;
                    }
                    if run == 1 && kind == GlobKind::Path {
                        Token::Segment
                    } else {
                        Token::Any
                    }
                }
                '?' => Token::One,
                c => Token::Char(c),
            };
            // `*` next to `**` is just `**`.
            match (tokens.last_mut(), token) {
                (Some(last @ (Token::Segment | Token::Any)), Token::Segment | Token::Any) => {
                    if token == Token::Any {
                        *last = Token::Any;
                    }
                }
                _ => tokens.push(token),
            }
        }
        if tokens.len() > MAX_GLOB_LEN {
            return Err(GlobError::TooLong);
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            kind,
            tokens,
        })
    }

    /// The pattern that matches every text: `*` for names, `**` for paths.
    pub fn everything(kind: GlobKind) -> Glob {
        let pattern = match kind {
            GlobKind::Name => "*",
            GlobKind::Path => "**",
        };
        Glob {
            pattern: pattern.to_owned(),
            kind,
            tokens: vec![Token::Any],
        }
    }

    /// The pattern that matches exactly `text`, which must hold no `*` or `?`.
    pub(super) fn literal(text: &str, kind: GlobKind) -> Glob {
        debug_assert!(!text.contains(['*', '?']), "not a literal: {text}");
        Glob {
            pattern: text.to_owned(),
            kind,
            tokens: text.chars().map(Token::Char).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The fewest bytes of UTF-8 a matching text has.
    pub fn min_len(&self) -> usize {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Char(c) => c.len_utf8(),
                Token::One => 1,
                Token::Segment | Token::Any => 0,
            })
            .sum()
    }

    /// True when `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        // A set of pattern positions reached so far (position i: the first i tokens matched),
        // advanced one character at a time: an NFA without backtracking.
        let end = self.tokens.len();
        let mut reached = States::default();
        reached.insert(0);
        self.skip_stars(&mut reached);
        for c in text.chars() {
            let mut next = States::default();
            for (i, token) in self.tokens.iter().enumerate() {
                if !reached.contains(i) {
                    continue;
                }
                match *token {
                    Token::Char(want) if want == c => next.insert(i + 1),
                    Token::One if !self.is_separator(c) => next.insert(i + 1),
                    Token::Segment if c != '/' => next.insert(i),
                    Token::Any => next.insert(i),
                    _ => {}
                }
            }
            self.skip_stars(&mut next);
            if next.is_empty() {
                return false;
            }
            reached = next;
        }
        reached.contains(end)
    }

    fn is_separator(&self, c: char) -> bool {
        self.kind == GlobKind::Path && c == '/'
    }

    /// Adds the positions reached by letting stars match nothing.
    fn skip_stars(&self, states: &mut States) {
        for (i, token) in self.tokens.iter().enumerate() {
            if states.contains(i) && matches!(token, Token::Segment | Token::Any) {
                states.insert(i + 1);
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// A set of pattern positions 0..=MAX_GLOB_LEN.
#[derive(Default)]
struct States([u64; 4]);

impl States {
    fn insert(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn glob(pattern: &str, kind: GlobKind) -> Glob {
        Glob::new(pattern, kind).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
    }

    #[track_caller]
    fn check(pattern: &str, kind: GlobKind, yes: &[&str], no: &[&str]) {
        let g = glob(pattern, kind);
        for text in yes {
            assert!(g.matches(text), "{pattern:?} should match {text:?}");
        }
        for text in no {
            assert!(!g.matches(text), "{pattern:?} should not match {text:?}");
        }
    }

    #[test]
    fn literals_match_only_themselves() {
        check(
            "nginx",
            GlobKind::Name,
            &["nginx"],
            &["ngin", "nginx2", "", "Nginx"],
        );
        check("[ab]", GlobKind::Name, &["[ab]"], &["a"]);
    }

    #[test]
    fn star_in_names_matches_any_run() {
        check(
            "api-*",
            GlobKind::Name,
            &["api-", "api-gw", "api-a/b"],
            &["api", "xapi-"],
        );
        check("*", GlobKind::Name, &["", "x", "a/b"], &[]);
        check(
            "*-worker-*",
            GlobKind::Name,
            &["a-worker-1", "-worker-"],
            &["worker"],
        );
    }

    #[test]
    fn question_mark_is_one_character() {
        check("eth?", GlobKind::Name, &["eth0", "eth1"], &["eth", "eth10"]);
        check("/a?b", GlobKind::Path, &["/axb"], &["/a/b", "/ab"]);
        check("ü?", GlobKind::Name, &["üé", "üx"], &["ü", "üéé"]);
    }

    #[test]
    fn star_in_paths_stops_at_slash_and_double_star_does_not() {
        let (yes, no) = (
            &["/system.slice/nginx.service", "/system.slice/"][..],
            &["/system.slice/a/b.scope", "/system.slice", "/user.slice/x"][..],
        );
        check("/system.slice/*", GlobKind::Path, yes, no);
        check(
            "/kubepods.slice/**",
            GlobKind::Path,
            &["/kubepods.slice/", "/kubepods.slice/a/b/c.scope"],
            &["/kubepods.slice", "/system.slice/a"],
        );
        check("**", GlobKind::Path, &["", "/", "/a/b"], &[]);
        check(
            "/**/x.scope",
            GlobKind::Path,
            &["/a/x.scope", "/a/b/x.scope"],
            &["/x"],
        );
        check(
            "/*/*.scope",
            GlobKind::Path,
            &["/a/b.scope"],
            &["/a/b/c.scope"],
        );
        check("/a***b", GlobKind::Path, &["/a/x/b"], &["/a/x/c"]);
        check("/a*/**", GlobKind::Path, &["/abc/d", "/a/"], &["/a"]);
    }

    #[test]
    fn many_stars_stay_linear() {
        let g = glob(&"a*".repeat(100), GlobKind::Name);
        assert!(!g.matches(&"b".repeat(10_000)));
        assert!(g.matches(&"a".repeat(10_000)));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Glob::new("", GlobKind::Name), Err(GlobError::Empty));
        assert_eq!(
            Glob::new(&"x".repeat(256), GlobKind::Path),
            Err(GlobError::TooLong)
        );
        assert!(Glob::new(&format!("{}***", "x".repeat(254)), GlobKind::Path).is_ok());
    }

    #[test]
    fn min_len_counts_bytes_that_must_be_there() {
        assert_eq!(glob("a*b?", GlobKind::Name).min_len(), 3);
        assert_eq!(glob("ü*", GlobKind::Name).min_len(), 2);
        assert_eq!(Glob::everything(GlobKind::Path).min_len(), 0);
    }

    #[test]
    fn built_in_patterns_equal_parsed_ones() {
        assert_eq!(Glob::everything(GlobKind::Name), glob("*", GlobKind::Name));
        assert_eq!(Glob::everything(GlobKind::Path), glob("**", GlobKind::Path));
        assert_eq!(
            Glob::literal("lo", GlobKind::Name),
            glob("lo", GlobKind::Name)
        );
    }
}
