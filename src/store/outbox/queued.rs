//! What a command queued for the outbox workers, and how it tells them: the doorbell, and
//! the rows written already leased to a running dispatcher.
use super::{NewDelivery, Row};
use crate::domain::delivery::{Delivery, Kind};
use crate::domain::Task;
use crate::error::AppResult;
use crate::store::to_db;
use chrono::{DateTime, Utc};
use std::sync::Arc;

impl NewDelivery {
    /// Due at once, waiting, and not a text (a text is written only if none is queued
    /// for that person and task yet, so it may not be written at all): a row that a lease
    /// may take as it is written.
    fn leasable(&self) -> bool {
        self.status == Delivery::Pending.code()
            && self.due_at <= self.created_at
            && self.kind != Kind::Text.code()
    }

    /// The row as a claim of it would have returned it.
    fn claimed(&self) -> Row {
        Row {
            id: self.id.clone(),
            kind: self.kind.to_string(),
            destination: self.destination.clone(),
            task_id: self.task_id.clone(),
            task_version: self.task_version,
            level: self.level,
            recipient_id: self.recipient_id.clone(),
            status: self.status.to_string(),
            attempts: self.attempts,
            due_at: self.due_at,
            last_error: None,
            created_at: self.created_at,
            sent_at: None,
            lease_until: self.lease_until,
        }
    }
}

/// A row written already leased to this instance, and for a notification the task it is
/// about as the command wrote it (that version, which the row names): its dispatcher sends
/// it with no claim, and no read of the task either.
#[derive(Clone)]
pub struct Leased {
    pub row: Row,
    pub task: Option<Arc<Task>>,
}

/// Rows as they are to be written ([`leased`] where the command gives a lease), noted as
/// queued (see [`queued_by`]); for a writer that binds them itself ([`super::bind_rows`]).
pub(in crate::store) fn queue(rows: &[NewDelivery]) -> std::borrow::Cow<'_, [NewDelivery]> {
    let rows = leased(rows);
    note_queued(&rows);
    rows
}

thread_local! {
    /// What work on this thread queued since [`queued_by`] last asked.
    static QUEUED: std::cell::RefCell<Queued> = const {
        std::cell::RefCell::new(Queued { any: false, due: Vec::new(), leased: Vec::new() })
    };
    /// The lease the command running on this thread gives the rows it queues that are due
    /// at once (see [`queued_by`]).
    static LEASE: std::cell::RefCell<Option<Lease>> = const { std::cell::RefCell::new(None) };
}

/// What a command queued for the outbox workers: whether anything, the ids of the rows
/// due at once, for its instance's workers to claim by id (see [`Doorbell`]), and the rows
/// it wrote already leased to its instance, which they send without a claim.
#[derive(Default)]
pub struct Queued {
    pub any: bool,
    pub due: Vec<String>,
    pub leased: Vec<Leased>,
}

/// A lease given to rows as they are written: the instance whose dispatcher sends them,
/// and until when no other instance may take them. It is what that dispatcher's claim
/// would have written a few milliseconds later, without the claim's statement.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// The rows, those due at once leased if the running command gives a lease.
fn leased(rows: &[NewDelivery]) -> std::borrow::Cow<'_, [NewDelivery]> {
    use std::borrow::Cow;
    LEASE.with_borrow(|lease| match lease {
        Some(lease) if rows.iter().any(NewDelivery::leasable) => Cow::Owned(
            rows.iter()
                .map(|r| match r.leasable() {
                    true => NewDelivery {
                        status: Delivery::Sending.code(),
                        attempts: r.attempts + 1,
                        lease_owner: Some(lease.owner.clone()),
                        lease_until: Some(to_db(lease.until)),
                        ..r.clone()
                    },
                    false => r.clone(),
                })
                .collect(),
        ),
        _ => Cow::Borrowed(rows),
    })
}

fn note_queued(rows: &[NewDelivery]) {
    if rows.is_empty() {
        return;
    }
    QUEUED.with_borrow_mut(|q| {
        q.any = true;
        for r in rows {
            if r.lease_owner.is_some() {
                q.leased.push(Leased {
                    row: r.claimed(),
                    task: r.about.clone(),
                });
            } else if r.due_at <= r.created_at {
                q.due.push(r.id.clone());
            }
        }
    });
}

/// Runs a command and says what it queued for the outbox workers, so that they are woken
/// only for work (a claim that finds nothing is a statement for nothing: after an
/// acknowledgement or a completion, most of the time), and claim by id what is due at once.
/// With a `lease` (its instance's dispatcher runs: [`Doorbell::lease`]), the rows due at
/// once are written already leased to that dispatcher, which sends them with no claim.
pub fn queued_by<T>(
    lease: Option<Lease>,
    command: impl FnOnce() -> AppResult<T>,
) -> AppResult<(T, Queued)> {
    QUEUED.take();
    LEASE.set(lease);
    let out = command();
    LEASE.take();
    let queued = QUEUED.take();
    out.map(|t| (t, queued))
}

/// How commands tell their instance's outbox workers what they queued: the ids of the rows
/// due at once, which a worker claims by id (a probe of the primary key each, where the
/// scan for everything due reads past every row the index still holds for rows already
/// sent or stopped), and a wake-up. Rows queued by other instances or by the command line,
/// retries, fallbacks and lapsed leases are found by the workers' regular scan.
///
/// While this instance's dispatcher runs ([`Doorbell::served_by`]), its commands write the
/// rows due at once already leased to it ([`Doorbell::lease`]) and hand it the rows
/// themselves: no claim at all. Should the instance stop before sending them, their lease
/// runs out and another instance's scan takes them, as it would rows claimed and not sent.
#[derive(Default)]
pub struct Doorbell {
    rung: tokio::sync::Notify,
    due: std::sync::Mutex<Vec<String>>,
    leased: std::sync::Mutex<Vec<Leased>>,
    /// The dispatcher that takes leased rows: its name in leases, and their length.
    dispatcher: std::sync::OnceLock<(String, std::time::Duration)>,
    /// Whether a scan for everything due was asked for since the workers last looked.
    scan: std::sync::atomic::AtomicBool,
}

/// The most ids a doorbell holds: past it (no worker is taking them, or a burst outran
/// them) new ones are left to the scan. Past as many leased rows, commands stop leasing.
const DOORBELL_HOLDS: usize = 20_000;

impl Doorbell {
    /// Says that this instance's dispatcher runs, named `owner` in leases of `length`: from
    /// now on its commands lease what they queue due at once to it.
    pub fn served_by(&self, owner: &str, length: std::time::Duration) {
        let _ = self.dispatcher.set((owner.to_string(), length));
    }

    /// The lease a command starting `now` gives the rows it queues due at once: none when
    /// no dispatcher runs here, or while it is this far behind.
    pub fn lease(&self, now: DateTime<Utc>) -> Option<Lease> {
        let (owner, length) = self.dispatcher.get()?;
        let held = self.leased.lock().unwrap_or_else(|e| e.into_inner()).len();
        (held < DOORBELL_HOLDS).then(|| Lease {
            owner: owner.clone(),
            until: now + chrono::Duration::from_std(*length).unwrap_or(chrono::Duration::MAX),
        })
    }

    /// Tells the workers what a command queued (nothing if it queued nothing). Leased rows
    /// are all kept: they are this instance's to send.
    pub fn ring(&self, queued: Queued) {
        if !queued.any {
            return;
        }
        if !queued.leased.is_empty() {
            let mut leased = self.leased.lock().unwrap_or_else(|e| e.into_inner());
            leased.extend(queued.leased);
        }
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let room = DOORBELL_HOLDS.saturating_sub(due.len());
        due.extend(queued.due.into_iter().take(room));
        drop(due);
        self.rung.notify_one();
    }

    /// Up to `n` of the rows written leased to this instance, oldest first.
    pub fn take_leased(&self, n: usize) -> Vec<Leased> {
        let mut leased = self.leased.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(leased.len());
        leased.drain(..n).collect()
    }

    /// Wakes the workers to scan for everything due.
    pub fn wake(&self) {
        self.scan.store(true, std::sync::atomic::Ordering::Relaxed);
        self.rung.notify_one();
    }

    /// Was a scan asked for ([`Doorbell::wake`]) since this was last asked?
    pub fn scan_asked(&self) -> bool {
        self.scan.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Up to `n` of the ids rung in, oldest first.
    pub fn take(&self, n: usize) -> Vec<String> {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(due.len());
        due.drain(..n).collect()
    }

    /// Waits until it is rung.
    pub async fn rung(&self) {
        self.rung.notified().await
    }
}
