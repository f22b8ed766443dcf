//! Bleepless: clinical tasks that reach a phone, escalate when nobody answers, and end up in
//! the patient record. This crate builds the service so that `main` and the tests start it
//! the same way.
pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod escalation;
pub mod fhir;
pub mod outbox;
pub mod store;
pub mod telemetry;
pub mod web;

use actix_web::{middleware, web as aweb, App, HttpServer};
use clock::SharedClock;
use config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use store::Store;

/// A started service: its address and the server future to await.
pub struct Application {
    pub addr: SocketAddr,
    pub state: web::AppState,
    server: actix_web::dev::Server,
    worker: outbox::worker::Worker,
}

/// Keys and secrets the service makes on first start and keeps in the database, so that
/// every instance (and every restart) signs with the same ones — unless the configuration
/// gives them (from a file or the environment), when no copy is kept in the database and
/// any earlier copy there is removed.
fn load_or_make_secrets(
    store: &Store,
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(outbox::push::VapidKeys, Vec<u8>), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let attempt = || {
        store.write_now(|c| {
            let vapid = match &config.push.vapid {
                Some((private, public)) => {
                    store::settings::forget(c, "vapid_keys")?;
                    format!("{private}.{public}")
                }
                None => store::settings::get_or_create(c, "vapid_keys", now, || {
                    let k = outbox::push::generate_vapid_keys();
                    format!("{}.{}", k.private_key, k.public_key)
                })?,
            };
            let secret = match &config.security.link_secret {
                Some(given) => {
                    store::settings::forget(c, "link_secret")?;
                    b64.encode(given)
                }
                None => store::settings::get_or_create(c, "link_secret", now, || {
                    use rand::RngCore;
                    let mut key = [0u8; 32];
                    rand::thread_rng().fill_bytes(&mut key);
                    b64.encode(key)
                })?,
            };
            Ok((vapid, secret))
        })
    };
    // Two instances starting together race to create them; the loser reads the winner's.
    let (vapid, secret) = attempt()
        .or_else(|_| attempt())
        .map_err(|e| e.public_message())?;
    let (private_key, public_key) = vapid
        .split_once('.')
        .ok_or("stored VAPID keys are unreadable")?;
    let secret = b64
        .decode(secret)
        .map_err(|_| "stored link secret is unreadable")?;
    Ok((
        outbox::push::VapidKeys {
            private_key: private_key.to_string(),
            public_key: public_key.to_string(),
        },
        secret,
    ))
}

/// Devices registered before the push endpoint policy (or under a wider one) are removed at
/// start, so that every device the outbox sends to has passed the policy now in force (its
/// host and address were checked when it was registered).
fn forget_refused_devices(store: &Store, push: &config::PushConfig) -> Result<(), String> {
    let policy = push.endpoint_policy();
    let removed = store
        .write_now(|c| {
            store::notifications::forget_devices_where(c, |endpoint| {
                policy.check_url(endpoint).is_err()
            })
        })
        .map_err(|e| e.public_message())?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "push devices on endpoints the policy refuses were removed"
        );
    }
    Ok(())
}

impl Application {
    /// Opens (and migrates) the database and binds the listener; nothing is served until
    /// [`Application::run`] is awaited.
    pub fn build(config: Config, clock: SharedClock) -> Result<Application, String> {
        let store = Store::open(&config.database, config.pool_size)?;
        Self::build_with_store(config, clock, store)
    }

    pub fn build_with_store(
        config: Config,
        clock: SharedClock,
        store: Store,
    ) -> Result<Application, String> {
        let (vapid, secret) = load_or_make_secrets(&store, &config, clock.now())?;
        let push = outbox::push::PushSender::new(&vapid, &config.push.subject, config.push.timeout)
            .map_err(|e| format!("push: {e}"))?
            .with_keys_ahead(config.push.keys_ahead);
        let email = match &config.email {
            Some(settings) => {
                Some(outbox::email::EmailSender::new(settings).map_err(|e| format!("email: {e}"))?)
            }
            None => None,
        };
        let links = outbox::links::LinkSigner::new(&secret);
        let app = app::App::new(store.clone(), clock.clone(), config.policy.clone());
        let state = web::AppState {
            store: store.clone(),
            clock: clock.clone(),
            config: Arc::new(config.clone()),
            app,
            links: links.clone(),
            vapid_public_key: vapid.public_key.clone(),
            changes: Arc::default(),
            request_timings: Arc::default(),
            oidc: match &config.oidc {
                Some(o) => Some(Arc::new(web::oidc::provider::Provider::new(o.clone())?)),
                None => None,
            },
        };
        let worker = outbox::worker::Worker {
            store,
            clock,
            config: config.dispatch.clone(),
            notifier: outbox::notification::Notifier {
                push,
                email,
                text: config.text.clone().map(outbox::text::TextSender::new),
                links,
                public_url: config.public_url.clone(),
                ack_seconds: config.policy.ack_seconds,
            },
            records: outbox::record::RecordServers::new(&config.record, &config.public_url)?
                .with_fhir(&config.fhir),
            owner: uuid::Uuid::new_v4().to_string(),
        };
        forget_refused_devices(&state.store, &config.push)?;
        let data = aweb::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(middleware::from_fn(web::errors::ensure_json_errors))
                .wrap(middleware::from_fn(web::guard::body_deadline))
                .wrap(middleware::from_fn(web::guard::request_log))
                .wrap(middleware::from_fn(web::guard::security_headers))
                .wrap(middleware::from_fn(web::metrics::measure))
                .configure(web::configure)
                .default_service(aweb::to(web::errors::no_route))
        })
        .workers(2)
        .bind(config.bind)
        .map_err(|e| format!("bind {}: {e}", config.bind))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| format!("bind {}: no address", config.bind))?;
        Ok(Application {
            addr,
            state,
            server: server.run(),
            worker,
        })
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves requests, runs the escalation scheduler and the outbox worker, until the
    /// server stops.
    pub async fn run(self) -> std::io::Result<()> {
        let st = &self.state;
        let scheduler = tokio::spawn(escalation::run_scheduler(
            st.app.clone(),
            st.config.schedule.clone(),
            escalation::Heartbeat::new(st.config.health.heartbeat_url.clone()),
            foresight(&self.worker.notifier.push, st.config.push.keys_ahead),
        ));
        let worker = tokio::spawn(self.worker.run(st.app.doorbell.clone()));
        let result = self.server.await;
        scheduler.abort();
        worker.abort();
        result
    }

    /// Serves requests only: the escalation tick and the outbox worker run when the caller
    /// says, through the returned [`DueWork`] (tests that move the clock drain instead of
    /// waiting for background loops).
    pub fn serve_only(self) -> (actix_web::dev::Server, DueWork) {
        let work = DueWork {
            app: self.state.app.clone(),
            schedule: self.state.config.schedule.clone(),
            sight: foresight(
                &self.worker.notifier.push,
                self.state.config.push.keys_ahead,
            ),
            worker: self.worker,
            heartbeat: escalation::Heartbeat::new(self.state.config.health.heartbeat_url.clone()),
        };
        (self.server, work)
    }
}

/// The next tick's pushes, foreseen by the scheduler, handed to the push sender, whose
/// stock makes their key agreements ahead, for at most `most` tasks (its `keys_ahead`);
/// none when it keeps no stock (`[push] keys_ahead = 0`).
pub fn foresight(push: &outbox::push::PushSender, most: usize) -> Option<escalation::Foresight> {
    let push = push.clone();
    (most > 0).then(|| escalation::Foresight {
        most,
        take: Arc::new(move |pushes| push.foresee(pushes)),
    })
}

/// One instance's due work, run on demand.
pub struct DueWork {
    app: app::App,
    schedule: cron::Schedule,
    sight: Option<escalation::Foresight>,
    worker: outbox::worker::Worker,
    heartbeat: escalation::Heartbeat,
}

impl DueWork {
    /// Runs everything due now to completion: the escalation tick (with its auditor and
    /// heartbeat) and, as the scheduler does after it, the next tick's pushes foreseen;
    /// then every delivery due (what the tick queued too). Returns how many tasks
    /// escalated and deliveries were tried.
    pub async fn drain(&self) -> error::AppResult<(usize, usize)> {
        let now = self.app.clock.now();
        let escalated = escalation::tick_and_beat(&self.app, now, &self.heartbeat).await?;
        let next = self.schedule.after(&now).next();
        escalation::look_ahead(&self.app, next, self.sight.as_ref()).await;
        let tried = self.worker.drain().await?;
        Ok((escalated, tried))
    }
}
