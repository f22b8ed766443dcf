//! The record outbox: a completed or cancelled task is queued in the same transaction as the
//! change, then sent to the trust's FHIR server as a transaction Bundle by a loop that claims
//! rows with a lease (as the notification dispatcher does), so several instances can share
//! one database. Failures are retried with back-off; a row that keeps failing is marked
//! `failed` but is still retried, at the longest back-off, until it is delivered.
use super::mapping::{self, FHIR_JSON};
use crate::clock::SharedClock;
use crate::config::{DispatchConfig, RecordConfig};
use crate::domain::notification::backoff;
use crate::error::AppResult;
use crate::store::records::{claim_due, record, DeliveryRow, Outcome};
use crate::store::Store;
use chrono::Duration;
use rand::Rng;

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
pub fn spawn(
    store: Store,
    clock: SharedClock,
    config: Option<RecordConfig>,
    dispatch: DispatchConfig,
    public_url: String,
) -> Option<tokio::task::JoinHandle<()>> {
    match Sink::new(store, clock, config?, dispatch, public_url) {
        Ok(sink) => Some(tokio::spawn(sink.run())),
        Err(e) => {
            tracing::error!(error = %e, "record delivery is not running");
            None
        }
    }
}
