//! Comparing goroscope's goroutine report with Go's own dumps: the key both sides are grouped by
//! (wait reason or state, blocking frame, creation site), counts per key from a dump and from
//! goroscope's `groups[]`, and the mismatches between them, written so a failure reads on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::pprof::{serving_ids, Goroutine};

/// What a goroutine is grouped by on both sides.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The wait reason, or the state when not waiting.
    pub label: String,
    /// The blocking frame's function.
    pub blocked_function: String,
    /// Its file.
    pub blocked_file: String,
    /// Its line.
    pub blocked_line: u64,
    /// The creation site's function ("" for the main goroutine).
    pub created_function: String,
    /// Its line (0 for the main goroutine).
    pub created_line: u64,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] blocked at {} ({}:{}), ",
            self.label, self.blocked_function, self.blocked_file, self.blocked_line
        )?;
        if self.created_function.is_empty() && self.created_line == 0 {
            write!(f, "no creation site")
        } else {
            write!(
                f,
                "created by {} line {}",
                self.created_function, self.created_line
            )
        }
    }
}

/// A goroutine's key as pprof shows it.
pub fn pprof_key(goroutine: &Goroutine) -> Key {
    let blocked = goroutine.blocked_at();
    let created = goroutine.created_by.as_ref();
    Key {
        label: goroutine.label().to_owned(),
        blocked_function: blocked.map_or_else(String::new, |f| f.function.clone()),
        blocked_file: blocked.map_or_else(String::new, |f| f.file.clone()),
        blocked_line: blocked.map_or(0, |f| f.line),
        created_function: created.map_or_else(String::new, |c| c.function.clone()),
        created_line: created.map_or(0, |c| c.line),
    }
}

/// One parsed dump with its serving goroutines set apart.
pub struct Dump {
    /// Every goroutine in the dump.
    pub all: Vec<Goroutine>,
    /// The ids of those serving the dump request itself.
    pub serving: BTreeSet<u64>,
}

impl Dump {
    /// Splits `all` into serving and the rest.
    pub fn new(all: Vec<Goroutine>) -> Dump {
        let serving = serving_ids(&all);
        Dump { all, serving }
    }

    /// Goroutines not serving the dump.
    pub fn clean(&self) -> impl Iterator<Item = &Goroutine> {
        self.all.iter().filter(|g| !self.serving.contains(&g.id))
    }

    /// How many goroutines are not serving the dump.
    pub fn clean_total(&self) -> u64 {
        self.clean().count() as u64
    }

    /// Counts per key, serving goroutines left out.
    pub fn counts(&self) -> BTreeMap<Key, u64> {
        let mut counts = BTreeMap::new();
        for g in self.clean() {
            *counts.entry(pprof_key(g)).or_insert(0) += 1;
        }
        counts
    }

    /// "31/29": every goroutine / without the serving ones.
    pub fn totals(&self) -> String {
        format!("{}/{}", self.all.len(), self.clean_total())
    }
}

/// Counts per key from goroscope's `groups[]`: a group is split by its `by_state`, a waiting
/// member taking the group's wait reason as label, any other member its state.
pub fn goroscope_counts(report: &Value) -> Result<BTreeMap<Key, u64>, String> {
    let groups = report["groups"]
        .as_array()
        .ok_or_else(|| "the report has no groups[] array".to_owned())?;
    let mut counts = BTreeMap::new();
    for group in groups {
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("group without a string {what}: {group}"))
        };
        let number = |v: &Value, what: &str| {
            v.as_u64()
                .ok_or_else(|| format!("group without a number {what}: {group}"))
        };
        let wait_reason = text(&group["wait_reason"], "wait_reason")?;
        let by_state = group["by_state"]
            .as_object()
            .ok_or_else(|| format!("group without by_state: {group}"))?;
        let mut members = 0;
        for (state, n) in by_state {
            let n = number(n, "by_state count")?;
            members += n;
            let label = if state == "waiting" && !wait_reason.is_empty() {
                wait_reason.clone()
            } else {
                state.clone()
            };
            let key = Key {
                label,
                blocked_function: text(&group["blocked_at"]["function"], "blocked_at.function")?,
                blocked_file: text(&group["blocked_at"]["file"], "blocked_at.file")?,
                blocked_line: number(&group["blocked_at"]["line"], "blocked_at.line")?,
                created_function: text(&group["creation"]["function"], "creation.function")?,
                created_line: number(&group["creation"]["line"], "creation.line")?,
            };
            *counts.entry(key).or_insert(0) += n;
        }
        let count = number(&group["count"], "count")?;
        if members != count {
            return Err(format!(
                "a group's by_state adds up to {members}, its count is {count}: {group}"
            ));
        }
    }
    Ok(counts)
}

/// A key whose goroscope count is outside what the two dumps allow.
pub struct Mismatch {
    /// The key.
    pub key: Key,
    /// goroscope's count.
    pub goroscope: u64,
    /// The dump before goroscope ran.
    pub before: u64,
    /// The dump after.
    pub after: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "goroscope {} vs pprof {} before / {} after: {}",
            self.goroscope, self.before, self.after, self.key
        )
    }
}

/// Every key (of any side) whose goroscope count is not between the two dumps' counts.
pub fn mismatches(
    before: &BTreeMap<Key, u64>,
    after: &BTreeMap<Key, u64>,
    goroscope: &BTreeMap<Key, u64>,
) -> Vec<Mismatch> {
    let keys: BTreeSet<&Key> = before
        .keys()
        .chain(after.keys())
        .chain(goroscope.keys())
        .collect();
    keys.into_iter()
        .filter_map(|key| {
            let b = before.get(key).copied().unwrap_or(0);
            let a = after.get(key).copied().unwrap_or(0);
            let g = goroscope.get(key).copied().unwrap_or(0);
            (g < b.min(a) || g > b.max(a)).then(|| Mismatch {
                key: key.clone(),
                goroscope: g,
                before: b,
                after: a,
            })
        })
        .collect()
}

/// How two dumps of the same daemon agree: goroutines in keys with the same count in both, of
/// all, and the keys that differ with (first, second) counts.
pub fn self_agreement(
    first: &BTreeMap<Key, u64>,
    second: &BTreeMap<Key, u64>,
) -> (u64, u64, Vec<(Key, u64, u64)>) {
    let keys: BTreeSet<&Key> = first.keys().chain(second.keys()).collect();
    let mut stable = 0;
    let mut all = 0;
    let mut differ = Vec::new();
    for key in keys {
        let a = first.get(key).copied().unwrap_or(0);
        let b = second.get(key).copied().unwrap_or(0);
        all += a.max(b);
        if a == b {
            stable += a;
        } else {
            differ.push((key.clone(), a, b));
        }
    }
    (stable, all, differ)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(label: &str, line: u64) -> Key {
        Key {
            label: label.into(),
            blocked_function: "main.f".into(),
            blocked_file: "m/main.go".into(),
            blocked_line: line,
            created_function: "main.main".into(),
            created_line: 3,
        }
    }

    #[test]
    fn goroscope_groups_split_by_state() {
        let report = json!({"groups": [
            {"count": 3, "wait_reason": "chan receive", "by_state": {"waiting": 2, "runnable": 1},
             "blocked_at": {"function": "main.f", "file": "m/main.go", "line": 10},
             "creation": {"function": "main.main", "file": "m/main.go", "line": 3}},
            {"count": 1, "wait_reason": "", "by_state": {"syscall": 1},
             "blocked_at": {"function": "main.f", "file": "m/main.go", "line": 11},
             "creation": {"function": "main.main", "file": "m/main.go", "line": 3}},
        ]});
        let counts = goroscope_counts(&report).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            counts,
            BTreeMap::from([
                (key("chan receive", 10), 2),
                (key("runnable", 10), 1),
                (key("syscall", 11), 1)
            ])
        );
        let bad = json!({"groups": [{"count": 2, "wait_reason": "", "by_state": {"running": 1},
            "blocked_at": {"function": "f", "file": "f", "line": 1},
            "creation": {"function": "f", "file": "f", "line": 1}}]});
        assert!(goroscope_counts(&bad).is_err());
    }

    #[test]
    fn counts_between_the_dumps_pass_and_others_are_named() {
        let before = BTreeMap::from([(key("select", 1), 4), (key("select", 2), 1)]);
        let after = BTreeMap::from([(key("select", 1), 5), (key("select", 2), 1)]);
        let fine = BTreeMap::from([(key("select", 1), 5), (key("select", 2), 1)]);
        assert!(mismatches(&before, &after, &fine).is_empty());
        let wrong = BTreeMap::from([(key("select", 1), 6), (key("running", 9), 1)]);
        let found: Vec<String> = mismatches(&before, &after, &wrong)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            vec![
                "goroscope 1 vs pprof 0 before / 0 after: [running] blocked at main.f (m/main.go:9), created by main.main line 3",
                "goroscope 6 vs pprof 4 before / 5 after: [select] blocked at main.f (m/main.go:1), created by main.main line 3",
                "goroscope 0 vs pprof 1 before / 1 after: [select] blocked at main.f (m/main.go:2), created by main.main line 3",
            ]
        );
    }
}
