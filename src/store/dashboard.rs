//! The bed manager's view: what is open where, what is late, how fast tasks are picked up.
use super::schema::{outbox, task_events, tasks};
use super::sql::Sql;
use super::tasks::TaskRow;
use super::{from_db, to_db, DbConnection};
use crate::domain::Task;
use crate::domain::{Priority, Status};
use crate::error::AppResult;
use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::collections::BTreeMap;
use std::sync::LazyLock;

#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct WardLine {
    pub ward: String,
    /// Open tasks per priority, in priority order.
    pub by_priority: [i64; 4],
    pub requested: i64,
    pub accepted: i64,
    pub in_progress: i64,
    /// Median and 90th percentile time to acknowledge over the last 24 hours, in seconds.
    pub ack_median: Option<i64>,
    pub ack_p90: Option<i64>,
    pub acknowledged_24h: usize,
}

#[derive(Debug, Clone)]
pub struct Late {
    pub task: Task,
    pub overdue_minutes: i64,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FailedDelivery {
    pub task_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub level: i32,
    pub error: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub wards: Vec<WardLine>,
    pub late: Vec<Late>,
    /// Escalations in each of the last 24 hours, oldest first, with the hour (UTC).
    pub escalations_per_hour: Vec<(u32, i64)>,
    pub failed: Vec<FailedDelivery>,
}

/// Nearest-rank percentile of sorted values.
/// How long the 24-hour figures are kept before they are worked out again.
pub const FIGURES_SECONDS: i64 = 5;

/// The figures over the last 24 hours: time to acknowledge per ward (median, 90th
/// percentile, count) and escalations per hour. Working them out reads every task
/// acknowledged that day, so they are kept for [`FIGURES_SECONDS`] of the service's
/// clock: however many dashboards are open, that reading happens once per period.
/// Open and late tasks and failed deliveries are read fresh every time.
#[derive(Default)]
pub struct Figures24h(std::sync::Mutex<Option<(i64, std::sync::Arc<Figures>)>>);

pub struct Figures {
    ack: BTreeMap<String, (Option<i64>, Option<i64>, usize)>,
    per_hour: Vec<(u32, i64)>,
}

impl Figures24h {
    fn get(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
    ) -> AppResult<std::sync::Arc<Figures>> {
        let period = now.timestamp().div_euclid(FIGURES_SECONDS);
        if let Some((p, f)) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            if *p == period {
                return Ok(f.clone());
            }
        }
        let f = std::sync::Arc::new(work_out(conn, now)?);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((period, f.clone()));
        Ok(f)
    }
}

fn work_out(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Figures> {
    let since = to_db(now - Duration::hours(24));
    let acks: Vec<(String, NaiveDateTime, NaiveDateTime)> = tasks::table
        .filter(tasks::acknowledged_at.ge(since))
        .select((
            tasks::ward,
            tasks::raised_at,
            tasks::acknowledged_at.assume_not_null(),
        ))
        .load(conn)?;
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (ward, raised, acked) in acks {
        times
            .entry(ward)
            .or_default()
            .push((acked - raised).num_seconds().max(0));
    }
    let ack = times
        .into_iter()
        .map(|(ward, mut t)| {
            t.sort_unstable();
            (ward, (percentile(&t, 50.0), percentile(&t, 90.0), t.len()))
        })
        .collect();

    let escalations: Vec<NaiveDateTime> = task_events::table
        .filter(super::events::escalated())
        .filter(task_events::at.ge(since))
        .select(task_events::at)
        .load(conn)?;
    let start = now - Duration::hours(23);
    let mut per_hour: Vec<(u32, i64)> = (0..24)
        .map(|h| ((start + Duration::hours(h)).hour(), 0))
        .collect();
    for at in escalations {
        let ago = (now - from_db(at)).num_hours();
        if (0..24).contains(&ago) {
            per_hour[(23 - ago) as usize].1 += 1;
        }
    }
    Ok(Figures { ack, per_hour })
}

pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// Every open task (waiting, acknowledged or in progress), newest first, and the 20 latest
/// failed deliveries (through the index `outbox_by_status_created`; only notifications
/// fail for good, a record delivery keeps trying, as `failing`).
///
/// Each status change leaves the task's old entries in the task table's indexes until the
/// table is vacuumed, which a busy table may not be for minutes, and the open statuses'
/// entries are mostly such. PostgreSQL read them with a bitmap scan, which visits every
/// one of them every time: under the load bench, 2,500 pages and 3 ms a dashboard, growing
/// with each change until autovacuum ran (15 s in, 11,000 entries for 19 open tasks). A
/// plain index scan marks each dead entry it passes, and the next scan skips it: about 60
/// pages a dashboard, the first one aside. So on PostgreSQL these reads forbid bitmap and
/// whole-table scans for themselves (`SET LOCAL`, in a transaction of their own), and are
/// planned each time (see `Sql::planned_each_time`): plans kept from a new database's first
/// dashboard were scans of the whole table and a sort (3 ms each under the load bench).
fn fresh_reads(conn: &mut DbConnection) -> AppResult<(Vec<Task>, Vec<FailedRow>)> {
    static OPEN: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {} FROM tasks WHERE status IN ('{}', '{}', '{}') \
             ORDER BY raised_at DESC, id DESC LIMIT 10000",
            super::tasks::COLUMNS,
            Status::Requested.code(),
            Status::Accepted.code(),
            Status::InProgress.code()
        )
    });
    const LATEST_FAILED: &str = "SELECT task_id, recipient_id, kind, level, last_error, \
         created_at FROM outbox WHERE status = 'failed' ORDER BY created_at DESC LIMIT 20";
    let (open, failed): (Vec<TaskRow>, Vec<FailedRow>) = match conn {
        DbConnection::Pg(c) => c.transaction(|c| {
            c.batch_execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off")?;
            let open = Sql::new(OPEN.as_str()).planned_each_time().load(c)?;
            let failed = Sql::new(LATEST_FAILED).planned_each_time().load(c)?;
            diesel::QueryResult::Ok((open, failed))
        })?,
        DbConnection::Sqlite(c) => (
            Sql::new(OPEN.as_str()).load(c)?,
            Sql::new(LATEST_FAILED).load(c)?,
        ),
    };
    let open = open
        .into_iter()
        .map(Task::try_from)
        .collect::<AppResult<_>>()?;
    Ok((open, failed))
}

#[derive(QueryableByName)]
#[diesel(table_name = outbox)]
struct FailedRow {
    task_id: String,
    recipient_id: Option<String>,
    kind: String,
    level: i32,
    last_error: Option<String>,
    created_at: NaiveDateTime,
}

pub fn load(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    figures: &Figures24h,
) -> AppResult<Dashboard> {
    let (open, failed) = fresh_reads(conn)?;
    let mut wards: BTreeMap<String, WardLine> = BTreeMap::new();
    for w in super::directory::list_wards(conn)? {
        wards.insert(
            w.clone(),
            WardLine {
                ward: w,
                ..WardLine::default()
            },
        );
    }
    let mut late = Vec::new();
    for t in &open {
        let line = wards.entry(t.ward.clone()).or_insert_with(|| WardLine {
            ward: t.ward.clone(),
            ..WardLine::default()
        });
        let i = Priority::ALL
            .iter()
            .position(|p| *p == t.priority)
            .unwrap_or(3);
        line.by_priority[i] += 1;
        match t.status {
            Status::Requested => line.requested += 1,
            Status::Accepted => line.accepted += 1,
            _ => line.in_progress += 1,
        }
        if t.status == Status::Requested && (t.escalation_level > 0 || t.ack_deadline < now) {
            late.push(Late {
                overdue_minutes: (now - t.ack_deadline).num_minutes().max(0),
                task: t.clone(),
            });
        }
    }
    late.sort_by_key(|l| {
        (
            std::cmp::Reverse(l.task.escalation_level),
            std::cmp::Reverse(l.overdue_minutes),
            l.task.priority,
        )
    });

    let figures = figures.get(conn, now)?;
    for (ward, (median, p90, n)) in &figures.ack {
        let line = wards.entry(ward.clone()).or_insert_with(|| WardLine {
            ward: ward.clone(),
            ..WardLine::default()
        });
        line.ack_median = *median;
        line.ack_p90 = *p90;
        line.acknowledged_24h = *n;
    }
    let per_hour = figures.per_hour.clone();

    Ok(Dashboard {
        wards: wards.into_values().collect(),
        late,
        escalations_per_hour: per_hour,
        failed: failed
            .into_iter()
            .map(
                |FailedRow {
                     task_id,
                     recipient_id,
                     kind,
                     level,
                     last_error,
                     created_at,
                 }| FailedDelivery {
                    task_id,
                    recipient_id: recipient_id.unwrap_or_default(),
                    channel: kind,
                    level,
                    error: last_error.unwrap_or_default(),
                    at: from_db(created_at),
                },
            )
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&[42], 90.0), Some(42));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
