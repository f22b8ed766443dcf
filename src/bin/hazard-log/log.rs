//! The hazard log (docs/safety/hazards.toml): its model, the DCB0129/DCB0160 risk matrix, the
//! checks that keep it honest, its rendering to docs/safety/hazard-log.md, and the reading of
//! test runners' output for the last CI result of each named test.
//!
//! Shared by the `hazard-log` command and by `tests/hazard_log.rs`, which includes this file
//! with `#[path]`: it uses only `serde`, `toml` and the standard library.
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the log lives, relative to the repository root.
pub const SOURCE: &str = "docs/safety/hazards.toml";
pub const RENDERED: &str = "docs/safety/hazard-log.md";
pub const RENDER_COMMAND: &str = "cargo run --bin hazard-log -- render --write";

pub const SEVERITIES: [&str; 5] = [
    "Minor",
    "Significant",
    "Considerable",
    "Major",
    "Catastrophic",
];
pub const LIKELIHOODS: [&str; 5] = ["Very low", "Low", "Medium", "High", "Very high"];

/// The DCB0129/DCB0160 risk matrix: `MATRIX[likelihood][severity]`, both in the order above.
pub const MATRIX: [[u8; 5]; 5] = [
    [1, 1, 2, 2, 3], // Very low
    [1, 2, 2, 3, 4], // Low
    [2, 2, 3, 3, 4], // Medium
    [2, 3, 3, 4, 5], // High
    [3, 4, 4, 5, 5], // Very high
];

pub const SEVERITY_MEANING: [&str; 5] = [
    "Minor injury or inconvenience to one patient, or none; recovery is complete and quick.",
    "Minor injury to several patients, or an injury to one that needs a minor intervention; short-term distress.",
    "Severe injury or incapacity to one patient from which recovery is expected, or minor injury to many.",
    "Death or permanent, life-changing incapacity of one patient, or severe injury to several.",
    "Death or permanent, life-changing incapacity of several patients.",
];
pub const LIKELIHOOD_MEANING: [&str; 5] = [
    "Negligible or nearly impossible.",
    "Could occur, but in the great majority of occasions will not.",
    "Possible.",
    "Not certain, but very possible: reasonably expected in the majority of cases.",
    "Certain or almost certain: highly likely to occur.",
];
pub const RATING_MEANING: [&str; 5] = [
    "Acceptable: no further action needed.",
    "Acceptable where further reduction would cost more than it gains: mitigate as far as reasonable and monitor.",
    "Undesirable: tolerable only with further risk reduction sought and the Clinical Safety Officer's agreement.",
    "Unacceptable: must be reduced before the system is used.",
    "Unacceptable: must be reduced before the system is used.",
];

/// What a mitigation's `status` may be.
pub const STATUSES: [(&str, &str); 5] = [
    ("built", "built, and the named tests show it working"),
    (
        "untested",
        "built, but no test shows it working yet: a gap, given no credit in the residual rating",
    ),
    ("planned", "not built yet: the issue named builds it"),
    ("proposed", "not built and not yet filed as an issue"),
    (
        "trust",
        "a control the deploying trust owns (its DCB0160 work), not the software",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub title: String,
    pub version: String,
    pub intro: String,
    #[serde(rename = "hazard", default)]
    pub hazards: Vec<Hazard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hazard {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub causes: Vec<String>,
    pub effect: String,
    pub before: Rating,
    pub after: Rating,
    /// The rating expected once the planned and proposed mitigations are built.
    pub target: Option<Rating>,
    #[serde(rename = "mitigation", default)]
    pub mitigations: Vec<Mitigation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rating {
    pub severity: String,
    pub likelihood: String,
    pub rating: u8,
    #[serde(default)]
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    pub what: String,
    pub status: String,
    #[serde(default)]
    pub tests: Vec<String>,
    pub issue: Option<u32>,
}

pub fn load(root: &Path) -> Result<Log, String> {
    let path = root.join(SOURCE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text)
}

pub fn parse(text: &str) -> Result<Log, String> {
    toml::from_str(text).map_err(|e| format!("{SOURCE}: {e}"))
}

fn severity_index(s: &str) -> Option<usize> {
    SEVERITIES.iter().position(|x| *x == s)
}

fn likelihood_index(s: &str) -> Option<usize> {
    LIKELIHOODS.iter().position(|x| *x == s)
}

/// The matrix's rating for a severity and likelihood, or why there is none.
pub fn matrix_rating(severity: &str, likelihood: &str) -> Result<u8, String> {
    let s = severity_index(severity).ok_or_else(|| {
        format!(
            "severity {severity:?} is not one of {}",
            SEVERITIES.join(", ")
        )
    })?;
    let l = likelihood_index(likelihood).ok_or_else(|| {
        format!(
            "likelihood {likelihood:?} is not one of {}",
            LIKELIHOODS.join(", ")
        )
    })?;
    Ok(MATRIX[l][s])
}

/// A named test: `path::name`, where path is a Rust file under src/ or tests/ and name its
/// test function, or a browser test file under tests/browser/ and name its test's title.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TestRef {
    pub file: String,
    pub name: String,
}

impl TestRef {
    pub fn parse(s: &str) -> Result<TestRef, String> {
        for ext in [".rs::", ".js::"] {
            if let Some(at) = s.find(ext) {
                let file = &s[..at + ext.len() - 2];
                let name = &s[at + ext.len()..];
                if name.trim().is_empty() || name.trim() != name {
                    break;
                }
                return Ok(TestRef {
                    file: file.to_string(),
                    name: name.to_string(),
                });
            }
        }
        Err(format!(
            "`{s}` is not a test reference: write `path/to/file.rs::test_function` \
             (a Rust test) or `tests/browser/file.test.js::the test's title` (a browser test)"
        ))
    }

    pub fn is_browser(&self) -> bool {
        self.file.ends_with(".js")
    }
}

impl std::fmt::Display for TestRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.file, self.name)
    }
}

/// Every test in the tree: file (relative, with `/`) → test names (Rust functions marked
/// `#[test]`, `#[tokio::test…]`, `#[actix_web::test]` or `#[actix_rt::test]`; browser test titles).
pub fn index_tests(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    for dir in ["src", "tests"] {
        walk(&root.join(dir), &mut files);
    }
    let mut index = BTreeMap::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let names = if rel.ends_with(".rs") {
            rust_tests(&text)
        } else if rel.starts_with("tests/browser/") && rel.ends_with(".test.js") {
            js_tests(&text)
        } else {
            continue;
        };
        index.insert(rel, names.into_iter().collect());
    }
    index
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "node_modules" && name != "target" && !name.starts_with('.') {
                walk(&p, out);
            }
        } else if name.ends_with(".rs") || name.ends_with(".js") {
            out.push(p);
        }
    }
}

fn is_test_attribute(line: &str) -> bool {
    line == "#[test]"
        || ["#[tokio::test", "#[actix_web::test", "#[actix_rt::test"]
            .iter()
            .any(|a| line.starts_with(a))
}

/// The name after `fn ` on a line that declares a function, if any.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line;
    loop {
        let at = rest.find("fn ")?;
        let starts_word = at == 0 || rest[..at].ends_with(' ');
        let after = &rest[at + 3..];
        if starts_word {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return (!name.is_empty()).then_some(name);
        }
        rest = after;
    }
}

/// The test functions of a Rust file: a test attribute, then (past other attributes, doc
/// comments and the attribute's own continuation lines) the `fn` it marks.
pub fn rust_tests(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = false;
    let mut in_raw_string = false;
    for line in text.lines() {
        let t = line.trim();
        // Test code quoted inside a raw string (as in tests/hazard_log.rs) is not a test.
        if in_raw_string {
            in_raw_string = !t.contains("\"#");
            continue;
        }
        if let Some(at) = t.find("r#\"") {
            in_raw_string = !t[at + 3..].contains("\"#");
            continue;
        }
        if is_test_attribute(t) {
            pending = true;
            continue;
        }
        if !pending {
            continue;
        }
        if let Some(name) = fn_name(t) {
            names.push(name);
            pending = false;
        } else if t.ends_with(';') || t.ends_with('{') || t.ends_with('}') {
            pending = false;
        }
    }
    names
}

/// The titles of a node:test file's tests: `test('title', …)` or `it("title", …)`.
pub fn js_tests(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("test(").or_else(|| t.strip_prefix("it(")) else {
            continue;
        };
        let mut chars = rest.chars();
        let Some(quote) = chars.next().filter(|c| matches!(c, '\'' | '"' | '`')) else {
            continue;
        };
        let mut title = String::new();
        let mut escaped = false;
        for c in chars {
            if escaped {
                title.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == quote {
                names.push(title);
                break;
            } else {
                title.push(c);
            }
        }
    }
    names
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn closest<'a>(name: &str, among: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    among
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= c.chars().count().max(name.chars().count()) / 2)
        .min()
        .map(|(_, c)| c)
}

/// Why a named test cannot be found, in words that say what to change; `None` if it exists.
pub fn missing_test(r: &TestRef, index: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    if index.get(&r.file).is_some_and(|n| n.contains(&r.name)) {
        return None;
    }
    let kind = if r.is_browser() {
        "browser test titled"
    } else {
        "test function"
    };
    let elsewhere: Vec<&String> = index
        .iter()
        .filter(|(_, names)| names.contains(&r.name))
        .map(|(f, _)| f)
        .collect();
    let mut why = match index.get(&r.file) {
        None => format!("{} does not exist or holds no tests", r.file),
        Some(_) => format!("{} has no {kind} `{}`", r.file, r.name),
    };
    if let Some(f) = elsewhere.first() {
        let _ = write!(
            why,
            "; a test of that name is in {f}: write `{f}::{}`",
            r.name
        );
    } else {
        let candidates: Vec<&String> = match index.get(&r.file) {
            Some(names) => names.iter().collect(),
            None => index.values().flatten().collect(),
        };
        if let Some(c) = closest(&r.name, candidates.into_iter()) {
            let file = index
                .iter()
                .find(|(f, n)| n.contains(c) && (index.contains_key(&r.file) == (**f == r.file)))
                .map(|(f, _)| f.as_str())
                .unwrap_or(&r.file);
            let _ = write!(
                why,
                "; was it renamed to `{file}::{c}`? If so, write that (after reading that it \
                 still shows this mitigation working)"
            );
        } else if let Some(names) = index.get(&r.file) {
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            let _ = write!(why, "; its tests are: {}", list.join(", "));
        }
        let _ = write!(
            why,
            ". If the test is gone, name the test that now shows this mitigation working, or \
             set the mitigation's status to \"untested\" and review the hazard's residual rating"
        );
    }
    Some(why)
}

/// Everything wrong with the log, each problem naming the hazard and what to fix.
pub fn check(log: &Log, index: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    if log.hazards.is_empty() {
        problems.push(format!("{SOURCE} has no [[hazard]] entries"));
    }
    for (n, h) in log.hazards.iter().enumerate() {
        let who = if h.id.is_empty() {
            format!("hazard #{}", n + 1)
        } else {
            h.id.clone()
        };
        let mut say = |what: String| problems.push(format!("{who}: {what}"));
        let well_formed = h.id.len() >= 4
            && h.id.starts_with("H-")
            && h.id[2..].chars().all(|c| c.is_ascii_digit());
        if !well_formed {
            say(format!(
                "id {:?} should be H- and two or more digits, e.g. H-07",
                h.id
            ));
        }
        if !seen.insert(h.id.clone()) {
            say("this id is used by another hazard too: ids must be unique".into());
        }
        for (field, value) in [("title", &h.title), ("effect", &h.effect)] {
            if value.trim().is_empty() {
                say(format!("`{field}` is empty"));
            }
        }
        if h.causes.is_empty() || h.causes.iter().any(|c| c.trim().is_empty()) {
            say("`causes` must list at least one cause, none empty".into());
        }
        let mut ratings = vec![("before", Some(&h.before)), ("after", Some(&h.after))];
        ratings.push(("target", h.target.as_ref()));
        for (which, r) in ratings {
            let Some(r) = r else { continue };
            match matrix_rating(&r.severity, &r.likelihood) {
                Err(e) => say(format!("[{which}] {e}")),
                Ok(m) if m != r.rating => say(format!(
                    "[{which}] rating {} does not come from the matrix: {} × {} is {m}",
                    r.rating, r.severity, r.likelihood
                )),
                Ok(_) => {}
            }
        }
        if h.after.rating > h.before.rating {
            say("the residual rating (after) is higher than the initial one (before)".into());
        }
        if h.after.why.trim().is_empty() {
            say("[after] `why` must say what the residual rating rests on".into());
        }
        let open = h
            .mitigations
            .iter()
            .any(|m| m.status == "planned" || m.status == "proposed");
        match &h.target {
            Some(t) if !open => say(format!(
                "has a [target] rating ({}) but no planned or proposed mitigation to reach it",
                t.rating
            )),
            Some(t) if t.rating > h.after.rating => {
                say("the [target] rating is higher than the residual (after) one".into())
            }
            _ => {}
        }
        if h.mitigations.is_empty() {
            say("has no [[hazard.mitigation]]".into());
        }
        if !h.mitigations.iter().any(|m| m.status == "built") {
            say(
                "has no built mitigation backed by a test (status = \"built\" with `tests`): \
                 every hazard needs at least one"
                    .into(),
            );
        }
        for (i, m) in h.mitigations.iter().enumerate() {
            let short: String = m.what.chars().take(60).collect();
            let at = format!("mitigation {} ({short:?}…)", i + 1);
            if m.what.trim().is_empty() {
                say(format!("{at}: `what` is empty"));
            }
            if !STATUSES.iter().any(|(s, _)| *s == m.status) {
                let all: Vec<&str> = STATUSES.iter().map(|(s, _)| *s).collect();
                say(format!(
                    "{at}: status {:?} is not one of {}",
                    m.status,
                    all.join(", ")
                ));
            }
            match (m.status.as_str(), m.tests.is_empty()) {
                ("built", true) => say(format!(
                    "{at}: status \"built\" needs `tests` naming the tests that show it \
                     working; without one it is \"untested\""
                )),
                ("built", false) => {}
                (_, false) => say(format!(
                    "{at}: only a \"built\" mitigation names tests (this one is {:?})",
                    m.status
                )),
                _ => {}
            }
            match (m.status.as_str(), m.issue) {
                ("planned", None) => say(format!(
                    "{at}: a planned mitigation names the issue that builds it (`issue = N`)"
                )),
                ("planned", Some(_)) | (_, None) => {}
                (_, Some(n)) => say(format!(
                    "{at}: only a planned mitigation names an issue (#{n}); this one is {:?}",
                    m.status
                )),
            }
            let mut named = BTreeSet::new();
            for t in &m.tests {
                if !named.insert(t) {
                    say(format!("{at}: `{t}` is named twice"));
                }
                match TestRef::parse(t) {
                    Err(e) => say(format!("{at}: {e}")),
                    Ok(r) => {
                        if let Some(why) = missing_test(&r, index) {
                            say(format!("{at} names `{r}`, but {why}"));
                        }
                    }
                }
            }
        }
    }
    problems
}

fn status_label(m: &Mitigation) -> String {
    match (m.status.as_str(), m.issue) {
        ("planned", Some(n)) => format!("planned, issue #{n}"),
        ("built", _) => "built".into(),
        ("untested", _) => "built, no test yet".into(),
        ("proposed", _) => "proposed, not yet filed".into(),
        ("trust", _) => "the trust's control".into(),
        (s, _) => s.into(),
    }
}

fn rating_cell(r: &Rating) -> String {
    format!("**{}** ({} × {})", r.rating, r.severity, r.likelihood)
}

/// The markdown page, a pure function of the log (the test compares it with the committed one).
pub fn render(log: &Log) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# {}\n", log.title);
    let _ = writeln!(
        w,
        "<!-- Generated from {SOURCE} by `{RENDER_COMMAND}`. Do not edit by hand: edit the \
         TOML and render again; `cargo test --test hazard_log` fails when the two differ. -->\n"
    );
    let _ = writeln!(w, "Version {}.\n", log.version);
    let _ = writeln!(w, "{}\n", log.intro.trim());

    let _ = writeln!(w, "## Risk matrix (DCB0129 / DCB0160)\n");
    let _ = writeln!(
        w,
        "A hazard's risk rating is read from its severity (the worst credible harm to a \
         patient) and its likelihood (of that harm, given the causes), before any mitigation \
         and again after the mitigations that are built and tested.\n"
    );
    let _ = writeln!(
        w,
        "| likelihood ↓ / severity → | {} |",
        SEVERITIES.join(" | ")
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for l in (0..5).rev() {
        let cells: Vec<String> = MATRIX[l].iter().map(|r| r.to_string()).collect();
        let _ = writeln!(w, "| **{}** | {} |", LIKELIHOODS[l], cells.join(" | "));
    }
    let _ = writeln!(w, "\n| severity | meaning |\n|---|---|");
    for (s, m) in SEVERITIES.iter().zip(SEVERITY_MEANING) {
        let _ = writeln!(w, "| {s} | {m} |");
    }
    let _ = writeln!(w, "\n| likelihood | meaning |\n|---|---|");
    for (l, m) in LIKELIHOODS.iter().zip(LIKELIHOOD_MEANING) {
        let _ = writeln!(w, "| {l} | {m} |");
    }
    let _ = writeln!(w, "\n| rating | acceptability |\n|---|---|");
    for (r, m) in RATING_MEANING.iter().enumerate() {
        let _ = writeln!(w, "| {} | {m} |", r + 1);
    }
    let _ = writeln!(w, "\n| mitigation status | meaning |\n|---|---|");
    for (s, m) in STATUSES {
        let _ = writeln!(w, "| {s} | {m} |");
    }

    let _ = writeln!(w, "\n## Summary\n");
    let _ = writeln!(
        w,
        "| id | hazard | before | after (residual) | once planned work lands | open work |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|");
    for h in &log.hazards {
        let open: Vec<String> = h
            .mitigations
            .iter()
            .filter_map(|m| match (m.status.as_str(), m.issue) {
                ("planned", Some(n)) => Some(format!("#{n}")),
                ("proposed", _) => Some("proposed".into()),
                ("untested", _) => Some("untested".into()),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let target = h
            .target
            .as_ref()
            .map_or_else(|| "—".to_string(), |t| t.rating.to_string());
        let _ = writeln!(
            w,
            "| [{id}](#{anchor}) | {title} | {b} | **{a}** | {target} | {open} |",
            id = h.id,
            anchor = anchor(h),
            title = h.title,
            b = h.before.rating,
            a = h.after.rating,
            open = if open.is_empty() {
                "—".to_string()
            } else {
                open.join(", ")
            }
        );
    }

    for h in &log.hazards {
        let _ = writeln!(w, "\n## {} {}\n", h.id, h.title);
        let _ = writeln!(w, "**Causes**\n");
        for c in &h.causes {
            let _ = writeln!(w, "- {}", c.trim());
        }
        let _ = writeln!(w, "\n**Effect on the patient.** {}\n", h.effect.trim());
        let _ = writeln!(w, "| | risk | why |\n|---|---|---|");
        let _ = writeln!(
            w,
            "| before | {} | {} |",
            rating_cell(&h.before),
            h.before.why.trim()
        );
        let _ = writeln!(
            w,
            "| after (residual) | {} | {} |",
            rating_cell(&h.after),
            h.after.why.trim()
        );
        if let Some(t) = &h.target {
            let _ = writeln!(
                w,
                "| once planned work lands | {} | {} |",
                rating_cell(t),
                t.why.trim()
            );
        }
        let _ = writeln!(w, "\n**Mitigations**\n");
        for (i, m) in h.mitigations.iter().enumerate() {
            let _ = writeln!(w, "{}. *({})* {}", i + 1, status_label(m), m.what.trim());
            for t in &m.tests {
                let _ = writeln!(w, "   - test: `{t}`");
            }
        }
    }
    o
}

/// The GitHub-style anchor of a hazard's heading.
fn anchor(h: &Hazard) -> String {
    format!("{} {}", h.id, h.title)
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

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
