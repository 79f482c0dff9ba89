//! Item 3, full and broken disks. Both parts mount real file systems (we run as root); where that is
//! impossible the item fails and says why.
//!
//! **Full**: the data dir is a 24 MiB tmpfs, a filler file leaves a few MiB, and 16 clients register
//! until the disk is full and stay on it for a while: every write answers 201 or a 503 problem
//! document, reads and `/health` keep answering (health names the disk), then the filler is deleted
//! and writes succeed again without a restart. Nothing acknowledged is lost; `boxoffice check` passes.
//!
//! **Read-only**: Linux refuses `mount -o remount,ro` while a file on the mount is open for writing
//! (the database always is): the item tries it and records the refusal. What really turns a box's
//! file system read-only under a running database is the kernel, on an I/O error: the data dir is
//! an ext4 image on a loop device mounted `errors=remount-ro`, and the item triggers an ext4 error
//! through sysfs while clients write. Writes answer 503 problem documents, reads and `/health` keep
//! answering (health names the disk). The kernel will not remount such a file system read-write
//! while it is mounted, so recovery is the operator's: stop the box, unmount, `e2fsck`, mount,
//! start; then nothing acknowledged is lost, `boxoffice check` passes and writes succeed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::client::Api;
use crate::report::{ItemReport, Table};
use crate::server::{self, Server, Spec};
use crate::stats::mib;
use crate::Options;

const TMPFS_SIZE: &str = "24m";
/// Left free by the filler before the rush.
const HEADROOM: u64 = 6 * 1024 * 1024;
/// `/health`'s disk check fails below this; the rush takes the disk well under it.
const MIN_FREE: u64 = 2 * 1024 * 1024;
const CLIENTS: usize = 16;
/// How long the clients keep writing once the disk is full (or read-only).
const STAY_BROKEN: Duration = Duration::from_secs(4);

fn config() -> String {
    format!("log = \"warn\"\n\n[store]\nmin_free_bytes = {MIN_FREE}\n")
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PartFigures {
    pub acknowledged_writes: u64,
    pub acknowledged_writes_lost: u64,
    /// Write answers while broken: 503 problem documents, and anything else (must be none).
    pub writes_refused_503: u64,
    pub unexpected_answers: u64,
    pub unexpected_examples: Vec<String>,
    pub reads_ok_while_broken: u64,
    pub reads_failed_while_broken: u64,
    pub health_while_broken: String,
    pub health_names_disk: bool,
    pub stayed_up: bool,
    pub check_passed: bool,
    pub check_output: String,
    pub writes_again: bool,
    pub writes_again_after_ms: f64,
    pub health_ok_again: bool,
    pub restarted: bool,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub full: PartFigures,
    pub read_only: PartFigures,
    pub literal_remount_ro: String,
}

pub async fn run(opts: &Options) -> anyhow::Result<ItemReport> {
    if !rustix::process::geteuid().is_root() {
        bail!("the disk item mounts file systems and needs root; this process is not root");
    }
    let work = server::work_dir("disk")?;
    let mut f = Figures::default();
    let full = full_disk(opts, &work).await;
    let ro = read_only(opts, &work, &mut f.literal_remount_ro).await;

    let mut r = ItemReport::new("3. full and broken disks");
    match full {
        Ok(p) => f.full = p,
        Err(e) => r.must(false, format!("full disk: {e:#}")),
    }
    match ro {
        Ok(p) => f.read_only = p,
        Err(e) => r.must(false, format!("read-only disk: {e:#}")),
    }
    let mut t = Table::new(&[
        "figure",
        "tmpfs fills during a rush",
        "ext4 turns read-only",
    ]);
    let both =
        |t: &mut Table, name: &str, a: String, b: String| t.row(vec![name.to_string(), a, b]);
    let (a, b) = (&f.full, &f.read_only);
    both(
        &mut t,
        "process stayed up",
        yes(a.stayed_up),
        yes(b.stayed_up),
    );
    both(
        &mut t,
        "acknowledged writes / lost",
        format!("{} / {}", a.acknowledged_writes, a.acknowledged_writes_lost),
        format!("{} / {}", b.acknowledged_writes, b.acknowledged_writes_lost),
    );
    both(
        &mut t,
        "writes refused with a 503 problem document / other answers",
        format!("{} / {}", a.writes_refused_503, a.unexpected_answers),
        format!("{} / {}", b.writes_refused_503, b.unexpected_answers),
    );
    both(
        &mut t,
        "reads answered while broken (failed)",
        format!(
            "{} ({})",
            a.reads_ok_while_broken, a.reads_failed_while_broken
        ),
        format!(
            "{} ({})",
            b.reads_ok_while_broken, b.reads_failed_while_broken
        ),
    );
    both(
        &mut t,
        "`/health` while broken",
        a.health_while_broken.clone(),
        b.health_while_broken.clone(),
    );
    both(
        &mut t,
        "`boxoffice check`",
        pass(a.check_passed),
        pass(b.check_passed),
    );
    both(&mut t, "writes succeed again", again(a), again(b));
    r.table = t;
    for (name, p) in [("full", a), ("read-only", b)] {
        r.must(p.stayed_up, format!("{name}: the server died"));
        r.must(
            p.acknowledged_writes > 0,
            format!("{name}: no write was acknowledged"),
        );
        r.must(
            p.acknowledged_writes_lost == 0,
            format!(
                "{name}: {} acknowledged writes lost",
                p.acknowledged_writes_lost
            ),
        );
        r.must(
            p.writes_refused_503 > 0,
            format!("{name}: no write was refused: the disk never broke"),
        );
        r.must(
            p.unexpected_answers == 0,
            format!(
                "{name}: {} write answers were neither 201 nor a 503 problem document: {:?}",
                p.unexpected_answers, p.unexpected_examples
            ),
        );
        r.must(
            p.reads_failed_while_broken == 0 && p.reads_ok_while_broken > 0,
            format!("{name}: reads failed while the disk was broken"),
        );
        r.must(
            p.health_names_disk,
            format!(
                "{name}: /health did not name the disk: {}",
                p.health_while_broken
            ),
        );
        r.must(
            p.check_passed,
            format!("{name}: boxoffice check: {}", p.check_output),
        );
        r.must(
            p.writes_again,
            format!("{name}: writes did not succeed again"),
        );
        for n in &p.notes {
            r.note(format!("{name}: {n}"));
        }
    }
    r.must(
        f.full.health_ok_again,
        "full: /health did not answer 200 again once space was back",
    );
    r.must(!f.full.restarted, "full: recovery needed a restart");
    r.note(format!(
        "`mount -o remount,ro` under the running box: {}",
        f.literal_remount_ro
    ));
    r.figures = serde_json::to_value(&f)?;
    if r.passed {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        r.note(format!("data kept in {}", work.display()));
    }
    Ok(r)
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "NO" }.to_string()
}

fn pass(b: bool) -> String {
    if b { "passes" } else { "FAILS" }.to_string()
}

fn again(p: &PartFigures) -> String {
    match (p.writes_again, p.restarted) {
        (false, _) => "NO".to_string(),
        (true, false) => format!(
            "yes, {:.0} ms after the space came back, no restart",
            p.writes_again_after_ms
        ),
        (true, true) => "yes, after unmount, e2fsck, mount and a restart".to_string(),
    }
}

/// Runs a command; its stderr in the error when it fails.
fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a temp path that is not UTF-8")
}

/// A mount that is undone when dropped (lazily, so a failing item never leaves it behind).
struct Mounted {
    at: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(at) = self.at.to_str() {
            let _ = sh("umount", &["-l", at]);
        }
    }
}

fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let v = rustix::fs::statvfs(dir)?;
    Ok(v.f_bavail * v.f_frsize)
}

/// What the writing clients were told.
#[derive(Default)]
struct Tally {
    attendees: Vec<String>,
    registrations: Vec<(String, String)>,
    refused: u64,
    unexpected: u64,
    examples: Vec<String>,
    /// When the first write was refused.
    first_refusal: Option<Instant>,
}

/// 16 clients: an attendee, then its registration; every answer sorted into the tally.
fn spawn_writers(
    api: &Api,
    event: &str,
    tag: &'static str,
    tally: &Arc<Mutex<Tally>>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, event, tally, stop, next) = (
            api.clone(),
            event.to_string(),
            tally.clone(),
            stop.clone(),
            next.clone(),
        );
        set.spawn(async move {
            let record =
                |a: &anyhow::Result<crate::client::Answer>, what: &str| -> Option<String> {
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    match a {
                        Ok(a) if a.status == 201 => a.str("id"),
                        Ok(a) if a.is_problem(503) => {
                            t.refused += 1;
                            t.first_refusal.get_or_insert_with(Instant::now);
                            None
                        }
                        Ok(a) => {
                            t.unexpected += 1;
                            if t.examples.len() < 5 {
                                t.examples.push(format!(
                                    "{what}: {} {} {}",
                                    a.status, a.content_type, a.body
                                ));
                            }
                            None
                        }
                        // A transport failure while the box is up is an unexpected answer too.
                        Err(e) => {
                            t.unexpected += 1;
                            if t.examples.len() < 5 {
                                t.examples.push(format!("{what}: {e}"));
                            }
                            None
                        }
                    }
                };
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let a = api.new_attendee(tag, n).await;
                let Some(attendee) = record(&a, "attendee") else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                tally
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .attendees
                    .push(attendee.clone());
                let r = api.register(&event, &attendee).await;
                if let Some(id) = record(&r, "registration") {
                    let status = r.ok().and_then(|a| a.str("status")).unwrap_or_default();
                    tally
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .registrations
                        .push((id, status));
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    set
}

/// While broken: reads and `/health` must answer. Returns (reads ok, reads failed, health text,
/// whether health named the disk).
async fn probe_while_broken(api: &Api, event: &str, p: &mut PartFigures) {
    for _ in 0..10 {
        match api.get(&format!("/api/v1/events/{event}")).await {
            Ok(a) if a.status == 200 => p.reads_ok_while_broken += 1,
            _ => p.reads_failed_while_broken += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match api.get_anonymous("/health").await {
        Ok(h) => {
            let detail = h.body["detail"].as_str().unwrap_or_default().to_string();
            p.health_names_disk = h.status == 503 && detail.contains("disk: ");
            p.health_while_broken = format!("{}: {}", h.status, detail);
        }
        Err(e) => p.health_while_broken = format!("no answer: {e}"),
    }
}

/// Every acknowledged attendee and registration is there, registrations with the status they had.
async fn lost(api: &Api, t: &Tally) -> anyhow::Result<u64> {
    let mut lost = 0;
    for a in &t.attendees {
        if api.get(&format!("/api/v1/attendees/{a}")).await?.status != 200 {
            lost += 1;
        }
    }
    for (id, status) in &t.registrations {
        let r = api.get(&format!("/api/v1/registrations/{id}")).await?;
        if r.status != 200 || r.str("status").as_deref() != Some(status.as_str()) {
            lost += 1;
        }
    }
    Ok(lost)
}

async fn full_disk(opts: &Options, work: &Path) -> anyhow::Result<PartFigures> {
    let mp = work.join("tmpfs");
    std::fs::create_dir_all(&mp)?;
    sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={TMPFS_SIZE}"),
            "tmpfs",
            path_str(&mp)?,
        ],
    )
    .context("cannot mount a tmpfs for the data dir (the item needs root and mount rights)")?;
    let _mounted = Mounted { at: mp.clone() };
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: mp.clone(),
        config: config(),
        nofile: None,
    };
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let api = Api::new(&server.url(""), &token, Duration::from_secs(15))?;
    let event = api.published_event("Full disk", 1_000_000).await?;
    let mut p = PartFigures::default();

    // Fill all but the headroom, with real bytes (a sparse file takes no space on tmpfs).
    let filler = mp.join("filler");
    let size = free_bytes(&mp)?.saturating_sub(HEADROOM);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler)?;
        let chunk = vec![0x5au8; 1024 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
    }
    p.notes.push(format!(
        "tmpfs of {TMPFS_SIZE}, filler of {} leaving {} free; /health's minimum {}",
        mib(size),
        mib(free_bytes(&mp)?),
        mib(MIN_FREE)
    ));

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = spawn_writers(&api, &event, "full", &tally, &stop);
    let started = Instant::now();
    let full_at = loop {
        if let Some(at) = tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_refusal
        {
            break Some(at);
        }
        if started.elapsed() > Duration::from_secs(120) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if full_at.is_some() {
        p.notes.push(format!(
            "the disk filled {:.1} s into the rush",
            started.elapsed().as_secs_f64()
        ));
        let broken = Instant::now();
        probe_while_broken(&api, &event, &mut p).await;
        if let Some(left) = STAY_BROKEN.checked_sub(broken.elapsed()) {
            tokio::time::sleep(left).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    while writers.join_next().await.is_some() {}
    p.stayed_up = server.alive();

    // Space comes back; the box must take writes again on its own.
    std::fs::remove_file(&filler)?;
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(20) && p.stayed_up {
        if let Ok(a) = api
            .new_attendee("full-after", back.elapsed().as_nanos() as u64)
            .await
        {
            if a.status == 201 {
                p.writes_again = true;
                p.writes_again_after_ms = back.elapsed().as_secs_f64() * 1000.0;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while back.elapsed() < Duration::from_secs(20) && p.stayed_up {
        if let Ok(h) = api.get_anonymous("/health").await {
            if h.status == 200 {
                p.health_ok_again = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    p.acknowledged_writes = (t.attendees.len() + t.registrations.len()) as u64;
    p.writes_refused_503 = t.refused;
    p.unexpected_answers = t.unexpected;
    p.unexpected_examples = t.examples.clone();
    if p.stayed_up {
        p.acknowledged_writes_lost = lost(&api, &t).await?;
        server.stop().await?;
    } else {
        p.notes.push(format!("server log: {}", server.log_tail(10)));
    }
    let checked = server::check(&spec.binary, &spec.data_dir)?;
    p.check_passed = checked.passed;
    p.check_output = checked.output;
    drop(server);
    Ok(p)
}

async fn read_only(
    opts: &Options,
    work: &Path,
    literal: &mut String,
) -> anyhow::Result<PartFigures> {
    // First what the issue names: remount the data dir's tmpfs read-only under the running box.
    *literal = match literal_remount(opts, work).await {
        Ok(s) => s,
        Err(e) => format!("could not be tried: {e:#}"),
    };

    let image = work.join("ext4.img");
    let mp = work.join("ext4");
    std::fs::create_dir_all(&mp)?;
    std::fs::File::create(&image)?.set_len(64 * 1024 * 1024)?;
    sh("mkfs.ext4", &["-q", "-F", path_str(&image)?])
        .context("cannot make an ext4 image (mkfs.ext4)")?;
    sh(
        "mount",
        &[
            "-o",
            "loop,errors=remount-ro",
            path_str(&image)?,
            path_str(&mp)?,
        ],
    )
    .context(
        "cannot mount an ext4 image on a loop device (the item needs root and loop devices)",
    )?;
    let mounted = Mounted { at: mp.clone() };
    let device = sh("findmnt", &["-n", "-o", "SOURCE", path_str(&mp)?])?;
    let device = device
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let trigger = PathBuf::from(format!("/sys/fs/ext4/{device}/trigger_fs_error"));
    if !trigger.exists() {
        bail!(
            "{} does not exist: this kernel cannot be told to fail the file system",
            trigger.display()
        );
    }

    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: mp.clone(),
        config: config(),
        nofile: None,
    };
    let mut server = Server::start(&spec).await?;
    let token = server.admin_token()?;
    let api = Api::new(&server.url(""), &token, Duration::from_secs(15))?;
    let event = api.published_event("Read-only disk", 1_000_000).await?;
    let mut p = PartFigures::default();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = spawn_writers(&api, &event, "ro", &tally, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::write(&trigger, "1").with_context(|| format!("write {}", trigger.display()))?;
    let opts_now = sh("findmnt", &["-n", "-o", "OPTIONS", path_str(&mp)?])?;
    p.notes.push(format!(
        "after the ext4 error the mount options are {}",
        opts_now.trim()
    ));
    let started = Instant::now();
    while tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first_refusal
        .is_none()
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    probe_while_broken(&api, &event, &mut p).await;
    tokio::time::sleep(STAY_BROKEN).await;
    stop.store(true, Ordering::SeqCst);
    while writers.join_next().await.is_some() {}
    p.stayed_up = server.alive();

    // The operator's way back: remount read-write is refused after an error, so stop, unmount,
    // repair, mount, start.
    match sh("mount", &["-o", "remount,rw", path_str(&mp)?]) {
        Ok(_) => p
            .notes
            .push("remount,rw after the error succeeded".to_string()),
        Err(e) => p
            .notes
            .push(format!("remount,rw after the error is refused: {e:#}")),
    }
    let t = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    p.acknowledged_writes = (t.attendees.len() + t.registrations.len()) as u64;
    p.writes_refused_503 = t.refused;
    p.unexpected_answers = t.unexpected;
    p.unexpected_examples = t.examples.clone();
    let stopped = server.stop().await?;
    p.notes.push(format!(
        "SIGTERM on the read-only disk: {}",
        if stopped {
            "clean exit"
        } else {
            "not a clean exit"
        }
    ));
    drop(server);
    drop(mounted);
    // `umount -l` returns before the file system is released; wait until it is gone.
    for _ in 0..100 {
        if sh("findmnt", &[path_str(&mp)?]).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fsck = Command::new("e2fsck")
        .args(["-f", "-y", path_str(&image)?])
        .output()?;
    p.notes.push(format!(
        "e2fsck -f -y exit status {}",
        fsck.status.code().unwrap_or(-1)
    ));
    sh("mount", &["-o", "loop", path_str(&image)?, path_str(&mp)?])?;
    let _remounted = Mounted { at: mp.clone() };
    let checked = server::check(&spec.binary, &spec.data_dir)?;
    p.check_passed = checked.passed;
    p.check_output = checked.output;
    let mut server = Server::start(&spec).await?;
    p.restarted = true;
    let api = api.with_base(&server.url(""));
    p.acknowledged_writes_lost = lost(&api, &t).await?;
    if let Ok(a) = api.new_attendee("ro-after", 0).await {
        p.writes_again = a.status == 201;
    }
    server.stop().await?;
    Ok(p)
}

/// `mount -o remount,ro` on a tmpfs data dir under a running box: Linux answers EBUSY while any
/// file on it is open for writing. Returns what happened.
async fn literal_remount(opts: &Options, work: &Path) -> anyhow::Result<String> {
    let mp = work.join("tmpfs-ro");
    std::fs::create_dir_all(&mp)?;
    sh(
        "mount",
        &["-t", "tmpfs", "-o", "size=32m", "tmpfs", path_str(&mp)?],
    )?;
    let _mounted = Mounted { at: mp.clone() };
    let spec = Spec {
        binary: opts.binary.clone(),
        data_dir: mp.clone(),
        config: config(),
        nofile: None,
    };
    let mut server = Server::start(&spec).await?;
    let outcome = match sh("mount", &["-o", "remount,ro", path_str(&mp)?]) {
        Ok(_) => {
            let _ = sh("mount", &["-o", "remount,rw", path_str(&mp)?]);
            "the kernel allowed it (unexpected); see the read-only part for the checks".to_string()
        }
        Err(e) => format!("refused by the kernel while the database is open for writing: {e:#}"),
    };
    server.stop().await?;
    Ok(outcome)
}
