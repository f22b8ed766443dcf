//! The commands. Each is one function that, in one transaction, applies the rule (decided
//! in `domain`), appends the task's events and queues every effect in the outbox (each
//! notification, the delivery to the patient record). Open pages learn of the change from
//! the task's new version. [`App`] runs a command and then wakes the outbox workers, so no
//! caller has to remember to. The API, the pages, the one-click link, the CLI and the tick
//! call only these.
pub mod escalate;
pub mod recent;
pub mod recipients;
pub mod roles;
pub mod rota;
pub mod rota_plan;
pub mod sign_in;
pub mod staff;
pub mod tasks;

use crate::clock::SharedClock;
use crate::domain::task::Policy;
use crate::error::AppResult;
use crate::store::{outbox, DbConnection, Store};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// What every command is given besides its own input: the time and the escalation policy.
#[derive(Clone)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub policy: Arc<Policy>,
    /// What this instance knows of the rota's next boundary (see [`rota::RotaQuiet`]).
    pub rota: Arc<rota::RotaQuiet>,
    /// The tasks this instance last changed for a caller with a staff token (see
    /// [`recent::Recent`]).
    pub recent: Arc<recent::Recent>,
}

/// Runs commands: one transaction each, then the outbox workers are woken if it queued
/// anything.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub clock: SharedClock,
    pub policy: Arc<Policy>,
    /// Tells this instance's outbox workers what its commands queued.
    pub doorbell: Arc<outbox::Doorbell>,
    /// Names this instance in heartbeats.
    pub instance: String,
    /// When this instance started.
    pub started: DateTime<Utc>,
    /// What this instance knows of the rota's next boundary, shared by its commands.
    pub rota: Arc<rota::RotaQuiet>,
    /// The tasks this instance last changed for a caller with a staff token.
    pub recent: Arc<recent::Recent>,
    /// How long this instance's last escalation tick took, in real time (for `/metrics`).
    pub last_tick_took: Arc<std::sync::Mutex<Option<std::time::Duration>>>,
    /// How many pushes this instance's next tick will send if nobody acknowledges first,
    /// as foreseen after its last tick (for `/metrics`).
    pub foreseen: Arc<std::sync::atomic::AtomicUsize>,
}

impl App {
    pub fn new(store: Store, clock: SharedClock, policy: Policy) -> App {
        App {
            started: clock.now(),
            store,
            clock,
            policy: Arc::new(policy),
            doorbell: Arc::default(),
            instance: uuid::Uuid::new_v4().to_string(),
            last_tick_took: Arc::default(),
            foreseen: Arc::default(),
            rota: Arc::default(),
            recent: Arc::default(),
        }
    }

    /// The context of a command at `now` (the tick runs every group at its own time).
    pub fn ctx_at(&self, now: DateTime<Utc>) -> Ctx {
        Ctx { now, ..self.ctx() }
    }

    /// The context of a command starting now.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            now: self.clock.now(),
            policy: self.policy.clone(),
            rota: self.rota.clone(),
            recent: self.recent.clone(),
        }
    }

    /// Runs one command in one transaction, then wakes the outbox workers.
    pub async fn run<T, F>(&self, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &Ctx) -> AppResult<T> + Send + 'static,
    {
        self.run_in(self.ctx(), command).await
    }

    /// The same, at a time the caller chose (the tick runs every group at its own time).
    pub async fn run_in<T, F>(&self, ctx: Ctx, command: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, &Ctx) -> AppResult<T> + Send + 'static,
    {
        let lease = self.doorbell.lease(ctx.now);
        let out = self
            .store
            .write(move |c| outbox::queued_by(lease, || command(c, &ctx)))
            .await;
        self.woken(out)
    }

    /// Rings the outbox workers' doorbell if the command queued something (a command that
    /// failed queued nothing: its transaction was rolled back).
    fn woken<T>(&self, out: AppResult<(T, outbox::Queued)>) -> AppResult<T> {
        let (t, queued) = out?;
        self.doorbell.ring(queued);
        Ok(t)
    }

    /// Runs a command that keeps itself whole (see [`Store::whole_then_read`]), then reads
    /// what to answer with.
    pub async fn run_whole_then_read<T, V, F, G>(&self, command: F, read: G) -> AppResult<V>
    where
        T: Send + 'static,
        V: Send + 'static,
        F: FnOnce(&mut DbConnection, &Ctx) -> AppResult<T> + Send + 'static,
        G: FnOnce(&mut DbConnection, T) -> AppResult<V> + Send + 'static,
    {
        let ctx = self.ctx();
        let lease = self.doorbell.lease(ctx.now);
        let sqlite = self.store.is_sqlite();
        let out = self
            .store
            .whole_then_read(
                move |c| outbox::queued_by(lease, || command(c, &ctx)),
                move |c, (t, queued)| match read(c, t) {
                    Ok(v) => Ok((Ok(v), queued)),
                    // On SQLite the command's savepoint goes with the failed read: nothing
                    // was written, so nothing is handed over.
                    Err(e) if sqlite => Err(e),
                    // On PostgreSQL the command stands (each statement committed as it was
                    // written): what it queued goes to the workers now, not a lease later.
                    Err(e) => Ok((Err(e), queued)),
                },
            )
            .await;
        let (answer, queued) = out?;
        self.doorbell.ring(queued);
        answer
    }

    /// Runs one command from a caller off the async runtime (the command line). Another
    /// process's workers find what it queued at their next look.
    pub fn run_now<T, F>(&self, command: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConnection, &Ctx) -> AppResult<T>,
    {
        let ctx = self.ctx();
        let out = self.store.write_now(|c| command(c, &ctx));
        self.doorbell.wake();
        out
    }
}
