//! Tidy test for the architecture invariants of the README: dependencies point one way
//! (`domain <- store <- app <- http`), `domain` does no IO and reads no clock, and only `store` holds SQL.
//! It reads the source files; a violation names the file and the offending text.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// Every (file, needle) where a file under `roots` contains a forbidden needle.
fn offences(roots: &[PathBuf], forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for root in roots {
        let files = if root.is_dir() {
            rust_files(root)
        } else {
            vec![root.clone()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            for needle in forbidden {
                if text.contains(needle) {
                    found.push(format!("{} contains {needle:?}", f.display()));
                }
            }
        }
    }
    found
}

#[test]
fn domain_does_no_io_and_reads_no_clock() {
    let bad = offences(
        &[src("domain")],
        &[
            "rusqlite",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
            "std::fs",
            "std::net",
            "SystemTime",
            "Instant::now",
            "crate::store",
            "crate::app",
            "crate::http",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn store_knows_neither_the_app_nor_http() {
    let bad = offences(
        &[src("store")],
        &[
            "crate::app",
            "crate::http",
            "crate::outbox",
            "axum",
            "hyper",
            "reqwest",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn app_knows_no_http() {
    let bad = offences(
        &[src("app.rs"), src("app")],
        &["crate::http", "axum", "hyper::", "StatusCode"],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn only_the_store_holds_sql() {
    let roots: Vec<PathBuf> = std::fs::read_dir(src(""))
        .expect("src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "store"))
        .collect();
    let bad = offences(
        &roots,
        &[
            "\"SELECT ",
            "\"INSERT ",
            "\"UPDATE ",
            "\"DELETE FROM",
            "execute_batch(",
            "prepare_cached(",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}
