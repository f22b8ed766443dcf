//! The wall dashboard's people view: each bleep holder's workload, and failed deliveries
//! grouped by cause with the people concerned.
use super::time;
use crate::domain::rota::Zone;
use crate::domain::{Assignee, Status};
use crate::error::AppResult;
use crate::store::dashboard::FailedDelivery;
use crate::store::tasks::{self, Filter};
use crate::store::{directory, DbConnection};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// One bleep holder's work now.
pub struct Workload {
    pub name: String,
    pub bleeps: String,
    pub waiting: usize,
    pub acknowledged: usize,
    pub in_progress: usize,
    /// "waiting 12 min" for the oldest task nobody has acknowledged, or empty.
    pub oldest: String,
    pub oldest_secs: i64,
}

/// Everyone who holds a bleep now, with the open tasks for them or their bleeps (waiting)
/// and those they acknowledged or started; the longest wait first.
pub fn workload(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Vec<Workload>> {
    let mut bleeps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut holders_of: HashMap<String, Vec<String>> = HashMap::new();
    for r in directory::list_roles(conn)? {
        let holders = directory::current_holders(conn, &r.id)?;
        for h in &holders {
            bleeps.entry(h.clone()).or_default().push(r.name.clone());
        }
        holders_of.insert(r.id, holders);
    }
    let open = Filter {
        statuses: vec![Status::Requested, Status::Accepted, Status::InProgress],
        limit: 1000,
        ..Filter::default()
    };
    let (list, _) = tasks::list(conn, &open, now)?;
    let mut rows: HashMap<String, Workload> = HashMap::new();
    let ids: Vec<&str> = bleeps.keys().map(String::as_str).collect();
    let names = directory::staff_names(conn, &ids)?;
    for id in bleeps.keys() {
        row(&mut rows, &names, &bleeps, id);
    }
    for t in &list {
        let people: Vec<String> = match (&t.acknowledged_by, &t.assignee) {
            (Some(by), _) => vec![by.clone()],
            (None, Assignee::Staff(s)) => vec![s.clone()],
            (None, Assignee::Role(r)) => holders_of.get(r).cloned().unwrap_or_default(),
        };
        for p in people {
            let Some(w) = row(&mut rows, &names, &bleeps, &p) else {
                continue;
            };
            match t.status {
                Status::Requested => {
                    w.waiting += 1;
                    let secs = (now - t.raised_at).num_seconds();
                    if secs > w.oldest_secs {
                        w.oldest_secs = secs;
                        w.oldest = format!("waiting {}", time::span(secs.max(0)));
                    }
                }
                Status::Accepted => w.acknowledged += 1,
                _ => w.in_progress += 1,
            }
        }
    }
    let mut out: Vec<Workload> = rows.into_values().collect();
    out.sort_by(|a, b| {
        (
            b.oldest_secs,
            b.waiting + b.acknowledged + b.in_progress,
            &a.name,
        )
            .cmp(&(
                a.oldest_secs,
                a.waiting + a.acknowledged + a.in_progress,
                &b.name,
            ))
    });
    Ok(out)
}

/// The workload line of a bleep holder, made the first time they are met.
fn row<'a>(
    rows: &'a mut HashMap<String, Workload>,
    names: &HashMap<String, String>,
    bleeps: &BTreeMap<String, Vec<String>>,
    id: &str,
) -> Option<&'a mut Workload> {
    let name = names.get(id)?.clone();
    Some(rows.entry(id.to_string()).or_insert_with(|| Workload {
        name,
        bleeps: bleeps.get(id).map(|b| b.join(", ")).unwrap_or_default(),
        waiting: 0,
        acknowledged: 0,
        in_progress: 0,
        oldest: String::new(),
        oldest_secs: -1,
    }))
}

/// Failed deliveries with one cause, on one channel.
pub struct FailedGroup {
    /// "5 staff have no phone registered: Dr A, Dr B, …"
    pub summary: String,
    pub channel: String,
    /// Latest failure, in the hospital's time.
    pub latest: String,
    /// (task id, "Ward 5, bed 12") of each task concerned.
    pub tasks: Vec<(String, String)>,
}

/// The cause in the ward's words.
fn cause(error: &str) -> String {
    let e = error.to_lowercase();
    if e.contains("no device registered") || e.contains("no phone") {
        "no phone registered for bleeps".into()
    } else if e.contains("no address") || e.contains("email is not configured") {
        "no email address (or email is not set up)".into()
    } else {
        error.to_string()
    }
}

/// One cause's people, latest failure and task ids, as they are gathered.
type Gathered = (Vec<String>, DateTime<Utc>, Vec<String>);

/// Groups failures by cause and channel, naming each person once; most people first.
pub fn failed_groups(
    failed: &[FailedDelivery],
    names: &HashMap<String, String>,
    places: &HashMap<String, String>,
    zone: &Zone,
    now: DateTime<Utc>,
) -> Vec<FailedGroup> {
    let mut groups: BTreeMap<(String, String), Gathered> = BTreeMap::new();
    for f in failed {
        let g = groups
            .entry((cause(&f.error), f.channel.clone()))
            .or_insert_with(|| (Vec::new(), f.at, Vec::new()));
        let who = names.get(&f.recipient_id).cloned().unwrap_or_default();
        if !g.0.contains(&who) {
            g.0.push(who);
        }
        g.1 = g.1.max(f.at);
        if !g.2.contains(&f.task_id) {
            g.2.push(f.task_id.clone());
        }
    }
    let mut out: Vec<(usize, FailedGroup)> = groups
        .into_iter()
        .map(|((cause, channel), (people, latest, ids))| {
            let n = people.len();
            let (whom, have) = if n == 1 {
                ("member of staff", "has")
            } else {
                ("staff", "have")
            };
            let what = match cause.strip_prefix("no ") {
                Some(_) => format!("{have} {cause}"),
                None => format!("could not be reached ({cause})"),
            };
            (
                n,
                FailedGroup {
                    summary: format!("{n} {whom} {what}: {}", people.join(", ")),
                    channel,
                    latest: time::clock(zone, latest, now),
                    tasks: ids
                        .into_iter()
                        .map(|id| {
                            let place = places.get(&id).cloned().unwrap_or_default();
                            (id, place)
                        })
                        .collect(),
                },
            )
        })
        .collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.0));
    out.into_iter().map(|(_, g)| g).collect()
}
