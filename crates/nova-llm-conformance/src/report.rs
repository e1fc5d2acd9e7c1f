//! What the kit found: one outcome per check.

use std::fmt;

/// How one check ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The driver did what the contract says.
    Passed,
    /// It did not: what was wrong.
    Failed(String),
    /// The check does not apply to this driver: why.
    Skipped(String),
}

/// One check and how it ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check's name, such as `stream_contract` or `error/rate_limited`.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every check's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    results: Vec<CheckResult>,
}

impl Report {
    pub(crate) fn push(&mut self, name: impl Into<String>, outcome: Outcome) {
        self.results.push(CheckResult {
            name: name.into(),
            outcome,
        });
    }

    /// Every check, in the order they ran.
    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    /// The outcome of the check named `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.outcome)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Panics with the whole report unless every check passed or was skipped: the one line
    /// a driver's test needs.
    ///
    /// # Panics
    /// When a check failed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(
            self.passed(),
            "the driver fails the conformance kit:\n{self}"
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            match &r.outcome {
                Outcome::Passed => writeln!(f, "  ok      {}", r.name)?,
                Outcome::Failed(why) => writeln!(f, "  FAILED  {}: {why}", r.name)?,
                Outcome::Skipped(why) => writeln!(f, "  skipped {}: {why}", r.name)?,
            }
        }
        Ok(())
    }
}
