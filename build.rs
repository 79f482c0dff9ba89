//! Build script: records the git commit the binary is built from, for `boxoffice --version`.
//!
//! The commit comes from `BOXOFFICE_GIT_COMMIT` when a packager sets it, else from `git rev-parse`
//! in the source tree, else it is "unknown" (a tarball without `.git`, or no git installed): the
//! build never fails for want of git. Cargo reruns this script when HEAD or the branch it points to
//! moves, not on every source change.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The files whose change means HEAD moved: HEAD itself (a checkout, a detached commit), the
/// branch's ref (a commit on it) and packed-refs. Only existing files: a path that does not exist
/// would make Cargo rerun this script on every build.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
        files.push(PathBuf::from(&git_dir).join("HEAD"));
        let common = git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .unwrap_or(git_dir);
        if let Some(branch) = git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"]) {
            if branch.starts_with("refs/") {
                files.push(PathBuf::from(&common).join(branch));
            }
        }
        files.push(PathBuf::from(&common).join("packed-refs"));
    }
    files.into_iter().filter(|f| f.exists()).collect()
}

fn main() {
    println!("cargo:rerun-if-env-changed=BOXOFFICE_GIT_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let commit = std::env::var("BOXOFFICE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&dir, &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    for f in watched(&dir) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rustc-env=BOXOFFICE_GIT_COMMIT={commit}");
}
