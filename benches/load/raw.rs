//! The raw-limit companion of the load bench: the lifecycle's write transactions issued
//! straight through diesel on N connections, with no HTTP, no authentication, no reads and
//! no service around them, on a fresh database with the demo hospital. What the database
//! itself can carry on this machine, measured beside the service in the same run.
//!
//! Each lifecycle is the service workload's writes, with the same rows and columns as the
//! service's commands write them (`app::tasks::raise` and `act`), built by the same store
//! functions and domain rules. Each statement is one round trip; each transaction is
//! BEGIN, its statements, COMMIT:
//!
//! 1. **raise**: `INSERT INTO tasks` (every column a raised task has: `store::tasks::insert`
//!    of `Task::raised`); the `raised` event, numbered by its own `INSERT … SELECT
//!    max(seq) + 1 … RETURNING seq` (`store::events::append_event`, with the service's
//!    detail: assignee and priority); one `INSERT INTO outbox` with the push for the bleep's
//!    holder (`store::outbox::notifications` and `insert`, keyed as the service keys it).
//! 2. **acknowledge**: `UPDATE tasks SET status, acknowledged_by, acknowledged_at,
//!    next_escalation_at, version, updated_at WHERE id = ? AND version = ?` (the conditional
//!    update of `store::tasks::save_if_unchanged`, with the task as `domain::transition::
//!    decide` makes it), then the `accepted` event (`append_event`).
//! 3. **start**, every other lifecycle as in the service workload: the same conditional
//!    update (status, started_at, version, updated_at) and its event.
//! 4. **complete**: the same conditional update (status, ended_at, outcome, …) and the
//!    `completed` event with the outcome.
//!
//! Left out, because the service does them and the database's limit does not need them:
//! reading the task before each change (the caller here holds it), the caller's token, the
//! ward, assignee, holders, rota and addresses a raise looks up, the outbox `UPDATE` that
//! stops chasing (`cancel_chasing`) on each status change, the answer's view (the task,
//! names and timeline), the list and dashboard reads, and the dispatcher's claims.
//!
//! On SQLite the connections take turns to write (as the service's one writer does), each
//! transaction committing with its own fsync (`synchronous = FULL`).
use bleepless::domain::task::Policy;
use bleepless::domain::transition::{decide, Change, Standing};
use bleepless::domain::{Assignee, Category, NewTask, NhsNumber, OutcomeCode, Priority, Task};
use bleepless::error::{AppError, AppResult};
use bleepless::store::events::{self, NewEvent};
use bleepless::store::outbox::{self, Addressee};
use bleepless::store::{directory, new_id, tasks, DbConnection, Store};
use chrono::Utc;
use diesel::Connection as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who the lifecycle's rows name, read once from the demo hospital.
pub struct People {
    pub role: String,
    pub nurse: String,
    pub doctor: String,
    pub holder: Vec<Addressee>,
}

/// The raw run's figures.
#[derive(Default)]
pub struct Raw {
    pub lifecycles: usize,
    pub commits: usize,
    pub failures: usize,
    pub raise: Vec<Duration>,
    pub ack: Vec<Duration>,
    pub start: Vec<Duration>,
    pub complete: Vec<Duration>,
    pub secs: f64,
    /// The PostgreSQL server's CPU seconds, and the machine's busy share, in the run.
    pub postgres_cpu: Option<f64>,
    pub machine_busy: Option<f64>,
    /// This process's CPU seconds in the run: the raw loops (diesel, the client library).
    pub client_cpu: Option<f64>,
}

impl Raw {
    fn add(&mut self, o: Raw) {
        self.lifecycles += o.lifecycles;
        self.commits += o.commits;
        self.failures += o.failures;
        self.raise.extend(o.raise);
        self.ack.extend(o.ack);
        self.start.extend(o.start);
        self.complete.extend(o.complete);
    }
}

pub fn people(store: &Store) -> People {
    store
        .write_now(|c| {
            let role = directory::find_role(c, "Medicine FY1 night")?
                .ok_or_else(|| AppError::Internal("no demo FY1 bleep".into()))?;
            let nurse = directory::find_staff(c, "grace.okafor@example.nhs.uk")?;
            let doctor = directory::find_staff(c, "amy.patel@example.nhs.uk")?;
            let holder = outbox::addresses(c, std::slice::from_ref(&doctor.id))?;
            Ok(People {
                role: role.id,
                nurse: nurse.id,
                doctor: doctor.id,
                holder,
            })
        })
        .expect("the demo hospital's FY1 bleep, nurse and doctor")
}

/// The workload's task, as the coordinator raises it for the FY1 bleep (the raw loop's
/// and the HTTP floor's).
pub fn new_task(role: &str, bed: String) -> AppResult<NewTask> {
    Ok(NewTask {
        nhs_number: NhsNumber::parse("9990000018")
            .map_err(|e| AppError::Internal(e.to_string()))?,
        ward: "Ward 5 (Acute Medicine)".into(),
        bed,
        category: Category::parse("bloods").map_err(AppError::Internal)?,
        description: "FBC, U&E and CRP before the ward round".into(),
        priority: Priority::parse("urgent").map_err(AppError::Internal)?,
        news2: None,
        assignee: role.to_string(),
    })
}

/// Transaction 1: the task, its `raised` event and its push.
fn raise(c: &mut DbConnection, p: &People, policy: &Policy, bed: usize) -> AppResult<Task> {
    let now = Utc::now();
    let new = new_task(&p.role, format!("{}", bed % 28 + 1))?;
    let task = Task::raised(
        new_id(),
        new,
        Assignee::Role(p.role.clone()),
        &p.nurse,
        now,
        policy,
    );
    tasks::insert(c, &task)?;
    events::append_event(c, &task.id, now, NewEvent::raised(&task))?;
    let mut rows = Vec::new();
    outbox::notifications(&task, &p.holder, policy, now, &mut rows);
    outbox::insert(c, &rows)?;
    Ok(task)
}

/// The doctor's change of the task at `now`, decided by the domain's rule as the holder of
/// its bleep: the task after it, and its event (the raw loop's and the HTTP floor's).
pub fn decided<'a>(
    doctor: &'a str,
    task: &Task,
    to: &Change,
    now: chrono::DateTime<Utc>,
    policy: &Policy,
) -> AppResult<(Task, NewEvent<'a>)> {
    let standing = Standing {
        staff_id: doctor.to_string(),
        is_assignee: true,
        ..Standing::default()
    };
    let d = decide(task, to, &standing, now, policy)
        .map_err(|r| AppError::Internal(format!("refused: {r:?}")))?;
    let event = NewEvent {
        actor: Some(doctor),
        kind: d.kind,
        from: Some(d.from),
        to: Some(d.to),
        detail: d.detail,
    };
    Ok((d.next, event))
}

/// Transactions 2–4: one status change by the doctor holding the bleep, as a conditional
/// update and its event.
fn change(
    c: &mut DbConnection,
    p: &People,
    policy: &Policy,
    task: &Task,
    to: Change,
) -> AppResult<Task> {
    let now = Utc::now();
    let (next, event) = decided(&p.doctor, task, &to, now, policy)?;
    if !tasks::save_if_unchanged(c, &next, task)? {
        return Err(AppError::Internal(
            "the task changed under the raw loop".into(),
        ));
    }
    events::append_event(c, &task.id, now, event)?;
    Ok(next)
}

/// The transactions of a lifecycle, each timed on its own.
#[derive(Clone, Copy)]
enum Step {
    Raise,
    Acknowledge,
    Start,
    Complete,
}

/// Runs one transaction (taking the writer's turn on SQLite) and times it; the task as it
/// is after, or None when it failed.
fn transaction(
    conn: &mut DbConnection,
    turn: Option<&Mutex<()>>,
    out: &mut Raw,
    step: Step,
    f: impl FnOnce(&mut DbConnection) -> AppResult<Task>,
) -> Option<Task> {
    let t = Instant::now();
    let r = {
        let _turn = turn.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        conn.transaction(f)
    };
    let into = match step {
        Step::Raise => &mut out.raise,
        Step::Acknowledge => &mut out.ack,
        Step::Start => &mut out.start,
        Step::Complete => &mut out.complete,
    };
    into.push(t.elapsed());
    match r {
        Ok(task) => {
            out.commits += 1;
            Some(task)
        }
        Err(e) => {
            out.failures += 1;
            if out.failures < 5 {
                eprintln!("raw transaction failed: {e}");
            }
            None
        }
    }
}

/// One connection's loop until `stop`: raise, acknowledge, start (every other lifecycle),
/// complete.
fn connection_loop(store: &Store, p: &People, turn: Option<&Mutex<()>>, stop: &AtomicBool) -> Raw {
    let policy = Policy::default();
    let mut pooled = store.conn().expect("a raw connection");
    let conn: &mut DbConnection = &mut pooled;
    let mut out = Raw::default();
    let done = Change::Complete {
        code: OutcomeCode::parse("done").expect("the outcome code done"),
        text: "Taken and sent".into(),
    };
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let o = &mut out;
        let Some(t) = transaction(conn, turn, o, Step::Raise, |c| raise(c, p, &policy, i)) else {
            continue;
        };
        let ack = |c: &mut DbConnection| change(c, p, &policy, &t, Change::Acknowledge);
        let Some(mut t) = transaction(conn, turn, o, Step::Acknowledge, ack) else {
            continue;
        };
        if i.is_multiple_of(2) {
            let start = |c: &mut DbConnection| change(c, p, &policy, &t, Change::Start);
            match transaction(conn, turn, o, Step::Start, start) {
                Some(next) => t = next,
                None => continue,
            }
        }
        let complete = |c: &mut DbConnection| change(c, p, &policy, &t, done.clone());
        if transaction(conn, turn, o, Step::Complete, complete).is_some() {
            o.lifecycles += 1;
        }
    }
    out
}

/// Runs `connections` raw loops for `seconds` on the database.
pub fn run(url: &bleepless::config::DatabaseUrl, connections: usize, seconds: u64) -> Raw {
    let store = Store::open(url, connections as u32).expect("open the raw bench's database");
    let p = people(&store);
    let turn = store.is_sqlite().then(|| Mutex::new(()));
    let stop = AtomicBool::new(false);
    let postgres_before = (!store.is_sqlite()).then(crate::common::postgres_cpu);
    let machine_before = crate::common::machine_cpu();
    let client_before = crate::common::cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut all = Raw::default();
    std::thread::scope(|s| {
        let loops: Vec<_> = (0..connections)
            .map(|_| s.spawn(|| connection_loop(&store, &p, turn.as_ref(), &stop)))
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        for l in loops {
            all.add(l.join().expect("a raw loop panicked"));
        }
    });
    all.secs = started.elapsed().as_secs_f64();
    all.postgres_cpu = postgres_before
        .map(|b| crate::common::postgres_cpu_between(&b, &crate::common::postgres_cpu()));
    all.machine_busy = crate::common::machine_busy_since(machine_before);
    all.client_cpu = client_before
        .zip(crate::common::cpu_seconds(std::process::id()))
        .map(|(b, e)| e - b);
    all
}
