//! Figures beyond the headline (hit rates, peak RSS, start-up time, ratios) and the targets of issue 4,
//! in one table, so the report can say of every figure which target it meets.
//!
//! A scenario measures figures and names them; it does not judge them. `goal` holds every target, and
//! the runner attaches it to the figure it concerns, once the ratio to `baseline` is known.

use std::fmt;

use serde::Serialize;

use crate::scenario::Scenario;

/// Names of figures the targets refer to; a scenario that reports one of these uses the constant.
pub const RATE: &str = "requests/s";
pub const P99: &str = "p99";
pub const VS_BASELINE: &str = "x baseline";
pub const EVENT_HIT_RATE: &str = "event hit rate";
pub const POSITION_HIT_RATE: &str = "position hit rate";
pub const CACHE_HIT_RATE: &str = "whole cache hit rate";
pub const PEAK_RSS: &str = "peak RSS";
pub const STARTUP: &str = "startup";
pub const VS_EMPTY: &str = "rush x empty db";
pub const DB_SIZE: &str = "db size";
pub const MEAN_GROUP: &str = "commands per commit";
pub const MEAN_COMMIT: &str = "mean commit";
pub const RAW_SQLITE: &str = "raw SQLite, 100 sales a commit";
// The name states the reference's batch.
const _: () = assert!(crate::reference::PER_COMMIT == 100);
pub const VS_RAW_SQLITE: &str = "rush x raw SQLite";

const MB: f64 = 1024.0 * 1024.0;

/// The targets: which figure of which scenario must reach what (2-core machine).
pub fn goal(scenario: Scenario, figure: &str) -> Option<Bound> {
    use Scenario::*;
    match (scenario, figure) {
        (Rush, RATE) => Some(Bound::AtLeast(15_000.0)),
        (Rush, P99) => Some(Bound::Below(20.0)),
        (ReadEvent | Position, VS_BASELINE) => Some(Bound::AtLeast(0.8)),
        (ReadEvent | Mixed, EVENT_HIT_RATE) => Some(Bound::Above(0.95)),
        (Scale, VS_EMPTY) => Some(Bound::AtLeast(0.8)),
        (Scale, PEAK_RSS) => Some(Bound::Below(150.0 * MB)),
        (Scale, STARTUP) => Some(Bound::Below(1.0)),
        _ => None,
    }
}

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    PerSecond,
    Ms,
    Seconds,
    /// A share between 0 and 1, shown as a percentage.
    Share,
    /// A ratio of two rates, shown as `0.87x`.
    Ratio,
    Bytes,
    /// A mean of things counted, such as commands per commit.
    Count,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::PerSecond => format!("{}/s", thousands(v)),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Share => format!("{:.1}%", v * 100.0),
            Unit::Ratio => format!("{v:.2}x"),
            Unit::Bytes => format!("{:.0} MB", v / MB),
            Unit::Count => format!("{v:.1}"),
        }
    }
}

/// What a target asks of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "bound")]
pub enum Bound {
    AtLeast(f64),
    Above(f64),
    Below(f64),
}

impl Bound {
    pub fn met(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(b) => v >= b,
            Bound::Above(b) => v > b,
            Bound::Below(b) => v < b,
        }
    }

    fn show(self, unit: Unit) -> String {
        match self {
            Bound::AtLeast(b) => format!(">= {}", unit.show(b)),
            Bound::Above(b) => format!("> {}", unit.show(b)),
            Bound::Below(b) => format!("< {}", unit.show(b)),
        }
    }
}

/// One measured figure, with its target when the issue sets one.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: Unit,
    pub target: Option<Bound>,
    /// Whether the target is met; absent without a target.
    pub met: Option<bool>,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: Unit) -> Self {
        Self {
            name: name.to_string(),
            value,
            unit,
            target: None,
            met: None,
        }
    }

    /// Attaches the target for this figure of `scenario`, if there is one.
    pub fn judged(mut self, scenario: Scenario) -> Self {
        self.target = goal(scenario, &self.name);
        self.met = self.target.map(|b| b.met(self.value));
        self
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.unit.show(self.value))?;
        if let (Some(b), Some(met)) = (self.target, self.met) {
            write!(
                f,
                " [{}: {}]",
                b.show(self.unit),
                if met { "met" } else { "MISSED" }
            )?;
        }
        Ok(())
    }
}

/// `12345.6` as `12,346`.
pub fn thousands(v: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_says_whether_it_meets_its_target() {
        let f = Figure::new(EVENT_HIT_RATE, 0.99, Unit::Share).judged(Scenario::ReadEvent);
        assert_eq!(f.to_string(), "event hit rate 99.0% [> 95.0%: met]");
        let f = Figure::new(RATE, 9_400.0, Unit::PerSecond).judged(Scenario::Rush);
        assert_eq!(f.to_string(), "requests/s 9,400/s [>= 15,000/s: MISSED]");
        let f = Figure::new(PEAK_RSS, 40.0 * MB, Unit::Bytes).judged(Scenario::Rush);
        assert_eq!(f.to_string(), "peak RSS 40 MB");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
