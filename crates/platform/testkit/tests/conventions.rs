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

/// Every workspace crate's `src/` directory (platform, services, gateway, storefront, binary).
fn workspace_sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    let mut pending = vec![crates.clone()];
    while let Some(dir) = pending.pop() {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            found.push(dir.join("src"));
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    assert!(found.len() >= 14, "found only {found:?}");
    found
}

/// The module path a source file defines (`src/saga/executor.rs` → `["saga", "executor"]`; the
/// crate root → `[]`); `None` for a file that is not a module of the crate's library or binary
/// tree (`src/bin/…`) or is a test module (`…/tests.rs`).
fn module_path(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?.strip_suffix(".rs")?.to_owned();
    if parts.first().is_some_and(|p| p == "bin") || last == "tests" {
        return None;
    }
    if !(parts.is_empty() && (last == "lib" || last == "main")) {
        parts.push(last);
    }
    Some(parts)
}

/// The code of a file that is built outside tests: comments dropped, and everything from the
/// first `#[cfg(…test…)]` on (test modules sit at the end of a file by this workspace's habit).
fn production_code(text: &str) -> String {
    text.lines()
        .take_while(|line| {
            let line = line.trim_start();
            !(line.starts_with("#[cfg(") && line.contains("test"))
        })
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a file names through `crate::` or `super::`, expanded from use trees
/// (`crate::{a::B, c::{D, E}}` → `a::B`, `c::D`, `c::E`), as absolute module-path segments.
fn referenced_paths(code: &str, here: &[String]) -> Vec<Vec<String>> {
    fn ident(chars: &[char], mut i: usize) -> (String, usize) {
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        (chars[start..i].iter().collect(), i)
    }
    /// Parses one use tree at `i` with `prefix` before it; pushes the complete paths.
    fn tree(
        chars: &[char],
        mut i: usize,
        prefix: Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) -> usize {
        let mut path = prefix;
        loop {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '{' {
                i += 1;
                loop {
                    i = tree(chars, i, path.clone(), out);
                    while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                        i += 1;
                    }
                    if i >= chars.len() || chars[i] == '}' {
                        return i + 1;
                    }
                }
            }
            let (name, next) = ident(chars, i);
            if name.is_empty() {
                out.push(path);
                return i;
            }
            path.push(name);
            i = next;
            if chars[i..].starts_with(&[':', ':']) {
                i += 2;
            } else {
                out.push(path);
                return i;
            }
        }
    }
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        let (word, next) = ident(&chars, i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        if boundary && chars[next..].starts_with(&[':', ':']) {
            let base = match word.as_str() {
                "crate" => Some(Vec::new()),
                "super" => here.split_last().map(|(_, parent)| parent.to_vec()),
                _ => None,
            };
            if let Some(mut base) = base {
                // `super::super::x`
                let mut j = next + 2;
                loop {
                    let (again, after) = ident(&chars, j);
                    if again == "super" && chars[after..].starts_with(&[':', ':']) {
                        base.pop();
                        j = after + 2;
                    } else {
                        break;
                    }
                }
                i = tree(&chars, j, base, &mut out);
                continue;
            }
        }
        i = next;
    }
    out
}

/// No module uses a sibling module that uses it back, directly or around a longer loop
/// (issue 11): imports run one way, so a module can be read, tested and moved with what it
/// depends on only. A child using its parent (`super::`) and a parent re-exporting its child
/// are not loops: each reference counts between the two siblings under the modules' common
/// ancestor.
#[test]
fn no_module_imports_a_module_that_imports_it() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut problems = Vec::new();
    for src in workspace_sources() {
        let mut modules: BTreeMap<Vec<String>, String> = BTreeMap::new();
        for file in rust_files(&src) {
            if let Some(path) = module_path(&src, &file) {
                let code = production_code(&std::fs::read_to_string(&file).expect("readable"));
                modules.entry(path).or_default().push_str(&code); // lib.rs and main.rs
            }
        }
        // Edges between siblings: (parent, from, to) → an example of the reference.
        let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut why: BTreeMap<(Vec<String>, String, String), String> = BTreeMap::new();
        for (here, code) in &modules {
            for target in referenced_paths(code, here) {
                // The module the path names: its longest prefix that is a module file.
                let module = (0..=target.len())
                    .rev()
                    .map(|n| target[..n].to_vec())
                    .find(|prefix| modules.contains_key(prefix))
                    .unwrap_or_default();
                let common = here.iter().zip(&module).take_while(|(a, b)| a == b).count();
                let (Some(from), Some(to)) = (here.get(common), module.get(common)) else {
                    continue; // one is the other's ancestor
                };
                let parent = here[..common].to_vec();
                edges
                    .entry(parent.clone())
                    .or_default()
                    .entry(from.clone())
                    .or_default()
                    .insert(to.clone());
                why.entry((parent, from.clone(), to.clone()))
                    .or_insert_with(|| format!("{} uses {}", here.join("::"), target.join("::")));
            }
        }
        for (parent, graph) in &edges {
            for cycle in cycles(graph) {
                let steps: Vec<String> = cycle
                    .windows(2)
                    .map(|pair| {
                        why.get(&(parent.clone(), pair[0].clone(), pair[1].clone()))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                problems.push(format!(
                    "{}: {} ({})",
                    src.parent().unwrap_or(&src).display(),
                    cycle.join(" → "),
                    steps.join("; ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "module cycles (move the shared piece down, or invert the dependency):\n  {}",
        problems.join("\n  ")
    );
}

/// One cycle (as a closed walk `a → b → … → a`) per strongly connected set of more than one
/// module, found by depth-first search.
fn cycles(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    use std::collections::BTreeSet;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        // Breadth-first search back to `start`, keeping each node's predecessor.
        let mut previous: std::collections::BTreeMap<String, String> = Default::default();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut closed = None;
        while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    closed = Some(node.clone());
                    break;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
            if closed.is_some() {
                break;
            }
        }
        if let Some(mut node) = closed {
            let mut walk = vec![start.clone()];
            while &node != start {
                walk.push(node.clone());
                node = previous[&node].clone();
            }
            walk.push(start.clone());
            let last = walk.len() - 1;
            walk[1..last].reverse();
            reported.extend(walk.iter().cloned());
            found.push(walk);
        }
    }
    found
}
