//! Email sender: one task notification per message over async SMTP (lettre), with a
//! plain-text and an HTML body (multipart/alternative) rendered from the askama templates
//! `templates/email/task.txt` and `templates/email/task.html`.
//!
//! Emails leave the hospital network, so they carry no patient name or NHS number:
//! [`TaskEmail`] has no field for either, only where and what, and links back to the service.

use askama::Template;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::time::Duration;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS (a relay on localhost or a test server).
    Plain,
    /// Plain connection upgraded with STARTTLS, required (usually port 587).
    StartTls,
    /// TLS from the first byte (implicit TLS, usually port 465).
    Tls,
}

#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sender, e.g. `Bleepless <bleepless@trust.nhs.uk>`.
    pub from: String,
    /// Bound on each SMTP network operation; a whole send is bounded by three times this.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Outcome of a failed delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Connection refused or lost, timeout, 4xx transient reply: try again later.
    #[error("email delivery failed, retry later: {0}")]
    Retry(String),
    /// 5xx permanent reply (e.g. 550 mailbox unavailable), malformed address or message.
    #[error("email delivery failed permanently: {0}")]
    Permanent(String),
}

/// One task notification by email. Deliberately holds no patient identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEmail {
    pub to: String,
    /// Stable per notification (the same on every retry) so receivers can drop repeats.
    /// Used as the `Message-ID`: angle brackets are added, and `@` plus the sender's domain
    /// when it has no `@`.
    pub message_id: String,
    pub task_id: String,
    /// `stat`, `asap`, `urgent` or `routine`.
    pub priority: String,
    pub ward: String,
    pub bed: String,
    pub category: String,
    /// 0 for the first notification; N after the Nth escalation.
    pub escalation_level: i32,
    /// One-click acknowledge link.
    pub ack_url: String,
    pub task_url: String,
}

#[derive(Template)]
#[template(path = "email/task.txt")]
struct TaskText<'a> {
    priority_label: &'a str,
    escalated: bool,
    escalation_level: i32,
    category: &'a str,
    location: &'a str,
    task_id: &'a str,
    ack_url: &'a str,
    task_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/task.html")]
struct TaskHtml<'a> {
    subject: &'a str,
    priority_label: &'a str,
    badge_colour: &'a str,
    escalated: bool,
    escalation_level: i32,
    category: &'a str,
    location: &'a str,
    task_id: &'a str,
    ack_url: &'a str,
    task_url: &'a str,
}

/// Sends [`TaskEmail`]s through one SMTP server.
#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    pub fn new(settings: &SmtpSettings) -> Result<EmailSender, String> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("SMTP from address {:?}: {e}", settings.from))?;
        if settings.host.trim().is_empty() {
            return Err("SMTP host is empty".to_string());
        }
        if settings.timeout.is_zero() {
            return Err("SMTP timeout must be greater than zero".to_string());
        }
        let host = settings.host.trim();
        let builder = match settings.security {
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("SMTP STARTTLS setup for {host}: {e}"))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("SMTP TLS setup for {host}: {e}"))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (None, None) => {}
            _ => return Err("SMTP username and password must be given together".to_string()),
        }
        Ok(EmailSender {
            transport: builder.build(),
            from,
            timeout: settings.timeout,
        })
    }

    /// One delivery attempt.
    pub async fn send(&self, msg: &TaskEmail) -> Result<(), EmailError> {
        let message = self.build_message(msg)?;
        let whole = self.timeout.saturating_mul(3);
        match tokio::time::timeout(whole, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(EmailError::Retry(format!(
                "SMTP send did not finish within {} ms",
                whole.as_millis()
            ))),
        }
    }

    /// The message as it would be sent (also used by tests of the rendering).
    pub fn build_message(&self, msg: &TaskEmail) -> Result<Message, EmailError> {
        let to: Mailbox = msg.to.parse().map_err(|e| {
            EmailError::Permanent(format!("bad recipient address {:?}: {e}", msg.to))
        })?;
        let subject = subject(msg);
        let (text, html) = render_bodies(msg, &subject)?;

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id(&msg.message_id, self.from.email.domain())))
            .raw_header(raw_header("Auto-Submitted", "auto-generated"))
            .raw_header(raw_header("X-Auto-Response-Suppress", "All"));
        if is_high_priority(&msg.priority) || msg.escalation_level > 0 {
            builder = builder
                .raw_header(raw_header("X-Priority", "1"))
                .raw_header(raw_header("Importance", "high"));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| EmailError::Permanent(format!("cannot build email: {e}")))
    }
}

/// `[STAT] Bleepless task: cannula, Ward 5 bed 12`; after escalation
/// `[STAT] [ESCALATED level 2] Bleepless task: cannula, Ward 5 bed 12`.
pub fn subject(msg: &TaskEmail) -> String {
    let mut s = format!("[{}] ", priority_label(&msg.priority));
    if msg.escalation_level > 0 {
        s.push_str(&format!("[ESCALATED level {}] ", msg.escalation_level));
    }
    s.push_str(&format!(
        "Bleepless task: {}, {}",
        one_line(&msg.category),
        location(msg)
    ));
    s
}

fn render_bodies(msg: &TaskEmail, subject: &str) -> Result<(String, String), EmailError> {
    let label = priority_label(&msg.priority);
    let location = location(msg);
    let escalated = msg.escalation_level > 0;
    let text = TaskText {
        priority_label: &label,
        escalated,
        escalation_level: msg.escalation_level,
        category: &msg.category,
        location: &location,
        task_id: &msg.task_id,
        ack_url: &msg.ack_url,
        task_url: &msg.task_url,
    }
    .render()
    .map_err(|e| EmailError::Permanent(format!("render text body: {e}")))?;
    let html = TaskHtml {
        subject,
        priority_label: &label,
        badge_colour: badge_colour(&msg.priority),
        escalated,
        escalation_level: msg.escalation_level,
        category: &msg.category,
        location: &location,
        task_id: &msg.task_id,
        ack_url: &msg.ack_url,
        task_url: &msg.task_url,
    }
    .render()
    .map_err(|e| EmailError::Permanent(format!("render HTML body: {e}")))?;
    Ok((text, html))
}

fn priority_label(priority: &str) -> String {
    let p = one_line(priority).trim().to_ascii_uppercase();
    if p.is_empty() {
        "TASK".to_string()
    } else {
        p
    }
}

fn is_high_priority(priority: &str) -> bool {
    matches!(
        priority.trim().to_ascii_lowercase().as_str(),
        "stat" | "asap" | "urgent"
    )
}

fn badge_colour(priority: &str) -> &'static str {
    match priority.trim().to_ascii_lowercase().as_str() {
        "stat" => "#b00020",
        "asap" => "#d5281b",
        "urgent" => "#ed8b00",
        _ => "#425563",
    }
}

fn location(msg: &TaskEmail) -> String {
    let ward = one_line(&msg.ward);
    let bed = one_line(&msg.bed);
    match (ward.trim().is_empty(), bed.trim().is_empty()) {
        (false, false) => format!("{} bed {}", ward.trim(), bed.trim()),
        (false, true) => ward.trim().to_string(),
        (true, false) => format!("bed {}", bed.trim()),
        (true, true) => "location not given".to_string(),
    }
}

/// Collapses line breaks and other control characters so a field cannot break a header.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `<id>` as RFC 5322 wants it: `<left@right>`.
fn message_id(id: &str, from_domain: &str) -> String {
    let id: String = one_line(id)
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if id.contains('@') {
        format!("<{id}>")
    } else {
        format!("<{id}@{from_domain}>")
    }
}

fn raw_header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

fn classify(e: &lettre::transport::smtp::Error) -> EmailError {
    if e.is_permanent() {
        EmailError::Permanent(format!("SMTP server refused: {e}"))
    } else if e.is_timeout() {
        EmailError::Retry(format!("SMTP timeout: {e}"))
    } else {
        // 4xx transient replies, connection refused or dropped, TLS handshake failures.
        EmailError::Retry(format!("SMTP: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> TaskEmail {
        TaskEmail {
            to: "f1.doctor@example.org".into(),
            message_id: "notif-1".into(),
            task_id: "T-1".into(),
            priority: "stat".into(),
            ward: "Ward 5".into(),
            bed: "12".into(),
            category: "cannula".into(),
            escalation_level: 0,
            ack_url: "https://bleep.example/ack/abc?sig=1&x=2".into(),
            task_url: "https://bleep.example/tasks/T-1".into(),
        }
    }

    #[test]
    fn subject_leads_with_priority_and_marks_escalation() {
        let mut m = email();
        assert_eq!(subject(&m), "[STAT] Bleepless task: cannula, Ward 5 bed 12");
        m.escalation_level = 2;
        m.priority = "routine".into();
        assert_eq!(
            subject(&m),
            "[ROUTINE] [ESCALATED level 2] Bleepless task: cannula, Ward 5 bed 12"
        );
        m.category = "bloods\r\nBcc: evil@example.org".into();
        assert!(!subject(&m).contains('\n'));
    }

    #[test]
    fn bodies_carry_the_links_and_html_is_escaped() {
        let mut m = email();
        m.category = "<script>".into();
        let (text, html) = render_bodies(&m, &subject(&m)).unwrap();
        assert!(text.contains("https://bleep.example/ack/abc?sig=1&x=2"));
        assert!(text.contains("<script>"));
        // askama escapes `&` as `&#38;`, valid in an HTML attribute.
        assert!(html.contains("href=\"https://bleep.example/ack/abc?sig=1&#38;x=2\""));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn message_id_is_bracketed_and_qualified() {
        assert_eq!(message_id("n-1", "trust.example"), "<n-1@trust.example>");
        assert_eq!(message_id("<n-1@x.y>", "trust.example"), "<n-1@x.y>");
    }
}
