//! The reads that must stay cheap however many tasks are stored or waiting, checked against
//! SQLite's plans on the migrated schema. The service never gathers statistics on SQLite
//! (see BENCHMARKS.md), so these plans are the ones it runs. PostgreSQL plans from its own
//! statistics; the bench (`BENCH_POSTGRES_LOG_MS`) shows them there.
use super::{DatabaseUrl, DbConnection, Store};
use diesel::prelude::*;

#[derive(QueryableByName)]
struct Step {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

fn plan(sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(dir.path().join("plans.db")), 1).unwrap();
    let steps: Vec<Step> = store
        .read_now(|c| match c {
            DbConnection::Sqlite(c) => {
                Ok(diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(c)?)
            }
            DbConnection::Pg(_) => unreachable!("a SQLite file"),
        })
        .unwrap();
    steps
        .into_iter()
        .map(|s| s.detail)
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_tick_reads_only_the_due_tasks_in_order() {
    // `tasks::due_for_escalation` and `heartbeats::oldest_due_escalation`.
    for sql in [
        "SELECT id FROM tasks WHERE status = ? AND next_escalation_at <= ? \
         ORDER BY next_escalation_at ASC LIMIT ?",
        "SELECT next_escalation_at FROM tasks WHERE status = ? \
         AND next_escalation_at IS NOT NULL ORDER BY next_escalation_at ASC LIMIT 1",
    ] {
        let p = plan(sql);
        assert!(
            p.contains("INDEX tasks_by_escalation (status=? AND next_escalation_at")
                && !p.contains("TEMP B-TREE"),
            "{sql}: {p}"
        );
    }
}

#[test]
fn lists_and_the_last_day_are_read_by_their_indexes() {
    // The overdue list, newest raised first, in the index's order.
    let p = plan(
        "SELECT id FROM tasks WHERE status = ? AND ack_deadline < ? \
         ORDER BY raised_at DESC, id DESC LIMIT ?",
    );
    assert!(
        p.contains("tasks_by_status_raised (status=?)") && !p.contains("TEMP B-TREE"),
        "{p}"
    );
    // The dashboard's and /metrics' acknowledgements of the last 24 hours, by the partial
    // index (only acknowledged tasks are in it).
    let p = plan("SELECT ward FROM tasks WHERE acknowledged_at >= ?");
    assert!(
        p.contains("tasks_by_acknowledged (acknowledged_at>?)"),
        "{p}"
    );
}

#[test]
fn escalations_are_read_by_their_partial_index() {
    // The dashboard's escalations per hour and /metrics' count (`events::escalated`).
    for sql in [
        "SELECT at FROM task_events WHERE task_events.kind = 'escalated' AND at >= ?",
        "SELECT count(*) FROM task_events WHERE task_events.kind = 'escalated'",
    ] {
        let p = plan(sql);
        assert!(p.contains("INDEX task_events_escalated"), "{sql}: {p}");
    }
}
