//! The shape of the code, checked: which module may import which (DESIGN.md: dependencies
//! point down only; `store` imports only `domain`, `error` and `clock`; the domain imports
//! nothing of ours; settings types have one owner), and that the modules' imports form no
//! cycle. It reads `src/` as text: every `crate::<module>` in a file of one top-level module
//! is an import of that module.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import, from the top down.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "web",
        &[
            "app",
            "clock",
            "config",
            "domain",
            "error",
            "escalation",
            "fhir",
            "outbox",
            "store",
            "telemetry",
        ],
    ),
    ("demo", &["app", "clock", "domain", "error", "store"]),
    ("telemetry", &["config", "error"]),
    ("config", &["domain", "error", "outbox", "store"]),
    ("escalation", &["app", "clock", "domain", "error", "store"]),
    ("outbox", &["clock", "domain", "error", "fhir", "store"]),
    ("app", &["clock", "domain", "error", "store"]),
    ("fhir", &["domain", "error", "store"]),
    ("store", &["clock", "domain", "error"]),
    ("domain", &[]),
    ("error", &[]),
    ("clock", &[]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the other top-level modules its files name, with one file each.
fn imports() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        // The crate root and the binaries stand above everything.
        if ["lib", "main", "bin"].contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                out.entry(top.clone())
                    .or_default()
                    .entry(name)
                    .or_insert_with(|| rel.clone());
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_the_modules_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, names) in imports() {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "src/{module} is not in ALLOWED in tests/architecture.rs: place it"
            ));
            continue;
        };
        for (name, file) in names {
            if !may.contains(&name.as_str()) {
                wrong.push(format!(
                    "src/{file} imports crate::{name}, which {module} may not"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_modules_imports_form_no_cycle() {
    let graph = imports();
    let mut done: BTreeSet<String> = BTreeSet::new();
    // Repeatedly take away modules that import nothing left; what remains is in a cycle.
    loop {
        let free: Vec<String> = graph
            .keys()
            .filter(|m| !done.contains(*m))
            .filter(|m| {
                graph[*m]
                    .keys()
                    .all(|n| done.contains(n) || !graph.contains_key(n))
            })
            .cloned()
            .collect();
        if free.is_empty() {
            break;
        }
        done.extend(free);
    }
    let left: Vec<String> = graph
        .iter()
        .filter(|(m, _)| !done.contains(*m))
        .map(|(m, names)| {
            let into: Vec<String> = names
                .iter()
                .filter(|(n, _)| graph.contains_key(*n) && !done.contains(*n))
                .map(|(n, f)| format!("{n} (src/{f})"))
                .collect();
            format!("{m} -> {}", into.join(", "))
        })
        .collect();
    assert!(
        left.is_empty(),
        "modules in an import cycle:\n{}",
        left.join("\n")
    );
}
