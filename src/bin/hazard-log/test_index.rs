//! The tests that exist in the tree (Rust `#[test]`s and browser test titles), and
//! whether a test the log names is among them, with the nearest name when it is not.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
