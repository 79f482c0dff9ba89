//! Figures beyond the headline (hit rates, peak RSS, start-up time, ratios) and the targets of issue 4,
//! in one table, so the report can say of every figure which target it meets.
//!
//! A scenario measures figures and names them; it does not judge them. `goal` holds every target, and
//! the runner attaches it to the figure it concerns, once the ratio to `baseline` is known.

use std::fmt;

use serde::Serialize;

use crate::scenario::{Params, Scenario};

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

/// Every figure the issue sets a target on (for some scenario).
pub const TARGETED: [&str; 7] = [
    RATE,
    P99,
    VS_BASELINE,
    EVENT_HIT_RATE,
    VS_EMPTY,
    PEAK_RSS,
    STARTUP,
];

/// Megabytes as the issue's "150 MB" means them (decimal); shown so too.
const MB: f64 = 1_000_000.0;

/// The benchmark's defaults: the parameters the issue's targets are set for (64 connections, and
/// for `scale` 1,000,000 registrations over 10,000 events), and sizes of our choosing for the rest.
pub const fn issue_params() -> Params {
    Params {
        connections: 64,
        registrations: 40_000,
        capacity: 30_000,
        requests: 200_000,
        scale_events: 10_000,
        scale_registrations: 1_000_000,
    }
}

/// Why the figures of `scenario` run with `p` cannot be judged against the issue's targets, which
/// are set for 64 connections and, for `scale`, 1,000,000 registrations over 10,000 events. Such a
/// figure is shown with its target and "not judged", and counts neither as met nor as missed.
pub fn off_issue(scenario: Scenario, p: &Params) -> Option<String> {
    let issue = issue_params();
    if p.connections != issue.connections {
        return Some(format!("{} connections, not the issue's 64", p.connections));
    }
    if scenario == Scenario::Scale
        && (p.scale_registrations != issue.scale_registrations
            || p.scale_events != issue.scale_events)
    {
        return Some(format!(
            "{} registrations over {} events, not the issue's 1,000,000 over 10,000",
            thousands(p.scale_registrations as f64),
            thousands(p.scale_events as f64)
        ));
    }
    None
}

/// The figures `scenario` must report for its targets to be judged.
pub fn targeted(scenario: Scenario) -> impl Iterator<Item = &'static str> {
    TARGETED
        .into_iter()
        .filter(move |name| goal(scenario, name).is_some())
}

/// The issue's targets: which figure of which scenario must reach what (2-core machine).
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
    /// `v` as the table shows it, with more digits when the usual ones would show it equal to
    /// `bound` while it is not (0.7998 is not 0.80x, 14,999.6/s is not 15,000/s).
    fn show_against(self, v: f64, bound: f64) -> String {
        let shown = self.show(v);
        if v == bound || shown != self.show(bound) {
            return shown;
        }
        match self {
            Unit::PerSecond => format!("{}/s", apart(v, bound)),
            Unit::Ms => format!("{} ms", apart(v, bound)),
            Unit::Seconds => format!("{} s", apart(v, bound)),
            Unit::Share => format!("{}%", apart(v * 100.0, bound * 100.0)),
            Unit::Ratio => format!("{}x", apart(v, bound)),
            Unit::Bytes => format!("{} MB", apart(v / MB, bound / MB)),
            Unit::Count => apart(v, bound),
        }
    }

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

/// `v` with the fewest decimals (at least one) that tell it apart from `bound`.
fn apart(v: f64, bound: f64) -> String {
    (1..=12)
        .map(|p| (format!("{v:.p$}"), format!("{bound:.p$}")))
        .find(|(a, b)| a != b)
        .map_or_else(|| v.to_string(), |(a, _)| a)
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
    fn value(self) -> f64 {
        match self {
            Bound::AtLeast(b) | Bound::Above(b) | Bound::Below(b) => b,
        }
    }

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
    /// Whether the target is met; absent without a target, or when the run's parameters are not
    /// the issue's (`not_judged` says how).
    pub met: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: Unit) -> Self {
        Self {
            name: name.to_string(),
            value,
            unit,
            target: None,
            met: None,
            not_judged: None,
        }
    }

    /// Attaches the issue's target for this figure of `scenario`, if there is one, and judges the
    /// figure against it when the run's parameters are the issue's.
    pub fn judged(mut self, scenario: Scenario, params: &Params) -> Self {
        self.target = goal(scenario, &self.name);
        match (self.target, off_issue(scenario, params)) {
            (Some(_), Some(why)) => self.not_judged = Some(why),
            (Some(b), None) => self.met = Some(b.met(self.value)),
            (None, _) => {}
        }
        self
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.target {
            Some(b) => self.unit.show_against(self.value, b.value()),
            None => self.unit.show(self.value),
        };
        write!(f, "{} {shown}", self.name)?;
        if let (Some(b), Some(why)) = (self.target, &self.not_judged) {
            write!(f, " [{}: not judged: {why}]", b.show(self.unit))?;
        }
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
        let p = issue_params();
        let f = Figure::new(EVENT_HIT_RATE, 0.99, Unit::Share).judged(Scenario::ReadEvent, &p);
        assert_eq!(f.to_string(), "event hit rate 99.0% [> 95.0%: met]");
        let f = Figure::new(RATE, 9_400.0, Unit::PerSecond).judged(Scenario::Rush, &p);
        assert_eq!(f.to_string(), "requests/s 9,400/s [>= 15,000/s: MISSED]");
        let f = Figure::new(PEAK_RSS, 40.0 * MB, Unit::Bytes).judged(Scenario::Rush, &p);
        assert_eq!(f.to_string(), "peak RSS 40 MB");
        let f = Figure::new(PEAK_RSS, 151.0 * MB, Unit::Bytes).judged(Scenario::Scale, &p);
        assert_eq!(f.met, Some(false), "150 MB are 150,000,000 bytes");
        // A figure the usual digits would show equal to its bound gets more.
        let f = Figure::new(VS_BASELINE, 0.7998, Unit::Ratio).judged(Scenario::Position, &p);
        assert_eq!(f.to_string(), "x baseline 0.7998x [>= 0.80x: MISSED]");
        let f = Figure::new(VS_BASELINE, 0.799_996, Unit::Ratio).judged(Scenario::Position, &p);
        assert_eq!(f.to_string(), "x baseline 0.799996x [>= 0.80x: MISSED]");
        let f = Figure::new(RATE, 14_999.6, Unit::PerSecond).judged(Scenario::Rush, &p);
        assert_eq!(f.to_string(), "requests/s 14999.6/s [>= 15,000/s: MISSED]");
        let f = Figure::new(PEAK_RSS, 149.6 * MB, Unit::Bytes).judged(Scenario::Scale, &p);
        assert_eq!(f.to_string(), "peak RSS 149.6 MB [< 150 MB: met]");
        let f = Figure::new(STARTUP, 0.996, Unit::Seconds).judged(Scenario::Scale, &p);
        assert_eq!(f.to_string(), "startup 0.996 s [< 1.00 s: met]");
    }

    #[test]
    fn figures_of_a_run_off_the_issues_parameters_are_not_judged() {
        let few = Params {
            connections: 16,
            ..issue_params()
        };
        let f = Figure::new(RATE, 30_000.0, Unit::PerSecond).judged(Scenario::Rush, &few);
        assert_eq!(f.met, None);
        assert_eq!(
            f.to_string(),
            "requests/s 30,000/s [>= 15,000/s: not judged: 16 connections, not the issue's 64]"
        );
        let small = Params {
            scale_registrations: 10_000,
            scale_events: 100,
            ..issue_params()
        };
        let f = Figure::new(VS_EMPTY, 0.95, Unit::Ratio).judged(Scenario::Scale, &small);
        assert_eq!(f.met, None);
        // The rush's own targets do not depend on the scale sizes.
        let f = Figure::new(RATE, 30_000.0, Unit::PerSecond).judged(Scenario::Rush, &small);
        assert_eq!(f.met, Some(true));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
