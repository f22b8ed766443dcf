//! Static files, embedded in the binary: no build step and nothing to deploy beside it.
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{name}", web::get().to(asset))
        .route("/static/vendor/{name}", web::get().to(vendored))
        // Where the NHS.UK frontend CSS looks for its icons.
        .route("/assets/images/{name}", web::get().to(vendored))
        .route("/sw.js", web::get().to(service_worker))
        .route("/manifest.webmanifest", web::get().to(manifest));
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/app.css"),
    ),
    (
        "ack.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/ack.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/live.js"),
    ),
    (
        "actions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/actions.js"),
    ),
    (
        "me.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/me.js"),
    ),
    (
        "task-form.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../static/task-form.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../../static/icon.svg"),
    ),
    (
        "icon-192.png",
        "image/png",
        include_bytes!("../../../static/icon-192.png"),
    ),
    (
        "icon-512.png",
        "image/png",
        include_bytes!("../../../static/icon-512.png"),
    ),
];

/// NHS.UK frontend, copied as published (static/vendor/README.md says from where).
const VENDORED: &[(&str, &str, &[u8])] = &[
    (
        "nhsuk-frontend-10.6.1.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../static/vendor/nhsuk-frontend-10.6.1.min.css"),
    ),
    (
        "nhsuk-icon-arrow-down.svg",
        "image/svg+xml",
        include_bytes!("../../../static/vendor/nhsuk-icon-arrow-down.svg"),
    ),
    (
        "nhsuk-icon-arrow-up.svg",
        "image/svg+xml",
        include_bytes!("../../../static/vendor/nhsuk-icon-arrow-up.svg"),
    ),
    (
        "nhsuk-icon-arrow-up-down.svg",
        "image/svg+xml",
        include_bytes!("../../../static/vendor/nhsuk-icon-arrow-up-down.svg"),
    ),
    (
        "nhsuk-icon-cross.svg",
        "image/svg+xml",
        include_bytes!("../../../static/vendor/nhsuk-icon-cross.svg"),
    ),
];

async fn asset(name: web::Path<String>) -> HttpResponse {
    serve(FILES, &name)
}

async fn vendored(name: web::Path<String>) -> HttpResponse {
    serve(VENDORED, &name)
}

fn serve(files: &'static [(&str, &str, &[u8])], name: &str) -> HttpResponse {
    match files.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => HttpResponse::Ok()
            .content_type(*ct)
            .insert_header(("Cache-Control", "public, max-age=300"))
            .body(*body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no static file {name}")),
    }
}

/// Served from the root so that it controls every page.
async fn service_worker() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("Service-Worker-Allowed", "/"))
        .body(&include_bytes!("../../../static/sw.js")[..])
}

async fn manifest() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/manifest+json")
        .body(&include_bytes!("../../../static/manifest.webmanifest")[..])
}
