//! The clinical hazard log (docs/safety/hazards.toml) is checked like code: every hazard is
//! complete, every rating comes from the DCB0129 matrix, every test it names exists, and the
//! rendered page (docs/safety/hazard-log.md) is the one the TOML gives.
//!
//! Run with `cargo test --test hazard_log`. When a test named in the log is renamed or removed,
//! the first test here fails and says which hazard names it and what to write instead.
#[allow(dead_code)]
#[path = "../src/bin/hazard-log/log.rs"]
mod log;

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_hazard_is_complete_and_every_test_it_names_exists() {
    let log = log::load(&root()).unwrap_or_else(|e| panic!("{e}"));
    let problems = log::check(&log, &log::index_tests(&root()));
    assert!(
        problems.is_empty(),
        "{} has {} problem(s):\n\n  {}\n\nFix them in {}, then run `{}` to render {} again.",
        log::SOURCE,
        problems.len(),
        problems.join("\n  "),
        log::SOURCE,
        log::RENDER_COMMAND,
        log::RENDERED,
    );
}

#[test]
fn the_rendered_hazard_log_is_the_one_the_toml_gives() {
    let log = log::load(&root()).unwrap_or_else(|e| panic!("{e}"));
    let want = log::render(&log);
    let have = std::fs::read_to_string(root().join(log::RENDERED)).unwrap_or_default();
    if have != want {
        let line = want
            .lines()
            .zip(have.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(have.lines().count()));
        panic!(
            "{} is not what {} renders to (first difference at line {}: expected {:?}, found \
             {:?}). Edit {} rather than the page, then run `{}`.",
            log::RENDERED,
            log::SOURCE,
            line + 1,
            want.lines().nth(line).unwrap_or("<end>"),
            have.lines().nth(line).unwrap_or("<end>"),
            log::SOURCE,
            log::RENDER_COMMAND,
        );
    }
}

/// A log with one hazard naming `test`, and ratings `before`/`after` as (severity, likelihood, rating).
fn one_hazard(test: &str, before: (&str, &str, u8), after: (&str, &str, u8)) -> String {
    format!(
        r#"
title = "t"
version = "1"
intro = "i"
[[hazard]]
id = "H-09"
title = "A task never reaches anyone"
causes = ["no holder"]
effect = "delay"
before = {{ severity = "{}", likelihood = "{}", rating = {} }}
after = {{ severity = "{}", likelihood = "{}", rating = {}, why = "escalation" }}
[[hazard.mitigation]]
status = "built"
what = "escalation"
tests = ["{test}"]
"#,
        before.0, before.1, before.2, after.0, after.1, after.2
    )
}

#[test]
fn a_renamed_or_moved_test_is_named_with_its_hazard_and_what_to_write() {
    let index = log::index_tests(&root());
    let check = |test: &str| {
        let log = log::parse(&one_hazard(test, ("Major", "High", 4), ("Major", "Low", 3))).unwrap();
        log::check(&log, &index)
    };
    // As it is: no problem.
    let here =
        "tests/hazard_log.rs::a_renamed_or_moved_test_is_named_with_its_hazard_and_what_to_write";
    assert_eq!(check(here), Vec::<String>::new());

    // Renamed: the hazard, the reference, and the likely new name.
    let renamed = "tests/hazard_log.rs::a_renamed_test_is_named_with_its_hazard_and_what_to_write";
    let problems = check(renamed);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert!(p.starts_with("H-09: mitigation 1"), "{p}");
    assert!(p.contains(renamed), "{p}");
    assert!(p.contains(&format!("was it renamed to `{here}`")), "{p}");

    // Moved to another file: where it is now.
    let moved =
        "tests/api/races.rs::a_renamed_or_moved_test_is_named_with_its_hazard_and_what_to_write";
    let problems = check(moved);
    assert!(
        problems[0].contains(&format!(
            "a test of that name is in tests/hazard_log.rs: write `{here}`"
        )),
        "{problems:?}"
    );

    // A file that is gone, a function that is not a test, a malformed reference.
    for (test, says) in [
        ("tests/api/gone.rs::x", "tests/api/gone.rs does not exist"),
        (
            "tests/hazard_log.rs::one_hazard",
            "has no test function `one_hazard`",
        ),
        ("tests/hazard_log.rs", "is not a test reference"),
        (
            "tests/browser/pages.test.js::a stat task raised",
            "has no browser test titled",
        ),
    ] {
        let problems = check(test);
        assert!(
            problems.len() == 1 && problems[0].contains(says),
            "{test}: {problems:?}"
        );
    }
}

#[test]
fn ratings_must_come_from_the_matrix_and_ids_be_unique() {
    let index = log::index_tests(&root());
    let here = "tests/hazard_log.rs::ratings_must_come_from_the_matrix_and_ids_be_unique";
    let problems = |text: String| log::check(&log::parse(&text).unwrap(), &index);
    // Major × Low is 3 in the DCB0129 matrix, not 2; "Likely" is not a likelihood.
    let wrong = problems(one_hazard(here, ("Major", "High", 4), ("Major", "Low", 2)));
    assert_eq!(
        wrong,
        ["H-09: [after] rating 2 does not come from the matrix: Major × Low is 3"]
    );
    let unknown = problems(one_hazard(
        here,
        ("Major", "Likely", 4),
        ("Major", "Low", 3),
    ));
    assert!(
        unknown[0].contains("likelihood \"Likely\" is not one of"),
        "{unknown:?}"
    );
    let worse = problems(one_hazard(here, ("Major", "Low", 3), ("Major", "High", 4)));
    assert!(worse[0].contains("higher than the initial"), "{worse:?}");

    let twice = one_hazard(here, ("Major", "High", 4), ("Major", "Low", 3));
    let second = twice.split("[[hazard]]").nth(1).unwrap().to_string();
    let twice = format!("{twice}[[hazard]]{second}");
    assert!(problems(twice)
        .iter()
        .any(|p| p == "H-09: this id is used by another hazard too: ids must be unique"));

    // The matrix itself: its corners and its diagonal, as published.
    assert_eq!(log::matrix_rating("Minor", "Very low"), Ok(1));
    assert_eq!(log::matrix_rating("Catastrophic", "Very high"), Ok(5));
    assert_eq!(log::matrix_rating("Catastrophic", "Very low"), Ok(3));
    assert_eq!(log::matrix_rating("Minor", "Very high"), Ok(3));
    assert_eq!(log::matrix_rating("Considerable", "Medium"), Ok(3));
}

#[test]
fn a_mitigation_names_tests_only_when_built_and_an_issue_only_when_planned() {
    let index = log::index_tests(&root());
    let here =
        "tests/hazard_log.rs::a_mitigation_names_tests_only_when_built_and_an_issue_only_when_planned";
    let base = one_hazard(here, ("Major", "High", 4), ("Major", "Low", 3));
    let with = |extra: &str| {
        let log = log::parse(&format!("{base}{extra}")).unwrap();
        log::check(&log, &index)
    };
    assert_eq!(
        with("[[hazard.mitigation]]\nstatus = \"planned\"\nissue = 16\nwhat = \"fallback\"\n"),
        Vec::<String>::new()
    );
    let no_issue = with("[[hazard.mitigation]]\nstatus = \"planned\"\nwhat = \"fallback\"\n");
    assert!(
        no_issue[0].contains("names the issue that builds it"),
        "{no_issue:?}"
    );
    let planned_test = with(&format!(
        "[[hazard.mitigation]]\nstatus = \"planned\"\nissue = 16\nwhat = \"x\"\ntests = [\"{here}\"]\n"
    ));
    assert!(
        planned_test[0].contains("only a \"built\" mitigation names tests"),
        "{planned_test:?}"
    );
    let untested = with("[[hazard.mitigation]]\nstatus = \"built\"\nwhat = \"x\"\n");
    assert!(
        untested[0].contains("without one it is \"untested\""),
        "{untested:?}"
    );
}

#[test]
fn the_index_finds_rust_test_functions_and_browser_test_titles() {
    let rust = r#"
#[test]
fn plain() {}
#[tokio::test(flavor = "multi_thread")]
async fn on_tokio() {}
#[actix_web::test]
#[ignore = "slow"]
/// A doc comment.
pub async fn on_actix() {}
#[tokio::test(
    flavor = "multi_thread",
    worker_threads = 4
)]
async fn attribute_over_lines() {}
fn helper() {}
#[cfg(test)]
mod tests {
    #[test]
    fn nested() {}
}
"#;
    assert_eq!(
        log::rust_tests(rust),
        [
            "plain",
            "on_tokio",
            "on_actix",
            "attribute_over_lines",
            "nested"
        ]
    );
    let index = log::index_tests(&root());
    let here = &index["tests/hazard_log.rs"];
    assert!(here.contains("the_index_finds_rust_test_functions_and_browser_test_titles"));
    assert!(
        !here.contains("plain"),
        "test code quoted in a raw string is not a test: {here:?}"
    );
    let js = "test('one, with a comma', async () => {});\n  it(\"two\", () => {});\ntest(`it\\'s three`, f);\nconst test2 = 1;\n";
    assert_eq!(
        log::js_tests(js),
        ["one, with a comma", "two", "it's three"]
    );
}

#[test]
fn ci_output_is_read_per_run_and_matched_to_each_named_test() {
    let output = "\
### run: tests on SQLite
     Running unittests src/lib.rs (target/debug/deps/bleepless-0a1b)
test domain::nhs_number::tests::rejects_wrong_check_digit_length_and_letters ... ok
     Running tests/api/main.rs (target/debug/deps/api-9f8e)
test races::second_acknowledgement_is_told_who_won ... ok
test faults::killing_the_service_mid_tick_and_mid_dispatch_loses_nothing ... FAILED
     Running tests/pg_restart.rs (target/debug/deps/pg_restart-77)
test the_service_rides_out_a_postgresql_restart ... ignored, restarts the PostgreSQL server
### run: tests on PostgreSQL
     Running tests/api/main.rs (target/debug/deps/api-9f8e)
test races::second_acknowledgement_is_told_who_won ... ok
### run: PostgreSQL restarted under load
     Running tests/pg_restart.rs (target/debug/deps/pg_restart-77)
test the_service_rides_out_a_postgresql_restart ... ok
### run: browser tests
TAP version 13
# Subtest: the admin page and sign-in page render for their users
ok 3 - the admin page and sign-in page render for their users
not ok 1 - a stat task \\# 1
";
    let runs = log::parse_results(output);
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "tests on SQLite",
            "tests on PostgreSQL",
            "PostgreSQL restarted under load",
            "browser tests"
        ]
    );
    let verdict = |r: &str| {
        let r = log::TestRef::parse(r).unwrap();
        log::verdict(&log::outcomes(&r, &runs))
    };
    assert_eq!(
        verdict("src/domain/nhs_number.rs::rejects_wrong_check_digit_length_and_letters"),
        "pass"
    );
    assert_eq!(
        verdict("tests/api/races.rs::second_acknowledgement_is_told_who_won"),
        "pass"
    );
    assert_eq!(
        verdict("tests/api/faults.rs::killing_the_service_mid_tick_and_mid_dispatch_loses_nothing"),
        "fail"
    );
    // Ignored in the main runs, passed in its own.
    assert_eq!(
        verdict("tests/pg_restart.rs::the_service_rides_out_a_postgresql_restart"),
        "pass"
    );
    // Same name, other binary: not this test.
    assert_eq!(
        verdict("tests/delivery.rs::second_acknowledgement_is_told_who_won"),
        "not-run"
    );
    assert_eq!(
        verdict(
            "tests/browser/pages.test.js::the admin page and sign-in page render for their users"
        ),
        "pass"
    );
    assert_eq!(
        verdict("tests/browser/pages.test.js::a stat task # 1"),
        "fail"
    );
    assert_eq!(verdict("tests/api/lifecycle.rs::never_ran"), "not-run");

    // The spec reporter, as node prints to a terminal.
    let spec = log::parse_results("✔ first title (12.5ms)\n✖ second title (3ms)\n");
    let r = log::TestRef::parse("tests/browser/pages.test.js::second title").unwrap();
    assert_eq!(log::verdict(&log::outcomes(&r, &spec)), "fail");
}
