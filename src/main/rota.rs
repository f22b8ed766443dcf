//! `bleepless rota …`: planning the rota from the command line.
use super::{fail, find_role, open};
use bleepless::app::App;
use bleepless::clock::SystemClock;
use bleepless::config::Config;
use bleepless::store::directory;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum RotaCmd {
    /// Import shifts from a CSV file (role, staff email, start, end[, replaces email]): all
    /// or none; every problem is printed by line and field.
    Import {
        file: PathBuf,
        /// Check and report only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add a recurring pattern, e.g. every night 20:00 to 08:00 for a month.
    Pattern {
        /// Role id or exact name.
        role: String,
        /// Staff id, email or exact name.
        #[arg(long)]
        staff: String,
        /// daily, weekdays, weekends, or days such as Mon,Wed,Fri.
        #[arg(long, default_value = "daily")]
        days: String,
        #[arg(long, value_name = "HH:MM")]
        starts: String,
        #[arg(long, value_name = "HH:MM")]
        ends: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
    },
    /// Add one shift, or an override (with --replaces: cover, a swap; with --replaces and
    /// no --staff: someone taken off, as for sickness).
    Shift {
        /// Role id or exact name.
        role: String,
        /// Who holds it: staff id, email or exact name.
        #[arg(long)]
        staff: Option<String>,
        /// Whom it replaces for its span.
        #[arg(long)]
        replaces: Option<String>,
        /// Local time, e.g. "2026-12-24 20:00" (or with an offset).
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
    },
    /// Remove a shift by its id.
    Remove { id: String },
    /// The periods ahead when a bleep has nobody on its rota.
    Gaps {
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
}

/// `bleepless rota …`
pub fn rota(cmd: RotaCmd, config: &Config) -> Result<(), String> {
    use bleepless::app::rota::NewSlot;
    use bleepless::app::rota_plan::{self, NewPattern};
    let app = App::new(open(config)?, Arc::new(SystemClock), config.policy.clone());
    match cmd {
        RotaCmd::Import { file, dry_run } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: cannot be read: {e}", file.display()))?;
            let r = app
                .run_now(|c, ctx| rota_plan::import(c, ctx, &text, dry_run))
                .map_err(fail)?;
            for p in &r.problems {
                println!("line {}, {}: {}", p.line, p.field, p.message);
            }
            for g in &r.gaps {
                println!("gap: {}", g.text);
            }
            match (r.problems.len(), r.imported) {
                (0, true) => println!("imported {} shifts", r.shifts),
                (0, false) => println!("{} lines are right; nothing changed (dry run)", r.lines),
                (n, _) => return Err(format!("nothing imported: {n} problems")),
            }
        }
        RotaCmd::Pattern {
            role,
            staff,
            days,
            starts,
            ends,
            from,
            to,
        } => {
            let p = app
                .run_now(|c, ctx| {
                    let (r, s) = (find_role(c, &role)?, directory::find_staff(c, &staff)?);
                    let new = NewPattern {
                        role: &r,
                        staff: &s,
                        weekdays: &days,
                        starts: &starts,
                        ends: &ends,
                        first_day: &from,
                        last_day: &to,
                    };
                    rota_plan::add_pattern(c, ctx, new)
                })
                .map_err(fail)?;
            println!(
                "pattern {} added: {} {}–{} from {} to {}",
                p.id, p.weekdays, p.starts, p.ends, p.first_day, p.last_day
            );
        }
        RotaCmd::Shift {
            role,
            staff,
            replaces,
            start,
            end,
        } => {
            let zone = config.policy.zone;
            let starts = zone
                .parse_time(&start)
                .map_err(|e| format!("--start: {e}"))?;
            let ends = zone.parse_time(&end).map_err(|e| format!("--end: {e}"))?;
            let s = app
                .run_now(|c, ctx| {
                    let r = find_role(c, &role)?;
                    let staff = staff
                        .as_deref()
                        .map(|k| directory::find_staff(c, k))
                        .transpose()?;
                    let replaces = replaces
                        .as_deref()
                        .map(|k| directory::find_staff(c, k))
                        .transpose()?;
                    let slot = NewSlot {
                        role: &r,
                        staff: staff.as_ref(),
                        replaces: replaces.as_ref(),
                        starts,
                        ends,
                        note: None,
                    };
                    bleepless::app::rota::add_slot(c, ctx, slot)
                })
                .map_err(fail)?;
            println!("shift {} added", s.id);
        }
        RotaCmd::Remove { id } => {
            let s = app
                .run_now(|c, ctx| bleepless::app::rota::remove_slot(c, ctx, &id))
                .map_err(fail)?;
            println!("shift {} removed", s.id);
        }
        RotaCmd::Gaps { hours } => {
            let ctx = app.ctx();
            let gaps = app
                .store
                .write_now(|c| rota_plan::coming_gaps(c, &ctx, hours.clamp(1, 168)))
                .map_err(fail)?;
            if gaps.is_empty() {
                println!("every bleep is covered for the next {hours} hours");
            }
            for g in gaps {
                println!("{}", g.text);
            }
        }
    }
    Ok(())
}
