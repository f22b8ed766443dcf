//! Test runners' output (what `.ci/run` keeps): each run, and each named test's outcome in it.
use super::TestRef;

/// One test's outcome in one run of a test runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The test binary's source (`tests/api/main.rs`, `src/lib.rs`…) or `node` for browser tests.
    pub binary: String,
    /// The path cargo prints (`lifecycle::foo`), or the browser test's title.
    pub path: String,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct Run {
    pub label: String,
    pub lines: Vec<Line>,
}

/// The marker `.ci/run` writes before each test runner's output.
pub const RUN_MARKER: &str = "### run: ";

/// Reads concatenated `cargo test` and `node --test` output (TAP or spec reporter), split
/// into runs by lines starting with [`RUN_MARKER`].
pub fn parse_results(text: &str) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut binary = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if let Some(label) = line.strip_prefix(RUN_MARKER) {
            runs.push(Run {
                label: label.trim().to_string(),
                lines: Vec::new(),
            });
            binary.clear();
            continue;
        }
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("Running ") {
            let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
            binary = rest.split(" (").next().unwrap_or(rest).trim().to_string();
            continue;
        }
        if t.starts_with("Doc-tests ") {
            binary = "doc".into();
            continue;
        }
        let parsed = if let Some(rest) = t.strip_prefix("test ") {
            rest.rsplit_once(" ... ").and_then(|(path, result)| {
                let outcome = match result.split(',').next().unwrap_or("").trim() {
                    "ok" => Outcome::Pass,
                    "FAILED" => Outcome::Fail,
                    "ignored" => Outcome::Ignored,
                    _ => return None,
                };
                Some(Line {
                    binary: binary.clone(),
                    path: path.trim().to_string(),
                    outcome,
                })
            })
        } else {
            node_line(t)
        };
        if let Some(l) = parsed {
            if runs.is_empty() {
                runs.push(Run {
                    label: "run".into(),
                    lines: Vec::new(),
                });
            }
            runs.last_mut().expect("a run").lines.push(l);
        }
    }
    runs
}

fn node_line(t: &str) -> Option<Line> {
    let strip_number = |s: &str| -> Option<String> {
        let (n, title) = s.split_once(" - ")?;
        n.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| title.to_string())
    };
    let (outcome, title) = if let Some(rest) = t.strip_prefix("not ok ") {
        (Outcome::Fail, strip_number(rest)?)
    } else if let Some(rest) = t.strip_prefix("ok ") {
        (Outcome::Pass, strip_number(rest)?)
    } else if let Some(rest) = t.strip_prefix("✔ ") {
        (Outcome::Pass, strip_duration(rest))
    } else if let Some(rest) = t.strip_prefix("✖ ") {
        (Outcome::Fail, strip_duration(rest))
    } else if let Some(rest) = t.strip_prefix("﹣ ") {
        (Outcome::Ignored, strip_duration(rest))
    } else {
        return None;
    };
    let (title, outcome) = match title.split_once(" # ") {
        Some((t, d))
            if outcome == Outcome::Pass && (d.starts_with("SKIP") || d.starts_with("TODO")) =>
        {
            (t.to_string(), Outcome::Ignored)
        }
        _ => (title, outcome),
    };
    Some(Line {
        binary: "node".into(),
        path: title.replace("\\#", "#").replace("\\\\", "\\"),
        outcome,
    })
}

fn strip_duration(s: &str) -> String {
    match s.rsplit_once(" (") {
        Some((title, tail)) if tail.ends_with("ms)") => title.to_string(),
        _ => s.to_string(),
    }
}

/// Which test binary runs a file's tests, and the module path cargo prints before its names.
fn cargo_location(file: &str) -> (String, String) {
    let module = |rel: &str| -> String {
        let rel = rel.trim_end_matches(".rs");
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| *p != "mod" && *p != "main" && *p != "lib")
            .collect();
        parts.iter().map(|p| format!("{p}::")).collect()
    };
    if let Some(rest) = file.strip_prefix("tests/") {
        match rest.split_once('/') {
            None => (file.to_string(), String::new()),
            Some((dir, inner)) => (format!("tests/{dir}/main.rs"), module(inner)),
        }
    } else if file.starts_with("src/bin/") || file == "src/main.rs" {
        let rest = &file["src/".len()..];
        let bin = if rest.starts_with("bin/") && rest.matches('/').count() > 1 {
            let dir = rest.split('/').take(2).collect::<Vec<_>>().join("/");
            format!("src/{dir}/main.rs")
        } else {
            file.to_string()
        };
        (bin, String::new())
    } else {
        let rel = file.strip_prefix("src/").unwrap_or(file);
        ("src/lib.rs".to_string(), module(rel))
    }
}

/// Does this output line report this named test?
pub fn reports(r: &TestRef, l: &Line) -> bool {
    if r.is_browser() {
        return l.binary == "node" && l.path == r.name;
    }
    let (binary, prefix) = cargo_location(&r.file);
    l.binary == binary
        && (l.path == format!("{prefix}{}", r.name)
            || (l.path.starts_with(&prefix) && l.path.ends_with(&format!("::{}", r.name))))
}

/// A named test's outcome in each run that reported it.
pub fn outcomes<'a>(r: &TestRef, runs: &'a [Run]) -> Vec<(&'a str, Outcome)> {
    runs.iter()
        .filter_map(|run| {
            run.lines
                .iter()
                .find(|l| reports(r, l))
                .map(|l| (run.label.as_str(), l.outcome))
        })
        .collect()
}

/// pass when it passed in every run that ran it, fail when it failed in any, else not run.
pub fn verdict(outcomes: &[(&str, Outcome)]) -> &'static str {
    if outcomes.iter().any(|(_, o)| *o == Outcome::Fail) {
        "fail"
    } else if outcomes.iter().any(|(_, o)| *o == Outcome::Pass) {
        "pass"
    } else {
        "not-run"
    }
}
