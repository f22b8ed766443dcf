//! The record kind: a version of a task sent to a patient-record FHIR server as a
//! transaction Bundle (conditional updates, so a repeat changes nothing). A task is read
//! and mapped when its row is claimed, so the record gets the task as it is then; after a
//! send, a task that has changed meanwhile is sent again, so the record ends up holding
//! what Bleepless holds even when two sends of one task overtake each other.
use crate::domain::delivery::Failure;
use crate::fhir::mapping::{self, FHIR_JSON};
use crate::fhir::TaskRecord;
use std::collections::HashMap;
use std::time::Duration;

/// Where completed and cancelled tasks are delivered as FHIR R4 transaction Bundles.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// What the outbox calls this server (`record` for the one under `[record]`).
    pub name: String,
    /// The FHIR server's base URL, e.g. `https://epr.example-trust.nhs.uk/fhir`.
    pub base_url: String,
    /// The whole `Authorization` header value to send, e.g. `Bearer abc…`.
    pub authorization: Option<String>,
    pub timeout: Duration,
}

/// How tasks are written as FHIR resources.
#[derive(Debug, Clone)]
pub struct FhirConfig {
    /// The base of our code system and identifier system URIs
    /// (`{system_base}/fhir/CodeSystem/task-category`, `{system_base}/fhir/Id/task`, …):
    /// canonical names that must not change when the service moves host. Defaults to
    /// `public_url`.
    pub system_base: String,
    /// Also give the patient in delivered Bundles as a conditional reference
    /// (`Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|…`) that the record server
    /// resolves to its own Patient.
    pub conditional_patient_reference: bool,
}

/// One record server.
struct Server {
    config: RecordConfig,
    client: reqwest::Client,
}

/// Every configured record server, by name.
pub struct RecordServers {
    servers: HashMap<String, Server>,
    /// Our public address: the base of our identifier and code system URIs, unless
    /// [`RecordServers::with_fhir`] says otherwise.
    public_url: String,
    /// Give the patient as a conditional reference too.
    conditional_patient: bool,
}

impl RecordServers {
    pub fn new(configs: &[RecordConfig], public_url: &str) -> Result<RecordServers, String> {
        let mut servers = HashMap::new();
        for config in configs {
            let client = reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(|e| {
                    format!("record {}: cannot build the HTTP client: {e}", config.name)
                })?;
            let config = config.clone();
            servers.insert(config.name.clone(), Server { config, client });
        }
        Ok(RecordServers {
            servers,
            public_url: public_url.to_string(),
            conditional_patient: false,
        })
    }

    /// Names code and identifier systems under `[fhir] system_base`, and gives the patient
    /// as a conditional reference when `[fhir] conditional_patient_reference` says so.
    pub fn with_fhir(mut self, fhir: &FhirConfig) -> RecordServers {
        self.public_url = fhir.system_base.clone();
        self.conditional_patient = fhir.conditional_patient_reference;
        self
    }

    /// The Bundle for one server, or why there is none.
    pub fn bundle(&self, destination: &str, rec: &TaskRecord) -> Result<serde_json::Value, String> {
        let server = self.servers.get(destination).ok_or_else(|| {
            format!("no record server named {destination:?} is configured any more")
        })?;
        Ok(mapping::transaction_with(
            rec,
            &self.public_url,
            &server.config.base_url,
            self.conditional_patient,
        ))
    }

    /// One attempt to send a Bundle to a server.
    pub async fn send(&self, destination: &str, bundle: &serde_json::Value) -> Result<(), Failure> {
        let server = self.servers.get(destination).ok_or_else(|| {
            Failure::Refused(format!(
                "no record server named {destination:?} is configured"
            ))
        })?;
        let body = serde_json::to_vec(bundle)
            .map_err(|e| Failure::Refused(format!("cannot serialise the Bundle: {e}")))?;
        let mut req = server
            .client
            .post(&server.config.base_url)
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .header(reqwest::header::ACCEPT, FHIR_JSON)
            .body(body);
        if let Some(auth) = &server.config.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        // Only the status is kept: the server's answer may quote the patient's details.
        let res = req.send().await.map_err(|e| {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            Failure::Transient(format!("record server {why}"))
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let msg = format!("record server answered {status}");
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(Failure::Transient(msg))
        } else {
            Err(Failure::Refused(msg))
        }
    }
}
