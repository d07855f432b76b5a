//! The shape every service shares (ARCHITECTURE.md, "Inside a service"), checked on the files:
//! knowing one service means knowing all only while no service drifts from it. A lint cannot see
//! file layout, so this test walks `crates/services/*` and names every deviation.

use std::path::{Path, PathBuf};

/// Every service crate, as its directory.
fn services() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 8,
        "found only {dirs:?} under {}",
        root.display()
    );
    dirs
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

fn name(service: &Path) -> String {
    service
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Files every service has, relative to its crate.
fn missing(service: &Path, files: &[&str]) -> Vec<String> {
    files
        .iter()
        .filter(|file| !service.join(file).is_file())
        .map(|file| format!("{}: no {file}", name(service)))
        .collect()
}

fn assert_none(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "services deviate from the shape in ARCHITECTURE.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_service_publishes_a_contract_and_a_client_and_roots_its_tests_at_tests_api_main() {
    let mut problems = Vec::new();
    for service in services() {
        problems.extend(missing(
            &service,
            &[
                "src/contract.rs",
                "src/client.rs",
                "tests/api/main.rs",
                "tests/api/harness.rs",
            ],
        ));
        for file in rust_files(&service.join("src"))
            .into_iter()
            .chain(rust_files(&service.join("tests")))
        {
            let text = std::fs::read_to_string(&file).expect("readable source");
            if text
                .lines()
                .any(|line| line.trim_start().starts_with("#[path"))
            {
                problems.push(format!("{}: a #[path] attribute", file.display()));
            }
            if file.file_name().is_some_and(|n| n == "mod.rs") {
                problems.push(format!("{}: x/mod.rs instead of x.rs", file.display()));
            }
        }
        let loose: Vec<String> = std::fs::read_dir(service.join("tests"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "rs"))
                    .map(|path| path.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        // A file of its own in tests/ is a test binary of its own; only one that must be alone in
        // its process (payments' statement counter installs a global subscriber) may be one.
        for path in loose {
            if !path.ends_with("payments/tests/round_trips.rs") {
                problems.push(format!("{path}: a test binary beside tests/api/main.rs"));
            }
        }
    }
    assert_none(problems);
}

/// The other half of the shape: a service's error enum and its problem mapping in error.rs,
/// its storage behind a `…Store` struct.
#[test]
fn every_service_has_its_errors_in_error_rs_and_a_store_struct() {
    let mut problems = Vec::new();
    for service in services() {
        problems.extend(missing(&service, &["src/error.rs", "src/store.rs"]));
        let mut store_files = vec![service.join("src/store.rs")];
        store_files.extend(rust_files(&service.join("src/store")));
        let has_store_struct = store_files.iter().any(|file| {
            std::fs::read_to_string(file).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.trim_start()
                        .strip_prefix("pub struct ")
                        .and_then(|rest| {
                            rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                                .next()
                        })
                        .is_some_and(|ident| ident.ends_with("Store"))
                })
            })
        });
        if !has_store_struct {
            problems.push(format!(
                "{}: no `pub struct …Store` in src/store.rs or src/store/",
                name(&service)
            ));
        }
    }
    assert_none(problems);
}
