//! The hazard log (docs/safety/hazards.toml): its model, the DCB0129/DCB0160 risk matrix, the
//! checks that keep it honest, its rendering to docs/safety/hazard-log.md, and the reading of
//! test runners' output for the last CI result of each named test.
//!
//! Shared by the `hazard-log` command and by `tests/hazard_log.rs`, which includes this file
//! with `#[path]`: it uses only `serde`, `toml` and the standard library.
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

// The reading of test runners' output, in a file of its own.
#[path = "results.rs"]
mod results;
pub use results::*;
// Which tests exist in the tree, and whether a named one does.
#[path = "test_index.rs"]
mod test_index;
pub use test_index::*;

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
            check_mitigation(i, m, index, &mut say);
        }
    }
    problems
}

/// What is wrong with one mitigation, said through `say`.
fn check_mitigation(
    i: usize,
    m: &Mitigation,
    index: &BTreeMap<String, BTreeSet<String>>,
    say: &mut impl FnMut(String),
) {
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

    render_matrix(w);
    render_summary(w, log);
    for h in &log.hazards {
        render_hazard(w, h);
    }
    o
}

/// The risk matrix and what its words mean.
fn render_matrix(w: &mut String) {
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
}

/// One line per hazard: its ratings and the work still open.
fn render_summary(w: &mut String, log: &Log) {
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
}

/// A hazard's section: causes, effect, ratings, mitigations and their tests.
fn render_hazard(w: &mut String, h: &Hazard) {
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
