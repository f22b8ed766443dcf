//! The hazard log's command (docs/safety/README.md):
//!
//! ```sh
//! cargo run --bin hazard-log -- --results target/ci-test-output.txt   # the log with each test's last CI result
//! cargo run --bin hazard-log -- check                                  # what `cargo test --test hazard_log` checks
//! cargo run --bin hazard-log -- render --write                         # hazards.toml → hazard-log.md
//! ```
mod log;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hazard-log",
    about = "Bleepless's clinical hazard log: check it, render it, show it with test results"
)]
struct Cli {
    /// The repository root (default: where this was built from).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Test runners' output to read results from (what `.ci/run` keeps).
    #[arg(long, global = true, default_value = "target/ci-test-output.txt")]
    results: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print each hazard with pass/fail/not-run for each named test (the default).
    Results,
    /// Check the log's structure and that every named test exists; exit 1 if not.
    Check,
    /// Print the markdown page, or with --write replace docs/safety/hazard-log.md.
    Render {
        #[arg(long)]
        write: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let log = match log::load(&root) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Results) {
        Command::Check => {
            let problems = log::check(&log, &log::index_tests(&root));
            if problems.is_empty() {
                println!(
                    "{}: {} hazards, every named test exists",
                    log::SOURCE,
                    log.hazards.len()
                );
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                ExitCode::FAILURE
            }
        }
        Command::Render { write } => {
            let page = log::render(&log);
            if write {
                let path = root.join(log::RENDERED);
                if let Err(e) = std::fs::write(&path, page) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
                println!("wrote {}", log::RENDERED);
            } else {
                print!("{page}");
            }
            ExitCode::SUCCESS
        }
        Command::Results => results(&root, &log, &cli.results),
    }
}

fn results(root: &std::path::Path, log: &log::Log, file: &std::path::Path) -> ExitCode {
    let path = if file.is_absolute() {
        file.to_path_buf()
    } else {
        root.join(file)
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "{}: {e}\nRun `bash .ci/run` first (it keeps every test runner's output there), \
                 or `cargo test 2>&1 | tee {}`.",
                path.display(),
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    let runs = log::parse_results(&text);
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    println!("{} — version {}", log.title, log.version);
    println!(
        "Test results from {} (runs: {})\n",
        file.display(),
        if labels.is_empty() {
            "none found".to_string()
        } else {
            labels.join("; ")
        }
    );
    let (mut pass, mut fail, mut not_run) = (0, 0, 0);
    let mut failed = Vec::new();
    for h in &log.hazards {
        let target = h
            .target
            .as_ref()
            .map(|t| format!(", {} once planned work lands", t.rating))
            .unwrap_or_default();
        println!(
            "{} {} — risk {} before, {} after{target}",
            h.id, h.title, h.before.rating, h.after.rating
        );
        for m in &h.mitigations {
            let what: String = m.what.split_whitespace().collect::<Vec<_>>().join(" ");
            let what = if what.chars().count() > 110 {
                format!("{}…", what.chars().take(110).collect::<String>())
            } else {
                what
            };
            let status = match (m.status.as_str(), m.issue) {
                ("planned", Some(n)) => format!("planned #{n}"),
                (s, _) => s.to_string(),
            };
            println!("  [{status}] {what}");
            for t in &m.tests {
                let (verdict, line) = test_line(t, &runs);
                match verdict {
                    "pass" => pass += 1,
                    "fail" => {
                        fail += 1;
                        failed.push(format!("{}: {t}", h.id));
                    }
                    _ => not_run += 1,
                }
                println!("{line}");
            }
        }
        println!();
    }
    println!(
        "{} named tests: {pass} passed, {fail} failed, {not_run} not run.",
        pass + fail + not_run
    );
    if !failed.is_empty() {
        println!("Failed:");
        for f in &failed {
            println!("  {f}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One named test's verdict across the runs, and its line of the report.
fn test_line(t: &str, runs: &[log::Run]) -> (&'static str, String) {
    let Ok(r) = log::TestRef::parse(t) else {
        return ("unknown", format!("      ????     {t}"));
    };
    let got = log::outcomes(&r, runs);
    let verdict = log::verdict(&got);
    let detail: Vec<String> = got
        .iter()
        .map(|(run, o)| {
            let o = match o {
                log::Outcome::Pass => "ok",
                log::Outcome::Fail => "FAILED",
                log::Outcome::Ignored => "ignored",
            };
            format!("{run}: {o}")
        })
        .collect();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!("  ({})", detail.join("; "))
    };
    (verdict, format!("      {verdict:<8} {t}{detail}"))
}
