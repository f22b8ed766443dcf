//! A real SMTP server for tests, in Rust: it speaks RFC 5321 on a TCP socket (EHLO/HELO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, VRFY, QUIT) to whatever client connects,
//! and keeps each accepted message as the raw RFC 5322 text the client sent.
//!
//! - [`SmtpServer::start`] accepts every recipient.
//! - [`SmtpServer::start_with_refusals`] answers RCPT for local parts starting with `refuse`
//!   with `550 mailbox unavailable` and for `tempfail` with `451`, and stores the rest, as a
//!   real MTA would.
//!
//! It needs nothing but the standard library. The server stops when the value drops.
//! [`parse_message`] decodes the raw messages (headers, multipart parts,
//! quoted-printable/base64) well enough for assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest line a client may send (RFC 5321 §4.5.3.1.6 allows 1000 with CRLF; be generous).
const MAX_LINE: usize = 64 * 1024;
/// Largest message accepted.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<String>>,
    /// Every command line received, for failure reports.
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl SmtpServer {
    /// Accepts every recipient.
    pub fn start() -> SmtpServer {
        Self::spawn(false)
    }

    /// Refuses recipients `refuse…@…` (550) and `tempfail…@…` (451); stores the rest.
    pub fn start_with_refusals() -> SmtpServer {
        Self::spawn(true)
    }

    fn spawn(refusals: bool) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test SMTP server");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared::default());
        let acceptor = std::thread::spawn({
            let shared = shared.clone();
            move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let _ = Session::new(stream, shared, refusals).run();
                    });
                }
            }
        });
        SmtpServer {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Raw RFC 5322 messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        self.shared.messages.lock().unwrap().clone()
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
                    "SMTP server: expected {n} message(s) within {timeout:?}, got {}; commands:\n{}",
                    got.len(),
                    self.shared.log.lock().unwrap().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// One client connection: the RFC 5321 command sequence, one reply per command.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    shared: Arc<Shared>,
    refusals: bool,
    greeted: bool,
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>, refusals: bool) -> Session {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let writer = stream.try_clone().expect("clone the SMTP socket");
        Session {
            reader: BufReader::new(stream),
            writer,
            shared,
            refusals,
            greeted: false,
            from: None,
            to: Vec::new(),
        }
    }

    fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.writer.write_all(text.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()
    }

    /// One line without its CRLF, or None at the end of the stream.
    fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            return Err(std::io::Error::other("line too long or cut off"));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn run(mut self) -> std::io::Result<()> {
        self.reply("220 bleepless-test-smtp ESMTP ready")?;
        while let Some(line) = self.line()? {
            if self.shared.stop.load(Ordering::SeqCst) {
                self.reply("421 4.3.2 shutting down")?;
                break;
            }
            self.shared.log.lock().unwrap().push(line.clone());
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" | "HELO" if arg.is_empty() => {
                    self.reply("501 5.5.4 give your domain or address")?
                }
                "EHLO" => {
                    self.reset();
                    self.greeted = true;
                    self.reply(&format!(
                        "250-bleepless-test-smtp greets {arg}\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE}\r\n250 ENHANCEDSTATUSCODES"
                    ))?
                }
                "HELO" => {
                    self.reset();
                    self.greeted = true;
                    self.reply("250 bleepless-test-smtp")?
                }
                "MAIL" if !self.greeted => self.reply("503 5.5.1 say EHLO first")?,
                "MAIL" if self.from.is_some() => self.reply("503 5.5.1 nested MAIL command")?,
                "MAIL" => match path(&arg, "FROM:") {
                    Some(p) => {
                        self.from = Some(p);
                        self.reply("250 2.1.0 OK")?
                    }
                    None => self.reply("501 5.5.4 syntax: MAIL FROM:<address>")?,
                },
                "RCPT" if self.from.is_none() => self.reply("503 5.5.1 need MAIL first")?,
                "RCPT" => match path(&arg, "TO:") {
                    Some(p) if !p.contains('@') => self.reply("553 5.1.3 not a mailbox address")?,
                    Some(p) => {
                        let local = p.split('@').next().unwrap_or("").to_ascii_lowercase();
                        if self.refusals && local.starts_with("refuse") {
                            self.reply("550 5.1.1 mailbox unavailable")?
                        } else if self.refusals && local.starts_with("tempfail") {
                            self.reply(
                                "451 4.3.0 mailbox temporarily unavailable, try again later",
                            )?
                        } else {
                            self.to.push(p);
                            self.reply("250 2.1.5 OK")?
                        }
                    }
                    None => self.reply("501 5.5.4 syntax: RCPT TO:<address>")?,
                },
                "DATA" if !arg.is_empty() => self.reply("501 5.5.4 DATA takes no argument")?,
                "DATA" if self.to.is_empty() => self.reply("503 5.5.1 need RCPT first")?,
                "DATA" => {
                    self.reply("354 end data with <CR><LF>.<CR><LF>")?;
                    match self.data()? {
                        Some(message) => {
                            self.shared.messages.lock().unwrap().push(message);
                            self.reset();
                            self.reply("250 2.0.0 OK: queued")?
                        }
                        None => {
                            self.reset();
                            self.reply("552 5.3.4 message too big")?
                        }
                    }
                }
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 OK")?
                }
                "NOOP" => self.reply("250 2.0.0 OK")?,
                "VRFY" => self.reply("252 2.5.0 cannot verify, will attempt delivery")?,
                "QUIT" => {
                    self.reply("221 2.0.0 bye")?;
                    break;
                }
                _ => self.reply("500 5.5.2 command not recognised")?,
            }
        }
        let _ = self.writer.shutdown(Shutdown::Both);
        Ok(())
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// The message after DATA, up to the line with a single dot; a leading dot that the
    /// client doubled (RFC 5321 §4.5.2) is removed. None when it is too big.
    fn data(&mut self) -> std::io::Result<Option<String>> {
        let mut message = String::new();
        let mut too_big = false;
        loop {
            let Some(line) = self.line()? else {
                return Err(std::io::Error::other("connection closed inside DATA"));
            };
            if line == "." {
                break;
            }
            let line = line.strip_prefix('.').unwrap_or(&line);
            if message.len() + line.len() + 2 > MAX_MESSAGE {
                too_big = true;
                continue;
            }
            message.push_str(line);
            message.push_str("\r\n");
        }
        Ok((!too_big).then_some(message))
    }
}

/// The address in `FROM:<a@b> PARAMS` / `TO:<a@b>`; the null path `<>` is an empty string.
fn path(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_string())
}

/// A port that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("probe a free port")
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
