//! The whole machine's CPU time over a phase, from the first line of `/proc/stat`: how much of it
//! was busy, idle, waiting for the disk, and stolen (time the hypervisor ran another guest while this
//! one had work ready). A phase that left the CPU idle was bound by something else than CPU time (the
//! writer's cycle, the disk); steal shows one way a shared VM slows down. It does not show every way:
//! on this machine a fixed loop ran at half speed at times with no steal counted (README: Benchmark).
//! The counters tick 100 times a second per core, so over a phase of one second on two cores one tick
//! is half a percent: the shares are coarse.

use serde::Serialize;

/// CPU time of all cores in clock ticks, by state: a counter that only grows, so a phase's share
/// is the difference of two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    busy: u64,
    idle: u64,
    iowait: u64,
    steal: u64,
}

impl Ticks {
    /// The machine's counters now; `None` where `/proc/stat` cannot be read (not Linux).
    pub fn now() -> Option<Self> {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| Self::parse(&s))
    }

    /// The `cpu` line: user nice system idle iowait irq softirq steal (guest time is already counted
    /// in user and nice, so the columns after steal are left out).
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = n[..] else {
            return None;
        };
        Some(Self {
            busy: user + nice + system + irq + softirq,
            idle,
            iowait,
            steal,
        })
    }

    /// Ticks of each state, for tests elsewhere.
    #[cfg(test)]
    pub fn new(busy: u64, idle: u64, iowait: u64, steal: u64) -> Self {
        Self {
            busy,
            idle,
            iowait,
            steal,
        }
    }

    /// What was counted between `earlier` and this reading.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }

    /// Two spans together (the slices of one phase).
    pub fn plus(self, other: Self) -> Self {
        Self {
            busy: self.busy + other.busy,
            idle: self.idle + other.idle,
            iowait: self.iowait + other.iowait,
            steal: self.steal + other.steal,
        }
    }

    /// Each state's share of the span, in percent; `None` for a span too short to count a tick.
    #[allow(clippy::cast_precision_loss)]
    pub fn shares(self) -> Option<CpuShares> {
        let total = self.busy + self.idle + self.iowait + self.steal;
        let pct = |n: u64| (n as f64 * 1000.0 / total as f64).round() / 10.0;
        (total > 0).then(|| CpuShares {
            busy_pct: pct(self.busy),
            idle_pct: pct(self.idle),
            iowait_pct: pct(self.iowait),
            steal_pct: pct(self.steal),
        })
    }
}

/// The machine's CPU time over a phase, all cores together, in percent of it (one decimal).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuShares {
    /// Running anything: the server, the benchmark's client, the kernel for both.
    pub busy_pct: f64,
    pub idle_pct: f64,
    /// Idle with a disk request outstanding (the writer's fsyncs).
    pub iowait_pct: f64,
    /// Ready to run but not given the CPU by the hypervisor.
    pub steal_pct: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every column moves by a different amount, guest time (the last two) included, so a column
    // read in the wrong place changes the result.
    const BEFORE: &str = "cpu  4615310 2397 880368 2833931 125874 0 147451 37744 500 7\n\
                          cpu0 2307655 1198 440184 1416965 62937 0 73725 18872 0 0\n";
    const AFTER: &str = "cpu  4615430 2398 880410 2834001 125904 3 147456 37764 600 9\n";

    fn span() -> Ticks {
        let before = Ticks::parse(BEFORE).expect("a cpu line");
        Ticks::parse(AFTER).expect("a cpu line").since(before)
    }

    #[test]
    fn a_span_is_split_into_busy_idle_iowait_and_steal() {
        // busy: user 120 + nice 1 + system 42 + irq 3 + softirq 5 = 171; idle 70, iowait 30,
        // steal 20; 291 in all (guest time is inside user and nice already).
        assert_eq!(
            span(),
            Ticks {
                busy: 171,
                idle: 70,
                iowait: 30,
                steal: 20,
            }
        );
        assert_eq!(
            span().shares(),
            Some(CpuShares {
                busy_pct: 58.8,
                idle_pct: 24.1,
                iowait_pct: 10.3,
                steal_pct: 6.9,
            })
        );
    }

    #[test]
    fn slices_add_up_and_an_empty_span_has_no_shares() {
        let other = Ticks {
            busy: 29,
            idle: 30,
            iowait: 70,
            steal: 80,
        };
        // 200 busy, 100 idle, 100 iowait, 100 steal.
        assert_eq!(
            span().plus(other).shares(),
            Some(CpuShares {
                busy_pct: 40.0,
                idle_pct: 20.0,
                iowait_pct: 20.0,
                steal_pct: 20.0,
            })
        );
        assert_eq!(Ticks::default().shares(), None);
        assert_eq!(Ticks::parse("intr 1 2 3\n"), None);
        assert_eq!(Ticks::parse("cpu  1 2 3\n"), None);
    }
}
