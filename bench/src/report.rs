//! The results: a table and verification lines for the terminal, and a JSON file that records enough
//! about the run (when, on what machine, with which arguments and server config) to compare runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::load::Phase;
use clap::ValueEnum as _;

use crate::scenario::{Check, Params, Scenario};
use crate::server::{Checked, Stopped};
use crate::targets::{self, thousands, Figure};

#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run finished, RFC 3339 UTC.
    pub date: String,
    pub machine: Machine,
    /// The benchmark's own command line, exactly as given.
    pub command: Vec<String>,
    pub server: ServerInfo,
    pub params: Params,
    pub scenarios: Vec<ScenarioReport>,
    /// Scenarios that could not run to the end (`all` goes on with the next one), with the error.
    pub not_run: Vec<NotRun>,
    /// True when every check of every scenario held.
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct NotRun {
    pub scenario: &'static str,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub os: &'static str,
    pub arch: &'static str,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    /// The file system the servers' data dirs are on (under the temp dir): their fsyncs are its.
    pub data_filesystem: Option<String>,
}

impl Machine {
    /// What can be learnt cheaply; the kernel and CPU model come from `/proc` and are absent elsewhere.
    pub fn detect() -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            });
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel,
            cpu_model,
            data_filesystem: crate::server::filesystem_of(&std::env::temp_dir()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ServerInfo {
    pub binary: String,
    /// The config file every server of the run was started with, verbatim.
    pub config_toml: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    /// The headline phase's figures, at the top level so they are easy to pick out.
    #[serde(flatten)]
    pub headline: Phase,
    pub setup: Vec<Phase>,
    /// The arguments the scenario's server was started with (its own data dir and port).
    pub server_args: Vec<String>,
    /// The headline rate as a share of the baseline's: of the same-server bracket where the scenario
    /// measured one (`read-event`, `position`), else of the `baseline` scenario in the same `all` run.
    pub vs_baseline: Option<f64>,
    /// Figures beside the headline, each with the issue's target where it sets one.
    pub figures: Vec<Figure>,
    pub verification: Verification,
}

#[derive(Debug, Serialize)]
pub struct Verification {
    #[serde(flatten)]
    pub values: BTreeMap<&'static str, serde_json::Value>,
    pub check_passed: bool,
    pub shutdown: Stopped,
    pub check: Checked,
    pub checks: Vec<Check>,
    pub passed: bool,
}

/// The UTC time now in RFC 3339.
pub fn now_rfc3339() -> anyhow::Result<String> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("format the date")
}

/// The results table: one headline row per scenario, its setup phases indented below it.
pub fn table(scenarios: &[ScenarioReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "scenario",
        "requests",
        "seconds",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "steal %"
    );
    for s in scenarios {
        row(&mut out, s.scenario, &s.headline);
        for phase in &s.setup {
            row(&mut out, &format!("  {}", phase.phase), phase);
        }
    }
    out
}

fn row(out: &mut String, label: &str, p: &Phase) {
    let _ = writeln!(
        out,
        "{label:<22} {:>9} {:>8.2} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>7}",
        p.requests,
        p.seconds,
        p.rps,
        p.latency.p50_ms,
        p.latency.p95_ms,
        p.latency.p99_ms,
        p.latency.max_ms,
        p.error_count,
        steal(p)
    );
}

/// The phase's CPU steal, for the tables: the share of the machine's CPU time the hypervisor kept,
/// in whole percent (the counters tick too coarsely for more; the JSON has one decimal).
fn steal(p: &Phase) -> String {
    p.cpu
        .map_or_else(|| "-".to_string(), |c| format!("{:.0}", c.steal_pct))
}

/// The figures of each scenario, one line each, saying which targets they meet.
pub fn figures(scenarios: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for s in scenarios {
        for f in &s.figures {
            let _ = writeln!(out, "{}: {f}", s.scenario);
        }
    }
    out
}

/// `all`'s one table: a row per scenario with its headline, its ratio to `baseline` and its figures.
pub fn summary(scenarios: &[ScenarioReport], not_run: &[NotRun], params: &Params) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>7} {:>7} {:>7} {:>7} {:>10} {:>7}  figures [target: met?]",
        "scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "x baseline", "steal %"
    );
    for s in scenarios {
        let h = &s.headline;
        let ratio = s
            .vs_baseline
            .map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
        let figures: Vec<String> = s.figures.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>7.2} {:>7.2} {:>7.2} {:>7} {:>10} {:>7}  {}",
            s.scenario,
            thousands(h.rps),
            h.latency.p50_ms,
            h.latency.p95_ms,
            h.latency.p99_ms,
            h.error_count,
            ratio,
            steal(h),
            figures.join("; ")
        );
    }
    for n in not_run {
        let _ = writeln!(
            out,
            "{:<11} did not run to the end: {}",
            n.scenario, n.error
        );
    }
    let judged: Vec<(&str, &Figure)> = scenarios
        .iter()
        .flat_map(|s| s.figures.iter().map(move |f| (s.scenario, f)))
        .filter(|(_, f)| f.met.is_some())
        .collect();
    let mut not_judged = scenarios
        .iter()
        .flat_map(|s| &s.figures)
        .filter(|f| f.not_judged.is_some())
        .count();
    // A target whose figure is missing (its scenario did not run to the end, or could not measure
    // it) is missed, not left out of the count; on a run off the issue's parameters it would not
    // have been judged either.
    let ran = scenarios.iter().map(|s| {
        (
            s.scenario,
            s.figures
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
        )
    });
    let stopped = not_run.iter().map(|n| (n.scenario, Vec::new()));
    let mut unmeasured = Vec::new();
    for (name, figures) in ran.chain(stopped) {
        let Some(scenario) = Scenario::value_variants().iter().find(|s| s.name() == name) else {
            continue;
        };
        for target in targets::targeted(*scenario).filter(|t| !figures.contains(t)) {
            if targets::off_issue(*scenario, params).is_some() {
                not_judged += 1;
            } else {
                unmeasured.push((name, target));
            }
        }
    }
    let met = judged.iter().filter(|(_, f)| f.met == Some(true)).count();
    let _ = writeln!(
        out,
        "\ntargets met: {met} of {}",
        judged.len() + unmeasured.len()
    );
    for (scenario, f) in judged.iter().filter(|(_, f)| f.met == Some(false)) {
        let _ = writeln!(out, "  missed: {scenario}: {f}");
    }
    for (scenario, target) in &unmeasured {
        let _ = writeln!(out, "  missed: {scenario}: {target} not measured");
    }
    if not_judged > 0 {
        let _ = writeln!(
            out,
            "targets not judged (the run's parameters are not the issue's): {not_judged}"
        );
    }
    out
}

/// The verification lines of one scenario, then its errors if there were any.
pub fn verification(s: &ScenarioReport) -> String {
    let mut out = String::new();
    let v = &s.verification;
    for c in &v.checks {
        let _ = writeln!(
            out,
            "{} {}: {}: {}",
            mark(c.passed),
            s.scenario,
            c.name,
            c.detail
        );
    }
    let _ = writeln!(
        out,
        "{} {}: shutdown on SIGTERM: {} after {:.2} s{}",
        mark(v.shutdown.graceful),
        s.scenario,
        v.shutdown.exit_status,
        v.shutdown.seconds,
        if v.shutdown.graceful {
            ""
        } else {
            " (killed after timeout)"
        }
    );
    let _ = writeln!(
        out,
        "{} {}: boxoffice check: {}",
        mark(v.check.passed),
        s.scenario,
        v.check.exit_status
    );
    if !v.check.passed {
        let _ = writeln!(out, "{}", v.check.output);
    }
    let h = &s.headline;
    if h.error_count > 0 {
        let _ = writeln!(
            out,
            "WARN {}: {} of {} requests failed: {:?}",
            s.scenario, h.error_count, h.requests, h.errors
        );
        for sample in &h.error_samples {
            let _ = writeln!(out, "     {sample}");
        }
    }
    out
}

fn mark(passed: bool) -> &'static str {
    if passed {
        "ok  "
    } else {
        "FAIL"
    }
}

/// Writes the report as pretty JSON, creating the directory if needed.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(report).context("serialise the report")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{Unit, PEAK_RSS, STARTUP, VS_EMPTY};

    fn scale_report(figures: Vec<Figure>) -> ScenarioReport {
        let mut none = [];
        ScenarioReport {
            scenario: Scenario::Scale.name(),
            headline: Phase::sequential("rush", &mut none, std::time::Duration::from_secs(1)),
            setup: Vec::new(),
            server_args: Vec::new(),
            vs_baseline: None,
            figures,
            verification: Verification {
                values: BTreeMap::new(),
                check_passed: true,
                shutdown: Stopped {
                    graceful: true,
                    exit_status: "exit 0".into(),
                    seconds: 0.0,
                },
                check: Checked {
                    passed: true,
                    exit_status: "exit 0".into(),
                    output: String::new(),
                },
                checks: Vec::new(),
                passed: true,
            },
        }
    }

    fn params() -> Params {
        targets::issue_params()
    }

    #[test]
    fn a_target_whose_figure_is_missing_counts_as_missed() {
        let p = params();
        let s = scale_report(vec![
            Figure::new(VS_EMPTY, 0.9, Unit::Ratio).judged(Scenario::Scale, &p),
            Figure::new(STARTUP, 0.02, Unit::Seconds).judged(Scenario::Scale, &p),
        ]);
        let text = summary(&[s], &[], &p);
        assert!(text.contains("targets met: 2 of 3"), "{text}");
        assert!(
            text.contains("missed: scale: peak RSS not measured"),
            "{text}"
        );
        // A scenario that did not run misses all its targets.
        let gone = [NotRun {
            scenario: Scenario::Rush.name(),
            error: "server gone".into(),
        }];
        let text = summary(&[], &gone, &p);
        assert!(text.contains("targets met: 0 of 2"), "{text}");
        // Off the issue's parameters the missing figures are not judged either.
        let few = Params {
            connections: 16,
            ..params()
        };
        let text = summary(&[], &gone, &few);
        assert!(text.contains("targets met: 0 of 0"), "{text}");
        assert!(
            text.contains("not judged (the run's parameters are not the issue's): 2"),
            "{text}"
        );
    }

    #[test]
    fn figures_off_the_issues_parameters_are_neither_met_nor_missed() {
        let small = Params {
            scale_registrations: 10_000,
            ..params()
        };
        let s = scale_report(vec![
            Figure::new(VS_EMPTY, 0.9, Unit::Ratio).judged(Scenario::Scale, &small),
            Figure::new(STARTUP, 0.02, Unit::Seconds).judged(Scenario::Scale, &small),
            Figure::new(PEAK_RSS, 80e6, Unit::Bytes).judged(Scenario::Scale, &small),
        ]);
        let text = summary(&[s], &[], &small);
        assert!(text.contains("targets met: 0 of 0"), "{text}");
        assert!(text.contains("targets not judged"), "{text}");
    }
}
