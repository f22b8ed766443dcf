//! Bleepless: clinical tasks that reach a phone, escalate when nobody answers, and end up in
//! the patient record. This crate builds the service so that `main` and the tests start it
//! the same way.
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod notify;
pub mod store;
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
        let state = web::AppState {
            store,
            clock,
            config: Arc::new(config.clone()),
        };
        let data = aweb::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(middleware::from_fn(web::errors::ensure_json_errors))
                // The path only: query strings may carry patient identifiers.
                .wrap(
                    middleware::Logger::new("%s %{METHOD}xi %U %Dms")
                        .custom_request_replace("METHOD", |req| req.method().to_string()),
                )
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
        })
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
