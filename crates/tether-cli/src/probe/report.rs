//! The probe's report: its rows in order, printed as a table for a person or as JSON for a
//! script, and whether any check failed.

use std::time::Duration;

use serde_json::{Value, json};

use super::judge::{self, Check, Status};

/// The report: every row, in the order they are printed.
pub(super) struct Report {
    pub(super) url: String,
    pub(super) session: String,
    pub(super) held: Duration,
    pub(super) checks: Vec<Check>,
}

impl Report {
    pub(super) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "url": self.url,
            "session": self.session,
            "passed": self.passed(),
            "checks": self.checks.iter().map(Check::json).collect::<Vec<_>>(),
        })
    }

    pub(super) fn table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .checks
            .iter()
            .map(|c| {
                let status = match c.status {
                    Status::Fail => "FAIL".to_owned(),
                    s => s.as_str().to_owned(),
                };
                [
                    c.name.to_owned(),
                    status,
                    c.value.clone(),
                    c.expected.clone(),
                ]
            })
            .collect();
        let head = [
            "CHECK".to_owned(),
            "RESULT".to_owned(),
            "MEASURED".to_owned(),
            "EXPECTED".to_owned(),
        ];
        let mut width = [0usize; 4];
        for row in std::iter::once(&head).chain(&rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "tether probe {} (session {}, held {})\n\n",
            self.url,
            self.session,
            judge::secs(self.held)
        );
        for row in std::iter::once(&head).chain(&rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i == 3 {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = width[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "\n{} passed, {} failed, {} skipped: {}\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            if self.passed() {
                "no check failed"
            } else {
                "a check failed"
            }
        ));
        out
    }
}
