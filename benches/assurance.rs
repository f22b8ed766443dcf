//! Delivery assurance benchmark, on the real service (release build, its own loops):
//!
//! 1. Text fallback: N people each hold a stat task whose push went out and was never shown;
//!    the clock moves past the fallback time, and the time is taken until the last of the N
//!    texts has reached a local provider (the tests' GOV.UK Notify, which checks each
//!    request's signed token and body as Notify does).
//! 2. Receipts: phones report the pushes they showed, over HTTP from W keep-alive clients,
//!    several devices per push; the rate of receipts recorded, and their latency.
//!
//!   cargo bench --bench assurance -- [sqlite|postgres|both] [--texts N] [--receipts N] [--workers N]
mod common;
// The tests' local GOV.UK Notify, and what it needs.
#[path = "../tests/support/peer.rs"]
mod peer;
#[path = "../tests/support/text_provider.rs"]
mod text_provider;

use bleepless::app::tasks::raise;
use bleepless::app::App;
use bleepless::clock::{Clock, ManualClock};
use bleepless::config::Config;
use bleepless::domain::delivery::TextAfter;
use bleepless::domain::{Category, NewTask, NhsNumber, Priority};
use bleepless::outbox::links::{LinkSigner, Purpose};
use bleepless::outbox::text::{NotifyKey, Provider, TextConfig};
use bleepless::store::schema::outbox;
use bleepless::store::{directory, notifications, Store};
use bleepless::Application;
use common::{summary, BenchDb};
use diesel::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use text_provider::TextProvider;

struct Args {
    backends: Vec<String>,
    texts: usize,
    receipts: usize,
    workers: usize,
}

fn args() -> Args {
    let mut a = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        texts: 1000,
        receipts: 20_000,
        workers: 32,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "sqlite" | "postgres" => a.backends = vec![argv[i].clone()],
            flag @ ("--texts" | "--receipts" | "--workers") => {
                let n = common::flag_number(&argv, i, 1..=1_000_000);
                match flag {
                    "--texts" => a.texts = n.min(1000),
                    "--receipts" => a.receipts = n,
                    _ => a.workers = n,
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    a
}

const SECRET: &[u8] = b"bench link secret, not a real one";

fn after() -> TextAfter {
    TextAfter {
        stat: Some(60),
        ..TextAfter::default()
    }
}

/// N clinicians with mobiles, each with a stat task whose push was sent and not shown.
fn setup(store: &Store, clock: &ManualClock, n: usize) -> Vec<String> {
    let now = clock.now();
    let policy = bleepless::domain::task::Policy {
        text_after: after(),
        ..Default::default()
    };
    let app = App::new(store.clone(), Arc::new(clock.clone()), policy);
    let nurse = store
        .write_now(|c| {
            directory::add_ward(c, "Ward 5", now)?;
            Ok(directory::add_staff(c, "Sister Bench", None, "coordinator", now)?.0)
        })
        .unwrap();
    for i in 0..n {
        let nurse = nurse.clone();
        app.run_now(move |c, ctx| {
            let (doctor, _) =
                directory::add_staff(c, &format!("Dr Bench {i}"), None, "clinician", now)?;
            notifications::set_mobile(c, &doctor.id, Some(&format!("+447700900{i:03}")))?;
            let task = NewTask {
                nhs_number: NhsNumber::parse("9990000018").unwrap(),
                ward: "Ward 5".into(),
                bed: format!("{}", i % 30 + 1),
                category: Category::parse("bloods").unwrap(),
                description: "Bloods before the ward round".into(),
                priority: Priority::Stat,
                news2: None,
                assignee: doctor.id.clone(),
            };
            raise(c, ctx, &nurse, task)
        })
        .unwrap();
    }
    // The pushes went out (and no phone said it showed one).
    store
        .write_now(|c| {
            diesel::update(outbox::table.filter(outbox::kind.eq("push")))
                .set(outbox::status.eq("sent"))
                .execute(c)?;
            Ok(outbox::table
                .filter(outbox::kind.eq("push"))
                .select(outbox::id)
                .load::<String>(c)?)
        })
        .unwrap()
}

async fn receipts(base: &str, codes: Vec<String>, workers: usize) -> (f64, Vec<Duration>) {
    let client = reqwest::Client::new();
    let queue = Arc::new(std::sync::Mutex::new(codes));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (client, queue, url) = (
            client.clone(),
            queue.clone(),
            format!("{base}/api/v1/receipts"),
        );
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let Some(code) = queue.lock().unwrap().pop() else {
                    break;
                };
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .json(&serde_json::json!({ "receipt": code }))
                    .send()
                    .await
                    .expect("receipt request");
                assert_eq!(
                    res.status(),
                    201,
                    "{}",
                    res.text().await.unwrap_or_default()
                );
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    (started.elapsed().as_secs_f64(), all)
}

async fn run(backend: &str, a: &Args) {
    let db = BenchDb::new(backend);
    let provider = TextProvider::start().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let store = Store::open(&db.url, 8).unwrap();
    let setup_started = Instant::now();
    let pushes = setup(&store, &clock, a.texts);
    let setup_secs = setup_started.elapsed().as_secs_f64();

    let mut config = Config::for_tests(db.url.clone());
    config.security.link_secret = Some(SECRET.to_vec());
    config.policy.text_after = after();
    config.text = Some(TextConfig {
        provider: Provider::Notify {
            key: NotifyKey::parse(&text_provider::notify_api_key()).unwrap(),
            template_id: text_provider::TEMPLATE_ID.into(),
        },
        base_url: provider.base_url(),
        timeout: Duration::from_secs(10),
        after: after(),
    });
    let service = Application::build_with_store(config, Arc::new(clock.clone()), store).unwrap();
    let base = format!("http://{}", service.addr);
    tokio::spawn(service.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(provider.sent().is_empty(), "no text before it is due");

    // 1. Every text falls due at once.
    clock.advance(chrono::Duration::seconds(60));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    while provider.sent().len() < a.texts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let texts_secs = started.elapsed().as_secs_f64();
    let sent = provider.sent().len();

    // 2. Receipts: several devices per push (the first per person and task also writes the
    //    task's "seen" event).
    let signer = LinkSigner::new(SECRET);
    let mut codes = Vec::with_capacity(a.receipts);
    for i in 0..a.receipts {
        let device = uuid::Uuid::new_v4().to_string();
        let push = &pushes[i % pushes.len()];
        codes.push(signer.seal(Purpose::Receipt, &[push, &device]).unwrap());
    }
    let (secs, lat) = receipts(&base, codes, a.workers).await;
    let n = lat.len();
    let (p50, p99, max) = summary(lat);
    println!("\n## {backend}: delivery assurance");
    println!("| measure | value |\n|---|---|");
    println!(
        "| setup: {} clinicians, each with a stat task and an unseen push | {setup_secs:.1} s |",
        a.texts
    );
    println!(
        "| text fallbacks due at once → all at the provider (Notify, JWT checked) | {sent} of {} in {texts_secs:.2} s |",
        a.texts
    );
    println!(
        "| receipts recorded over HTTP, {} clients | {n} in {secs:.2} s = {:.0}/s |",
        a.workers,
        n as f64 / secs
    );
    println!("| receipt latency p50 / p99 / max | {p50:.1} / {p99:.1} / {max:.1} ms |");
}

#[tokio::main]
async fn main() {
    let a = args();
    for backend in a.backends.clone() {
        run(&backend, &a).await;
    }
}
