//! A real SMTP server for tests: aiosmtpd (PyPI `aiosmtpd`, Debian `python3-aiosmtpd`) run
//! as a child process, storing what it accepts in a Maildir the test reads back.
//!
//! - [`SmtpServer::start`] runs the stock `python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c
//!   aiosmtpd.handlers.Mailbox DIR`.
//! - [`SmtpServer::start_with_refusals`] runs the same CLI with a small handler (below, written
//!   to a temp dir) that answers RCPT for local parts starting with `refuse` with
//!   `550 mailbox unavailable` and for `tempfail` with `451`, and stores the rest.
//!
//! The child is killed when the value drops. [`parse_message`] decodes the raw messages
//! (headers, multipart parts, quoted-printable/base64) well enough for assertions.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REFUSING_HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox


class RefusingMailbox(Mailbox):
    """Mailbox that refuses some recipients at RCPT time, like a real MTA would."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("tempfail"):
            return "451 4.3.0 mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

pub struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// The stock aiosmtpd Maildir server: accepts every recipient.
    pub fn start() -> SmtpServer {
        Self::spawn("aiosmtpd.handlers.Mailbox", false)
    }

    /// Refuses recipients `refuse…@…` (550) and `tempfail…@…` (451); stores the rest.
    pub fn start_with_refusals() -> SmtpServer {
        Self::spawn("bleepless_test_smtp.RefusingMailbox", true)
    }

    fn spawn(handler: &str, custom: bool) -> SmtpServer {
        require_aiosmtpd();
        let dir = tempfile::tempdir().expect("temp dir for SMTP server");
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        if custom {
            std::fs::write(dir.path().join("bleepless_test_smtp.py"), REFUSING_HANDLER)
                .expect("write SMTP handler script");
        }
        // A few tries in case another process takes the port between probing and binding.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("SMTP log file");
            let mut cmd = Command::new("python3");
            cmd.arg("-m")
                .arg("aiosmtpd")
                .arg("-n")
                .arg("-l")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-c")
                .arg(handler)
                .arg(&maildir)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log handle"))
                .stderr(log_file);
            if custom {
                cmd.env("PYTHONPATH", dir.path());
            }
            let mut child = cmd.spawn().expect("run python3 -m aiosmtpd");
            if wait_until_listening(&mut child, port, Duration::from_secs(15)) {
                return SmtpServer {
                    child,
                    port,
                    maildir,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("aiosmtpd did not start listening; its output:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Raw RFC 5322 messages stored so far (Maildir `new/` and `cur/`), oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                files.push((modified, entry.path()));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Waits until at least `n` messages are stored, or panics after `timeout`.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SMTP server: expected {n} message(s) within {timeout:?}, got {}; log:\n{}",
                    got.len(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn maildir(&self) -> &Path {
        &self.maildir
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        panic!(
            "these tests need the aiosmtpd SMTP server for python3: install it with \
             `pip install aiosmtpd` (or `apt-get install python3-aiosmtpd`)"
        );
    }
}

/// A port that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("probe a free port")
}

fn wait_until_listening(child: &mut Child, port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A decoded message: unfolded headers and leaf body parts.
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub struct Part {
    /// Lower-case media type without parameters, e.g. `text/plain`.
    pub content_type: String,
    /// The decoded body.
    pub body: String,
}

impl ParsedMessage {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first leaf part of that media type.
    pub fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body.as_str())
    }
}

/// Parses a raw message; handles nested multiparts and 7bit/8bit, quoted-printable and
/// base64 transfer encodings. Enough for tests, not a general MIME parser.
pub fn parse_message(raw: &str) -> ParsedMessage {
    let raw = raw.replace("\r\n", "\n");
    let (headers, body) = split_entity(&raw);
    let mut parts = Vec::new();
    collect_parts(&headers, body, &mut parts);
    ParsedMessage { headers, parts }
}

fn split_entity(entity: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match entity.find("\n\n") {
        Some(i) => (&entity[..i], &entity[i + 2..]),
        None => (entity, ""),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn collect_parts(headers: &[(String, String)], body: &str, out: &mut Vec<Part>) {
    let content_type = find_header(headers, "Content-Type").unwrap_or("text/plain");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") {
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .map(|b| b.trim_matches('"').to_string())
            .expect("multipart without boundary");
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
            let chunk = chunk.strip_suffix('\n').unwrap_or(chunk);
            let (h, b) = split_entity(chunk);
            collect_parts(&h, b, out);
        }
    } else {
        let encoding = find_header(headers, "Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let decoded = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                use base64::Engine as _;
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body");
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => body.to_string(),
        };
        out.push(Part {
            content_type: media,
            body: decoded,
        });
    }
}

fn decode_quoted_printable(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2; // soft line break
                continue;
            }
            if let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2)) {
                if let Ok(v) = u8::from_str_radix(&format!("{}{}", *h as char, *l as char), 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
