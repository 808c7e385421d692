//! Leak events: a leak suspect appearing in a Go process, or growing past the most members it
//! was ever reported with, becomes one OTLP log record. A group that shrinks and grows back to
//! where it was says nothing new; one that reaches a new high does. A process that ends takes
//! its groups with it.

use std::collections::HashMap;

use goroscope_export::otlp::LeakChange;
use goroscope_model::goroutines::health_report::{HealthReport, LeakSuspect};

/// What tells two leak groups of one process apart: what they wait on, where they were
/// created and where they are blocked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    pid: u32,
    wait_reason: String,
    start_function: String,
    created_at: (String, u32),
    blocked_at: (String, u32),
}

impl GroupKey {
    fn of(pid: u32, suspect: &LeakSuspect) -> GroupKey {
        GroupKey {
            pid,
            wait_reason: suspect.wait_reason.clone(),
            start_function: suspect.start_function.clone(),
            created_at: (suspect.creation.file.clone(), suspect.creation.line),
            blocked_at: (suspect.blocked_at.file.clone(), suspect.blocked_at.line),
        }
    }
}

/// The most members each known leak group was reported with.
#[derive(Default)]
pub struct LeakWatch {
    highest: HashMap<GroupKey, u64>,
}

/// A leak suspect to report, with the change that makes it news.
pub struct LeakNews<'r> {
    /// The process.
    pub pid: u32,
    /// The group as the latest report sees it.
    pub suspect: &'r LeakSuspect,
    /// Appeared, or grew from the most members reported before.
    pub change: LeakChange,
}

impl LeakWatch {
    /// The suspects of `reports` that are news, remembered as reported; groups of processes
    /// not in `reports` are forgotten.
    pub fn news<'r>(
        &mut self,
        reports: impl Iterator<Item = (u32, &'r HealthReport)>,
    ) -> Vec<LeakNews<'r>> {
        let mut news = Vec::new();
        let mut pids = Vec::new();
        for (pid, report) in reports {
            pids.push(pid);
            for suspect in &report.leak_suspects {
                let key = GroupKey::of(pid, suspect);
                let change = match self.highest.get(&key) {
                    None => Some(LeakChange::Appeared),
                    Some(&highest) if suspect.count > highest => {
                        Some(LeakChange::Grew { from: highest })
                    }
                    Some(_) => None,
                };
                if let Some(change) = change {
                    self.highest.insert(key, suspect.count);
                    news.push(LeakNews {
                        pid,
                        suspect,
                        change,
                    });
                }
            }
        }
        self.highest.retain(|key, _| pids.contains(&key.pid));
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goroscope_model::goroutines::CodeLocation;

    fn suspect(line: u32, count: u64) -> LeakSuspect {
        let at = |line| CodeLocation {
            function: "main.leak".to_owned(),
            file: "/src/main.go".to_owned(),
            line,
        };
        LeakSuspect {
            count,
            recently_blocked: 0,
            wait_reason: "chan send".to_owned(),
            start_function: "main.worker".to_owned(),
            creation: at(line),
            blocked_at: at(line + 1),
            min_blocked_ns: 0,
            leak_score: 0.9,
            reason: String::new(),
            stuck: true,
            growing: false,
            growth: 0,
            growth_per_minute: 0.0,
            released: 0,
        }
    }

    fn report(suspects: Vec<LeakSuspect>) -> HealthReport {
        HealthReport {
            leak_suspects: suspects,
            ..HealthReport::default()
        }
    }

    fn changes(
        watch: &mut LeakWatch,
        reports: &[(u32, HealthReport)],
    ) -> Vec<(u32, u32, LeakChange)> {
        watch
            .news(reports.iter().map(|(pid, r)| (*pid, r)))
            .into_iter()
            .map(|n| (n.pid, n.suspect.creation.line, n.change))
            .collect()
    }

    #[test]
    fn a_group_is_news_when_it_appears_and_at_each_new_high() {
        let mut watch = LeakWatch::default();
        let first = [(7, report(vec![suspect(10, 5), suspect(20, 3)]))];
        assert_eq!(
            changes(&mut watch, &first),
            vec![(7, 10, LeakChange::Appeared), (7, 20, LeakChange::Appeared)]
        );
        assert_eq!(changes(&mut watch, &first), vec![]);
        let grown = [(7, report(vec![suspect(10, 9), suspect(20, 2)]))];
        assert_eq!(
            changes(&mut watch, &grown),
            vec![(7, 10, LeakChange::Grew { from: 5 })]
        );
        // Back to 3 after shrinking to 2: not a new high.
        assert_eq!(changes(&mut watch, &first), vec![]);
    }

    #[test]
    fn a_process_that_ends_takes_its_groups_with_it() {
        let mut watch = LeakWatch::default();
        let seven = [(7, report(vec![suspect(10, 5)]))];
        assert_eq!(changes(&mut watch, &seven).len(), 1);
        assert_eq!(changes(&mut watch, &[]), vec![]);
        // The pid reused by a new process: its group is news again.
        assert_eq!(
            changes(&mut watch, &seven),
            vec![(7, 10, LeakChange::Appeared)]
        );
    }
}
