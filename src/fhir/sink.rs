//! The record outbox: a completed or cancelled task is queued in the same transaction as the
//! change, then sent to the trust's FHIR server as a transaction Bundle by a loop that claims
//! rows with a lease (as the notification dispatcher does), so several instances can share
//! one database. Failures are retried with back-off; a row that keeps failing is marked
//! `failed` but is still retried, at the longest back-off, until it is delivered.
use super::mapping::{self, FHIR_JSON};
use crate::clock::SharedClock;
use crate::config::{DispatchConfig, RecordConfig};
use crate::domain::coded_enum;
use crate::domain::notification::backoff;
use crate::error::{AppError, AppResult};
use crate::store::outbox::Outbox;
use crate::store::schema::record_deliveries as rd;
use crate::store::tasks::Task;
use crate::store::{from_db, new_id, to_db, DbConnection, Store};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::Rng;
use serde::Serialize;

coded_enum!(
    /// Where a delivery to the record is in its life.
    RecordStatus, "record delivery status" {
        Pending => "pending",
        Sending => "sending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

/// Queues the task for the record. Call in the transaction that completed or cancelled it.
pub fn enqueue(conn: &mut DbConnection, task: &Task, now: DateTime<Utc>) -> AppResult<()> {
    diesel::insert_into(rd::table)
        .values((
            rd::id.eq(new_id()),
            rd::task_id.eq(&task.id),
            rd::task_version.eq(task.version),
            rd::status.eq(RecordStatus::Pending.code()),
            rd::attempts.eq(0),
            rd::due_at.eq(to_db(now)),
            rd::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = rd)]
pub struct DeliveryRow {
    pub id: String,
    pub task_id: String,
    pub task_version: i64,
    pub status: String,
    pub attempts: i32,
    pub due_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The record outbox. A row marked `failed` is still waiting: it is retried at the longest
/// back-off until it is delivered.
const OUTBOX: Outbox = Outbox {
    table: "record_deliveries",
    waiting: "'pending', 'failed'",
    columns: "id, task_id, task_version, status, attempts, due_at, lease_owner, lease_until, \
              last_error, created_at, delivered_at",
};

/// Claims up to `limit` rows ready to send for `owner`, the longest due first: of several
/// instances, each row goes to one.
pub fn claim_due(
    conn: &mut DbConnection,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    let mut rows: Vec<DeliveryRow> = OUTBOX.claim(conn, owner, now, lease_until, limit)?;
    rows.sort_by_key(|r| r.due_at);
    Ok(rows)
}

/// What happened to one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered,
    /// Not delivered; try again at `at`. `failed` marks a row that needs someone's attention.
    Retry {
        at: DateTime<Utc>,
        error: String,
        failed: bool,
    },
}

/// Records an attempt's outcome, if this instance still holds the lease.
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let target = rd::table
        .filter(rd::id.eq(id))
        .filter(rd::status.eq(RecordStatus::Sending.code()))
        .filter(rd::lease_owner.eq(owner));
    let n = match outcome {
        Outcome::Delivered => diesel::update(target)
            .set((
                rd::status.eq(RecordStatus::Delivered.code()),
                rd::delivered_at.eq(Some(to_db(now))),
                rd::lease_until.eq(None::<NaiveDateTime>),
                rd::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Outcome::Retry { at, error, failed } => {
            let status = if *failed {
                RecordStatus::Failed
            } else {
                RecordStatus::Pending
            };
            diesel::update(target)
                .set((
                    rd::status.eq(status.code()),
                    rd::due_at.eq(to_db(*at)),
                    rd::lease_until.eq(None::<NaiveDateTime>),
                    rd::last_error.eq(Some(error)),
                ))
                .execute(conn)?
        }
    };
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub task_id: String,
    pub task_version: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Deliveries in the given states (all states when empty), oldest first.
pub fn list(
    conn: &mut DbConnection,
    statuses: &[RecordStatus],
    limit: i64,
) -> AppResult<Vec<DeliveryView>> {
    let mut q = rd::table.select(DeliveryRow::as_select()).into_boxed();
    if !statuses.is_empty() {
        q = q.filter(rd::status.eq_any(statuses.iter().map(|s| s.code())));
    }
    let rows: Vec<DeliveryRow> = q
        .order((rd::created_at.asc(), rd::id.asc()))
        .limit(limit)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| DeliveryView {
            next_attempt_at: (r.status != RecordStatus::Delivered.code())
                .then(|| from_db(r.due_at)),
            id: r.id,
            task_id: r.task_id,
            task_version: r.task_version,
            status: r.status,
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: from_db(r.created_at),
            delivered_at: r.delivered_at.map(from_db),
        })
        .collect())
}

/// Why one attempt did not deliver.
enum SendError {
    /// Worth retrying soon: the server is down, busy or slow.
    Transient(String),
    /// The server refused the Bundle: someone must look (still retried, slowly).
    Refused(String),
}

/// Sends queued tasks to the record server.
pub struct Sink {
    pub store: Store,
    pub clock: SharedClock,
    pub config: RecordConfig,
    pub dispatch: DispatchConfig,
    /// Our public address: the base of our identifier and code system URIs.
    pub public_url: String,
    /// Names this instance in leases.
    pub owner: String,
    client: reqwest::Client,
}

struct Job {
    row: DeliveryRow,
    bundle: serde_json::Value,
}

impl Sink {
    pub fn new(
        store: Store,
        clock: SharedClock,
        config: RecordConfig,
        dispatch: DispatchConfig,
        public_url: String,
    ) -> Result<Sink, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("record: cannot build the HTTP client: {e}"))?;
        Ok(Sink {
            store,
            clock,
            config,
            dispatch,
            public_url,
            owner: uuid::Uuid::new_v4().to_string(),
            client,
        })
    }

    /// Delivers whatever is due, round after round, until the task is aborted.
    pub async fn run(self) {
        loop {
            match self.deliver_once().await {
                Ok(0) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "claiming record deliveries failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One round: claims due rows, sends each, records each outcome. Returns how many it tried.
    pub async fn deliver_once(&self) -> AppResult<usize> {
        let jobs = self.claim(self.dispatch.batch.min(20)).await?;
        let n = jobs.len();
        for job in jobs {
            let outcome = match self.send(&job.bundle).await {
                Ok(()) => {
                    tracing::info!(task_id = %job.row.task_id, attempt = job.row.attempts, "task delivered to the patient record");
                    Outcome::Delivered
                }
                Err(e) => self.retry(&job.row, e),
            };
            let (owner, now, id) = (self.owner.clone(), self.clock.now(), job.row.id.clone());
            let task_id = job.row.task_id.clone();
            let recorded = self
                .store
                .write(move |c| record(c, &id, &owner, &outcome, now))
                .await;
            match recorded {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(task_id = %task_id, "record delivery lease lost before its outcome was recorded")
                }
                // The lease runs out and the row is sent again: at least once, never lost.
                Err(e) => {
                    tracing::error!(task_id = %task_id, error = %e, "could not record a record delivery outcome")
                }
            }
        }
        Ok(n)
    }

    async fn claim(&self, limit: i64) -> AppResult<Vec<Job>> {
        let now = self.clock.now();
        let lease_until =
            now + Duration::from_std(self.dispatch.lease).unwrap_or(Duration::seconds(60));
        let owner = self.owner.clone();
        let (base, record_base) = (self.public_url.clone(), self.config.base_url.clone());
        // The claim is one short write; the records are read and mapped after it commits,
        // off the writer.
        let rows = self
            .store
            .write(move |c| claim_due(c, &owner, now, lease_until, limit))
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .read(move |c| {
                rows.into_iter()
                    .map(|row| {
                        let rec = super::load(c, &row.task_id)?;
                        let bundle = mapping::transaction(&rec, &base, &record_base);
                        Ok(Job { row, bundle })
                    })
                    .collect()
            })
            .await
    }

    fn retry(&self, row: &DeliveryRow, e: SendError) -> Outcome {
        let now = self.clock.now();
        let (error, refused) = match e {
            SendError::Transient(e) => (e, false),
            SendError::Refused(e) => (e, true),
        };
        let failed = refused || row.attempts >= self.dispatch.max_attempts;
        let wait = if failed {
            self.dispatch.backoff_max
        } else {
            backoff(
                row.attempts.max(1) as u32,
                self.dispatch.backoff_base,
                self.dispatch.backoff_max,
                rand::thread_rng().gen(),
            )
        };
        if failed {
            tracing::error!(task_id = %row.task_id, attempt = row.attempts, %error, "the patient record did not take the task; will keep trying");
        } else {
            tracing::warn!(task_id = %row.task_id, attempt = row.attempts, %error, "the patient record did not take the task; will retry");
        }
        Outcome::Retry {
            at: now + Duration::from_std(wait).unwrap_or(Duration::seconds(60)),
            error,
            failed,
        }
    }

    async fn send(&self, bundle: &serde_json::Value) -> Result<(), SendError> {
        let body = serde_json::to_vec(bundle)
            .map_err(|e| SendError::Refused(format!("cannot serialise the Bundle: {e}")))?;
        let mut req = self
            .client
            .post(&self.config.base_url)
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .header(reqwest::header::ACCEPT, FHIR_JSON)
            .body(body);
        if let Some(auth) = &self.config.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        // Only the status is kept: the server's answer may quote the patient's details.
        let res = req.send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                "request failed".to_string()
            };
            SendError::Transient(format!("record server {why}"))
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let msg = format!("record server answered {status}");
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(SendError::Transient(msg))
        } else {
            Err(SendError::Refused(msg))
        }
    }
}

/// Starts the sink beside the dispatcher when a record server is configured.
pub fn spawn(state: &crate::web::AppState) -> Option<tokio::task::JoinHandle<()>> {
    let config = state.config.record.clone()?;
    match Sink::new(
        state.store.clone(),
        state.clock.clone(),
        config,
        state.config.dispatch.clone(),
        state.config.public_url.clone(),
    ) {
        Ok(sink) => Some(tokio::spawn(sink.run())),
        Err(e) => {
            tracing::error!(error = %e, "record delivery is not running");
            None
        }
    }
}

/// Is this a status a caller may filter by?
pub fn parse_statuses(text: &str) -> Result<Vec<RecordStatus>, AppError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| RecordStatus::parse(s).map_err(|e| AppError::BadRequest(format!("status: {e}"))))
        .collect()
}
