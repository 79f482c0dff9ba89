//! What a run reports: per item a table for people (Markdown, pasted into the README as it is) and
//! the figures as JSON for machines, with the failures that make the item (and the run) fail.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// A Markdown table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out
    }
}

/// One item's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    pub item: String,
    pub passed: bool,
    pub seconds: f64,
    pub table: Table,
    /// Must-haves that did not hold; the item passed when this is empty.
    pub failures: Vec<String>,
    /// What the reader should know to read the figures (configuration, what was substituted, why).
    pub notes: Vec<String>,
    pub figures: serde_json::Value,
}

impl ItemReport {
    pub fn new(item: &str) -> Self {
        Self {
            item: item.to_string(),
            passed: true,
            seconds: 0.0,
            table: Table::default(),
            failures: Vec::new(),
            notes: Vec::new(),
            figures: serde_json::Value::Null,
        }
    }

    /// Records a must-have; a false `ok` fails the item with `what`.
    pub fn must(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.passed = false;
            self.failures.push(what.into());
        }
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    pub fn print(&self) {
        println!(
            "\n## {} ({}, {:.0} s)\n",
            self.item,
            if self.passed { "passed" } else { "FAILED" },
            self.seconds
        );
        print!("{}", self.table.markdown());
        for n in &self.notes {
            println!("- {n}");
        }
        for f in &self.failures {
            println!("- FAILED: {f}");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
}

impl Machine {
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
            kernel,
            cpu_model,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub mode: String,
    pub command: Vec<String>,
    pub server: String,
    pub machine: Machine,
    pub items: Vec<ItemReport>,
    pub passed: bool,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_string())
}

pub fn write_json(report: &Report, out: &Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(out, text).with_context(|| format!("write {}", out.display()))
}
