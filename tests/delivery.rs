//! The notification senders against real peers: a local Web Push service that verifies
//! VAPID and decrypts like a browser, and a real SMTP server in Rust (tests/support/smtp.rs).
//!
//! Run with `cargo test --test delivery`.

mod support;

use bleepless::outbox::email::{EmailError, EmailSender, SmtpSecurity, SmtpSettings, TaskEmail};
use bleepless::outbox::push::{
    generate_vapid_keys, topic_token, PushError, PushSender, Subscription, Urgency, VapidKeys,
};
use std::time::{Duration, Instant};
use support::push_service::{Fault, PushService};
use support::smtp::{free_port, parse_message, SmtpServer};

const SUBJECT: &str = "mailto:bleepless-ops@example.org";

fn sender(keys: &VapidKeys, timeout: Duration) -> PushSender {
    PushSender::new(keys, SUBJECT, timeout).expect("push sender")
}

fn payload() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "task_id": "0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e5f",
        "priority": "stat",
        "title": "STAT cannula, Ward 5 bed 12",
        "ack_url": "http://127.0.0.1:8080/a/xyz",
        "bytes": "\u{00e9}\u{2603}"
    }))
    .unwrap()
}

#[tokio::test]
async fn push_reaches_a_subscription_encrypted_and_signed() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    // Bound to our key, as pushManager.subscribe({applicationServerKey}) does.
    let sub = service.new_subscription_for_key(&keys.public_key);
    let push = sender(&keys, Duration::from_secs(5));

    let body = payload();
    push.send(&sub, &body, 120, Urgency::High, "task-42")
        .await
        .expect("delivered");

    assert_eq!(service.rejected(), vec![]);
    let got = service.received_for(&sub.endpoint);
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.endpoint, sub.endpoint);
    assert_eq!(r.payload, body, "payload must round-trip byte for byte");
    assert_eq!(r.ttl, 120);
    assert_eq!(r.urgency.as_deref(), Some("high"));
    assert_eq!(r.topic.as_deref(), Some("task-42"));
    assert_eq!(r.sub_claim, SUBJECT);
    assert_eq!(
        r.aud,
        service.origin(),
        "aud must be the endpoint origin, port included"
    );
    assert_eq!(r.vapid_key, keys.public_key);

    // Each message is encrypted afresh: a second send also decrypts.
    push.send(&sub, b"second", 0, Urgency::VeryLow, "")
        .await
        .expect("second delivery");
    let got = service.received_for(&sub.endpoint);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].payload, b"second");
    assert_eq!(got[1].ttl, 0);
    assert_eq!(got[1].urgency.as_deref(), Some("very-low"));
    assert_eq!(got[1].topic, None, "empty topic sends no Topic header");
    assert_eq!(service.rejected(), vec![]);
}

#[tokio::test]
async fn push_long_topic_is_replaced_by_a_stable_token() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    let sub = service.new_subscription();
    let push = sender(&keys, Duration::from_secs(5));
    let topic = "task:0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e5f";

    push.send(&sub, b"x", 60, Urgency::Normal, topic)
        .await
        .unwrap();
    push.send(&sub, b"y", 60, Urgency::Low, topic)
        .await
        .unwrap();

    let got = service.received();
    assert_eq!(service.rejected(), vec![]);
    assert_eq!(got.len(), 2);
    let t = got[0].topic.clone().expect("topic header");
    assert_eq!(t.len(), 32);
    assert_eq!(t, topic_token(topic));
    assert_eq!(
        got[1].topic.as_deref(),
        Some(t.as_str()),
        "same string, same topic"
    );
    assert_eq!(got[0].urgency.as_deref(), Some("normal"));
    assert_eq!(got[1].urgency.as_deref(), Some("low"));
}

#[tokio::test]
async fn push_endpoint_gone_is_reported_as_gone() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    let push = sender(&keys, Duration::from_secs(5));

    let gone = service.new_subscription();
    service.fail_always(&gone.endpoint, Fault::Status(410));
    assert_eq!(
        push.send(&gone, b"x", 60, Urgency::High, "t").await,
        Err(PushError::Gone)
    );

    let not_found = service.new_subscription();
    service.fail_always(&not_found.endpoint, Fault::Status(404));
    assert_eq!(
        push.send(&not_found, b"x", 60, Urgency::High, "t").await,
        Err(PushError::Gone)
    );

    // An unsubscribed browser: the service itself answers 404.
    let expired = service.new_subscription();
    service.unsubscribe(&expired.endpoint);
    assert_eq!(
        push.send(&expired, b"x", 60, Urgency::High, "t").await,
        Err(PushError::Gone)
    );

    assert!(service.received().is_empty());
    assert_eq!(service.request_count(), 3);
}

#[tokio::test]
async fn push_server_error_is_retryable() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    let push = sender(&keys, Duration::from_secs(5));
    let sub = service.new_subscription();

    service.fail_next(&sub.endpoint, 1, Fault::Status(500));
    service.fail_next(&sub.endpoint, 1, Fault::Status(503));
    service.fail_next(&sub.endpoint, 1, Fault::Status(429));
    for expected in ["500", "503", "429"] {
        match push.send(&sub, b"x", 60, Urgency::High, "t").await {
            Err(PushError::Retry(reason)) => {
                assert!(
                    reason.contains(expected),
                    "{reason} should mention {expected}"
                )
            }
            other => panic!("expected Retry for {expected}, got {other:?}"),
        }
    }
    // The faults were for the next three requests only: the retry gets through.
    push.send(&sub, b"after", 60, Urgency::High, "t")
        .await
        .expect("retry succeeds");
    assert_eq!(service.received().len(), 1);
    assert_eq!(service.received()[0].payload, b"after");
    assert_eq!(service.rejected(), vec![]);
}

#[tokio::test]
async fn hanging_push_endpoint_times_out_as_retryable() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    let push = sender(&keys, Duration::from_millis(300));
    let sub = service.new_subscription();
    service.fail_always(&sub.endpoint, Fault::Hang);

    let started = Instant::now();
    let result = push.send(&sub, b"x", 60, Urgency::High, "t").await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(PushError::Retry(_))), "{result:?}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "timeout not enforced: {elapsed:?}"
    );
    assert_eq!(
        service.request_count(),
        1,
        "the request did reach the service"
    );

    // The sender is still usable afterwards.
    service.clear_faults(&sub.endpoint);
    push.send(&sub, b"y", 60, Urgency::High, "t")
        .await
        .expect("delivered after hang");
}

#[tokio::test]
async fn push_to_a_closed_port_is_retryable() {
    let keys = generate_vapid_keys();
    let push = sender(&keys, Duration::from_secs(5));
    // Real browser keys, so only the connection can fail.
    let service = PushService::start().await;
    let mut sub = service.new_subscription();
    sub.endpoint = format!("http://127.0.0.1:{}/push/x", free_port());

    let result = push.send(&sub, b"x", 60, Urgency::High, "t").await;
    assert!(matches!(result, Err(PushError::Retry(_))), "{result:?}");
}

#[tokio::test]
async fn push_signed_with_another_key_is_permanent() {
    let service = PushService::start().await;
    let subscribed_with = generate_vapid_keys();
    let other = generate_vapid_keys();
    let sub = service.new_subscription_for_key(&subscribed_with.public_key);

    let result = sender(&other, Duration::from_secs(5))
        .send(&sub, b"x", 60, Urgency::High, "t")
        .await;
    assert!(matches!(result, Err(PushError::Permanent(_))), "{result:?}");
    let rejected = service.rejected();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].status, 403);
    assert!(service.received().is_empty());
}

#[tokio::test]
async fn push_with_broken_subscription_keys_is_permanent_and_sends_nothing() {
    let service = PushService::start().await;
    let keys = generate_vapid_keys();
    let push = sender(&keys, Duration::from_secs(5));
    let good = service.new_subscription();
    let broken = Subscription {
        endpoint: good.endpoint.clone(),
        p256dh: "not-a-point".into(),
        auth: good.auth.clone(),
    };
    let result = push.send(&broken, b"x", 60, Urgency::High, "t").await;
    assert!(matches!(result, Err(PushError::Permanent(_))), "{result:?}");

    let too_big = vec![b'a'; 4000];
    let result = push.send(&good, &too_big, 60, Urgency::High, "t").await;
    assert!(matches!(result, Err(PushError::Permanent(_))), "{result:?}");
    assert_eq!(service.request_count(), 0);
}

fn smtp_settings(port: u16, timeout: Duration) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        from: "Bleepless <bleepless@trust.example>".into(),
        timeout,
    }
}

fn task_email(to: &str) -> TaskEmail {
    TaskEmail {
        to: to.into(),
        message_id: "notif-0190f3a2-attempt-independent".into(),
        task_id: "0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e5f".into(),
        priority: "stat".into(),
        ward: "Ward 5".into(),
        bed: "12".into(),
        category: "cannula".into(),
        escalation_level: 0,
        ack_url: "http://127.0.0.1:8080/ack/0190f3a2?sig=q1w2e3r4t5y6u7i8o9p0&exp=1767225600"
            .into(),
        task_url: "http://127.0.0.1:8080/tasks/0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e5f".into(),
    }
}

#[tokio::test]
async fn email_arrives_with_priority_subject_both_bodies_and_ack_link() {
    let server = SmtpServer::start();
    let email = EmailSender::new(&smtp_settings(server.port(), Duration::from_secs(5))).unwrap();
    let msg = task_email("f1.doctor@trust.example");

    email.send(&msg).await.expect("sent");

    let raw = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(raw.len(), 1);
    let m = parse_message(&raw[0]);
    assert_eq!(
        m.header("Subject"),
        Some("[STAT] Bleepless task: cannula, Ward 5 bed 12")
    );
    assert_eq!(
        m.header("Message-ID"),
        Some("<notif-0190f3a2-attempt-independent@trust.example>")
    );
    assert_eq!(m.header("To"), Some("f1.doctor@trust.example"));
    assert!(m
        .header("From")
        .unwrap()
        .contains("bleepless@trust.example"));
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert!(m
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));

    let text = m.part("text/plain").expect("plain text part");
    let html = m.part("text/html").expect("html part");
    assert!(
        text.contains(&msg.ack_url),
        "text body lacks the ack link:\n{text}"
    );
    assert!(text.contains(&msg.task_url));
    assert!(text.contains("STAT"));
    assert!(text.contains("Ward 5 bed 12"));
    // askama escapes `&` as `&#38;` in HTML; browsers read it back as `&`.
    let ack_in_html = msg.ack_url.replace('&', "&#38;");
    assert!(
        html.contains(&format!("href=\"{ack_in_html}\"")),
        "html body lacks the ack link:\n{html}"
    );
    assert!(html.contains(&msg.task_url));
    assert!(html.contains("cannula"));
}

#[tokio::test]
async fn escalated_email_says_so_in_subject_and_body() {
    let server = SmtpServer::start();
    let email = EmailSender::new(&smtp_settings(server.port(), Duration::from_secs(5))).unwrap();
    let mut msg = task_email("registrar@trust.example");
    msg.priority = "urgent".into();
    msg.escalation_level = 2;
    msg.category = "review <deteriorating> & NEWS 7".into();

    email.send(&msg).await.expect("sent");

    let raw = server.wait_for_messages(1, Duration::from_secs(5)).await;
    let m = parse_message(&raw[0]);
    assert_eq!(
        m.header("Subject"),
        Some("[URGENT] [ESCALATED level 2] Bleepless task: review <deteriorating> & NEWS 7, Ward 5 bed 12")
    );
    assert_eq!(m.header("Importance"), Some("high"));
    assert!(m.part("text/plain").unwrap().contains("ESCALATED level 2"));
    let html = m.part("text/html").unwrap();
    assert!(html.contains("ESCALATED level 2"));
    assert!(!html.contains("<deteriorating>"), "HTML must be escaped");
}

#[tokio::test]
async fn refused_recipient_is_permanent_failure() {
    let server = SmtpServer::start_with_refusals();
    let email = EmailSender::new(&smtp_settings(server.port(), Duration::from_secs(5))).unwrap();

    let result = email.send(&task_email("refuse.me@trust.example")).await;
    match result {
        Err(EmailError::Permanent(reason)) => assert!(reason.contains("550"), "{reason}"),
        other => panic!("expected Permanent, got {other:?}"),
    }

    let result = email.send(&task_email("tempfail.me@trust.example")).await;
    assert!(
        matches!(result, Err(EmailError::Retry(_))),
        "451 is transient: {result:?}"
    );

    // The same server still takes mail for others.
    email
        .send(&task_email("ok@trust.example"))
        .await
        .expect("accepted");
    let raw = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert_eq!(raw.len(), 1);
    assert_eq!(
        parse_message(&raw[0]).header("To"),
        Some("ok@trust.example")
    );
}

#[tokio::test]
async fn bad_recipient_address_is_permanent_failure() {
    let email = EmailSender::new(&smtp_settings(free_port(), Duration::from_secs(1))).unwrap();
    let result = email.send(&task_email("not an address")).await;
    assert!(
        matches!(result, Err(EmailError::Permanent(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn smtp_down_is_retryable() {
    let email = EmailSender::new(&smtp_settings(free_port(), Duration::from_secs(2))).unwrap();
    let started = Instant::now();
    let result = email.send(&task_email("f1.doctor@trust.example")).await;
    assert!(matches!(result, Err(EmailError::Retry(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[test]
fn sender_settings_are_checked() {
    let mut s = smtp_settings(25, Duration::from_secs(1));
    s.from = "no at sign".into();
    assert!(EmailSender::new(&s).is_err());
    let mut s = smtp_settings(25, Duration::from_secs(1));
    s.username = Some("user".into());
    assert!(EmailSender::new(&s).is_err(), "username without password");
}

/// The test SMTP peer speaks real SMTP: a client's doubled leading dots are undone and the
/// message ends only at a line holding one dot.
#[test]
fn the_test_smtp_server_undoes_dot_stuffing_and_ends_data_at_a_lone_dot() {
    use std::io::{BufRead, BufReader, Write};
    let server = SmtpServer::start_with_refusals();
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut said = |line: &str| -> String {
        if !line.is_empty() {
            writer.write_all(line.as_bytes()).unwrap();
        }
        let mut reply = String::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).unwrap();
            reply.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    };
    assert!(said("").starts_with("220"));
    assert!(said("EHLO client.example\r\n").starts_with("250"));
    assert!(
        said("RCPT TO:<a@b.example>\r\n").starts_with("503"),
        "MAIL first"
    );
    assert!(said("MAIL FROM:<bleepless@trust.example>\r\n").starts_with("250"));
    assert!(said("RCPT TO:<refuse.me@trust.example>\r\n").starts_with("550"));
    assert!(said("RCPT TO:<ok@trust.example>\r\n").starts_with("250"));
    assert!(said("DATA\r\n").starts_with("354"));
    let reply = said("Subject: dots\r\n\r\n..leading dot\r\n...\r\n.. \r\nlast\r\n.\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(said("QUIT\r\n").starts_with("221"));
    let got = server.messages();
    assert_eq!(
        got,
        ["Subject: dots\r\n\r\n.leading dot\r\n..\r\n. \r\nlast\r\n"]
    );
}
