//! Planning the rota: importing it from CSV (role, staff email, start, end; optionally
//! whom a line replaces, for cover), all of it or none of it, with a dry run that reports
//! every problem by line and field; recurring patterns; and the gaps coming up.
use super::rota::refresh_if_current;
use super::Ctx;
use crate::domain::rota::{check_span, gaps, overlap, Slot, Span};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Role, Staff};
use crate::store::rota::{self as store, NewShift};
use crate::store::DbConnection;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// The most lines one import may hold (a month of 500 roles' day and night shifts).
pub const MAX_LINES: usize = 50_000;

/// One thing wrong with one line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The line of the file (1 is the first, the header if there is one).
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// A period nobody holds a role, by the rota as it would be.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Gap {
    pub role_id: String,
    pub role: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// As a coordinator reads it, in the hospital's time: "Sat 02:00–08:00".
    pub text: String,
}

/// What an import did, or would do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub dry_run: bool,
    /// Whether the shifts were added (never when there is a problem, never in a dry run).
    pub imported: bool,
    /// Lines of shifts read (the header not counted).
    pub lines: usize,
    /// Shifts added, or that would be.
    pub shifts: usize,
    /// Every problem; any one stops the import.
    pub problems: Vec<Problem>,
    /// Email addresses that name nobody on the staff list.
    pub unknown_people: Vec<String>,
    /// Periods within the imported span that nobody would hold each role.
    pub gaps: Vec<Gap>,
}

struct Line {
    no: usize,
    role: Role,
    staff: Staff,
    replaces: Option<Staff>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
}

fn problem(line: usize, field: &str, message: impl Into<String>) -> Problem {
    Problem {
        line,
        field: field.into(),
        message: message.into(),
    }
}

/// Reads and checks every line; what is wrong goes into `report`.
fn read_lines(
    conn: &mut DbConnection,
    ctx: &Ctx,
    csv_text: &str,
    report: &mut Report,
) -> AppResult<Vec<Line>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(csv_text.as_bytes());
    let roles: HashMap<String, Role> = directory::list_roles(conn)?
        .into_iter()
        .map(|r| (r.name.to_lowercase(), r))
        .collect();
    let mut people: HashMap<String, Option<Staff>> = HashMap::new();
    let mut lines = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let no = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 1, |p| p.line() as usize);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report
                    .problems
                    .push(problem(no, "line", format!("not readable as CSV: {e}")));
                continue;
            }
        };
        let field = |k: usize| record.get(k).unwrap_or("").to_string();
        if report.lines == 0 && lines.is_empty() && field(0).eq_ignore_ascii_case("role") {
            continue;
        }
        report.lines += 1;
        if report.lines > MAX_LINES {
            return Err(AppError::PayloadTooLarge(format!(
                "a rota import holds at most {MAX_LINES} lines; split it by month"
            )));
        }
        if !(4..=5).contains(&record.len()) {
            report.problems.push(problem(
                no,
                "line",
                format!(
                    "has {} fields; a line is: role, staff email, start, end[, replaces email]",
                    record.len()
                ),
            ));
            continue;
        }
        let before = report.problems.len();
        let role = roles.get(&field(0).to_lowercase()).cloned();
        if role.is_none() {
            report.problems.push(problem(
                no,
                "role",
                format!("{:?} is not an on-call role", field(0)),
            ));
        }
        let mut person =
            |field_name: &str, email: String, report: &mut Report| -> AppResult<Option<Staff>> {
                let key = email.to_lowercase();
                if !people.contains_key(&key) {
                    let found = directory::find_staff(conn, &email).ok();
                    people.insert(key.clone(), found);
                }
                let found = people[&key].clone();
                if found.is_none() {
                    report.problems.push(problem(
                        no,
                        field_name,
                        format!("{email:?} is nobody on the staff list"),
                    ));
                    if !report.unknown_people.contains(&email) {
                        report.unknown_people.push(email);
                    }
                }
                Ok(found)
            };
        let staff = person("staff", field(1), report)?;
        let replaces = match record.get(4).filter(|r| !r.is_empty()) {
            Some(r) => person("replaces", r.to_string(), report)?,
            None => None,
        };
        let starts = ctx
            .policy
            .zone
            .parse_time(&field(2))
            .map_err(|e| report.problems.push(problem(no, "start", e)))
            .ok();
        let ends = ctx
            .policy
            .zone
            .parse_time(&field(3))
            .map_err(|e| report.problems.push(problem(no, "end", e)))
            .ok();
        if let (Some(s), Some(e)) = (starts, ends) {
            if let Err(why) = check_span(s, e) {
                report.problems.push(problem(no, "end", why));
            }
        }
        if let (Some(role), Some(staff)) = (&role, &staff) {
            if let Err(e) = super::rota::may_hold(conn, role, staff) {
                report.problems.push(problem(no, "staff", e.to_string()));
            }
        }
        if report.problems.len() == before {
            if let (Some(role), Some(staff), Some(starts), Some(ends)) = (role, staff, starts, ends)
            {
                lines.push(Line {
                    no,
                    role,
                    staff,
                    replaces,
                    starts,
                    ends,
                });
            }
        }
    }
    Ok(lines)
}

/// Same person, overlapping times: with a shift already on the rota or another line.
fn clashes(conn: &mut DbConnection, lines: &[Line], report: &mut Report) -> AppResult<()> {
    let (Some(from), Some(to)) = (
        lines.iter().map(|l| l.starts).min(),
        lines.iter().map(|l| l.ends).max(),
    ) else {
        return Ok(());
    };
    // Each person's spans: the line that put it there (0: already on the rota).
    let mut taken: HashMap<String, Vec<(usize, Span)>> = HashMap::new();
    for s in store::shifts(conn, None, from, to)? {
        if let (Some(staff), None) = (s.staff_id, s.replaces) {
            taken
                .entry(staff)
                .or_default()
                .push((0, (s.starts_at, s.ends_at)));
        }
    }
    for l in lines.iter().filter(|l| l.replaces.is_none()) {
        let theirs = taken.entry(l.staff.id.clone()).or_default();
        if let Some((other, (s, e))) = theirs
            .iter()
            .find(|(_, span)| overlap((l.starts, l.ends), *span))
        {
            let with = if *other == 0 {
                format!("a shift already on the rota ({s} to {e})")
            } else {
                format!("line {other} ({s} to {e})")
            };
            report.problems.push(problem(
                l.no,
                "start",
                format!(
                    "{} would be on two shifts at once: this and {with}",
                    l.staff.name
                ),
            ));
        }
        theirs.push((l.no, (l.starts, l.ends)));
    }
    Ok(())
}

/// The gaps each imported role's rota would have over the span the import covers.
fn gaps_after(conn: &mut DbConnection, ctx: &Ctx, lines: &[Line]) -> AppResult<Vec<Gap>> {
    // Each role: its span in the import, and its slots.
    let mut by_role: HashMap<String, (Role, Span, Vec<Slot>)> = HashMap::new();
    for l in lines {
        let e = by_role.entry(l.role.id.clone()).or_insert((
            l.role.clone(),
            (l.starts, l.ends),
            Vec::new(),
        ));
        e.1 = (e.1 .0.min(l.starts), e.1 .1.max(l.ends));
        e.2.push(Slot {
            staff: Some(l.staff.id.clone()),
            replaces: l.replaces.as_ref().map(|r| r.id.clone()),
            starts: l.starts,
            ends: l.ends,
        });
    }
    let mut out = Vec::new();
    let mut roles: Vec<_> = by_role.into_values().collect();
    roles.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (role, (from, to), mut slots) in roles {
        for s in store::shifts(conn, Some(std::slice::from_ref(&role.id)), from, to)? {
            slots.push(s.slot());
        }
        for (a, b) in gaps(&slots, from, to) {
            out.push(gap(ctx, &role, a, b));
        }
    }
    Ok(out)
}

/// A gap as a coordinator reads it.
pub fn gap(ctx: &Ctx, role: &Role, from: DateTime<Utc>, until: DateTime<Utc>) -> Gap {
    let z = ctx.policy.zone;
    let (a, b) = (z.local(from), z.local(until));
    let end = if a.date_naive() == b.date_naive() {
        b.format("%H:%M").to_string()
    } else {
        b.format("%a %-d %b %H:%M").to_string()
    };
    Gap {
        role_id: role.id.clone(),
        role: role.name.clone(),
        from,
        until,
        text: format!(
            "{} uncovered {}–{end}",
            role.name,
            a.format("%a %-d %b %H:%M")
        ),
    }
}

/// Imports a rota: every line checked first; with any problem nothing is added.
pub fn import(
    conn: &mut DbConnection,
    ctx: &Ctx,
    csv_text: &str,
    dry_run: bool,
) -> AppResult<Report> {
    let mut report = Report {
        dry_run,
        imported: false,
        lines: 0,
        shifts: 0,
        problems: Vec::new(),
        unknown_people: Vec::new(),
        gaps: Vec::new(),
    };
    let lines = read_lines(conn, ctx, csv_text, &mut report)?;
    if report.lines == 0 {
        return Err(AppError::Unprocessable(
            "the rota holds no lines: write one shift a line as role, staff email, start, end"
                .into(),
        ));
    }
    clashes(conn, &lines, &mut report)?;
    report.problems.sort_by_key(|p| p.line);
    report.shifts = lines.len();
    report.gaps = gaps_after(conn, ctx, &lines)?;
    if dry_run || !report.problems.is_empty() {
        return Ok(report);
    }
    let rows: Vec<NewShift> = lines
        .iter()
        .map(|l| {
            let mut r = NewShift::new(&l.role.id, Some(&l.staff.id), (l.starts, l.ends), ctx.now);
            r.replaces = l.replaces.as_ref().map(|s| s.id.clone());
            r
        })
        .collect();
    store::add_shifts(conn, &rows)?;
    let mut done: Vec<&str> = Vec::new();
    for l in &lines {
        if l.starts <= ctx.now && ctx.now < l.ends && !done.contains(&l.role.id.as_str()) {
            refresh_if_current(conn, ctx, &l.role, (l.starts, l.ends))?;
            done.push(&l.role.id);
        }
    }
    report.imported = true;
    tracing::info!(shifts = rows.len(), "rota imported");
    Ok(report)
}

/// The periods in the next `hours` when a role on the rota has nobody, and roles with no
/// rota that nobody holds now.
pub fn coming_gaps(conn: &mut DbConnection, ctx: &Ctx, hours: i64) -> AppResult<Vec<Gap>> {
    let (from, to) = (ctx.now, ctx.now + chrono::Duration::hours(hours));
    let on_rota = store::roles_on_rota(conn, from - crate::domain::rota::MAX_SHIFT, to)?;
    let slots = store::slots(conn, &on_rota, from, to)?;
    let mut out = Vec::new();
    for role in directory::list_roles(conn)? {
        match slots.get(&role.id) {
            Some(s) => {
                for (a, b) in gaps(s, from, to) {
                    out.push(gap(ctx, &role, a, b));
                }
            }
            None if on_rota.contains(&role.id) => out.push(gap(ctx, &role, from, to)),
            None => {
                if directory::current_holders(conn, &role.id)?.is_empty() {
                    let mut g = gap(ctx, &role, from, to);
                    g.text = format!("{} is held by nobody now, and has no rota", role.name);
                    out.push(g);
                }
            }
        }
    }
    out.sort_by(|a, b| a.from.cmp(&b.from).then(a.role.cmp(&b.role)));
    Ok(out)
}

/// A recurring pattern to add: who holds which role on which days, from when to when.
pub struct NewPattern<'a> {
    pub role: &'a Role,
    pub staff: &'a Staff,
    pub weekdays: &'a str,
    pub starts: &'a str,
    pub ends: &'a str,
    pub first_day: &'a str,
    pub last_day: &'a str,
}

/// Adds a recurring pattern as its shifts, all or none: a clash with the person's other
/// shifts, or a day whose times do not exist at a clock change, refuses it.
pub fn add_pattern(
    conn: &mut DbConnection,
    ctx: &Ctx,
    p: NewPattern,
) -> AppResult<store::PatternRow> {
    use crate::domain::rota::{Pattern, Weekdays};
    let bad = |field: &str, e: String| AppError::Unprocessable(format!("{field}: {e}"));
    let pattern = Pattern {
        weekdays: Weekdays::parse(p.weekdays).map_err(|e| bad("weekdays", e))?,
        starts: Pattern::parse_clock(p.starts, "starts").map_err(AppError::Unprocessable)?,
        ends: Pattern::parse_clock(p.ends, "ends").map_err(AppError::Unprocessable)?,
        first_day: Pattern::parse_day(p.first_day, "first_day").map_err(AppError::Unprocessable)?,
        last_day: Pattern::parse_day(p.last_day, "last_day").map_err(AppError::Unprocessable)?,
    };
    super::rota::may_hold(conn, p.role, p.staff)?;
    let spans = pattern
        .shifts(ctx.policy.zone)
        .map_err(AppError::Unprocessable)?;
    if let (Some(first), Some(last)) = (spans.first(), spans.last()) {
        let theirs = store::shifts_of_staff(conn, &p.staff.id, first.0, last.1)?;
        for (s, e) in &spans {
            if let Some(o) = theirs
                .iter()
                .find(|o| o.replaces.is_none() && overlap((*s, *e), (o.starts_at, o.ends_at)))
            {
                return Err(AppError::Conflict {
                    message: format!(
                        "{} is already on the rota from {} to {}, which the shift from {s} to {e} overlaps",
                        p.staff.name, o.starts_at, o.ends_at
                    ),
                    detail: serde_json::json!({ "shift_id": o.id }),
                });
            }
        }
    }
    let row = store::PatternRow {
        id: crate::store::new_id(),
        role_id: p.role.id.clone(),
        staff_id: p.staff.id.clone(),
        weekdays: pattern.weekdays.code(),
        starts: pattern.starts.format("%H:%M").to_string(),
        ends: pattern.ends.format("%H:%M").to_string(),
        first_day: pattern.first_day.to_string(),
        last_day: pattern.last_day.to_string(),
    };
    store::add_pattern(conn, &row, ctx.now)?;
    let rows: Vec<NewShift> = spans
        .iter()
        .map(|span| {
            let mut r = NewShift::new(&p.role.id, Some(&p.staff.id), *span, ctx.now);
            r.pattern_id = Some(row.id.clone());
            r
        })
        .collect();
    store::add_shifts(conn, &rows)?;
    if let Some(span) = spans.iter().find(|(s, e)| *s <= ctx.now && ctx.now < *e) {
        refresh_if_current(conn, ctx, p.role, *span)?;
    }
    tracing::info!(role = %p.role.name, shifts = rows.len(), "rota pattern added");
    Ok(row)
}
