//! What the test peers share: their HTTP server on a thread of its own.
use actix_web::{dev::ServerHandle, web, App, HttpServer};
use std::net::SocketAddr;

/// Runs a test peer's HTTP server (actix-web) on its own thread with its own runtime, on
/// 127.0.0.1 and a free port, so that it works under `#[tokio::test]` and
/// `#[actix_web::test]` alike. Returns its address and the handle that stops it.
pub async fn serve_on_thread<C>(
    name: &str,
    workers: usize,
    configure: C,
) -> (SocketAddr, ServerHandle)
where
    C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || App::new().configure(configure.clone()))
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .bind(("127.0.0.1", 0))
                    .expect("bind a test peer");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle()))
                    .expect("report the address");
                let _ = server.await;
            });
        })
        .expect("spawn a test peer's thread");
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{name} did not start"))
    })
    .await
    .expect("join")
}
