//! The load generator's side of the service bench: its own HTTP/1.1 client, the timed
//! request with its reconnect-and-retry, and the workers' loop.
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What went wrong, kept apart by kind: a dropped connection (an instance killed under it)
/// is not a failure of the service, an unexpected answer is.
#[derive(Default, Clone, Copy)]
pub struct Faults {
    /// Unexpected answers, or requests that still failed after their retries.
    pub errors: usize,
    /// Requests whose connection dropped; each was retried on a fresh connection.
    pub dropped: usize,
    /// Retried status changes answered 409: the first try had committed before its
    /// connection dropped, so the change is done.
    pub done_before_drop: usize,
}

impl Faults {
    pub fn add(&mut self, o: Faults) {
        self.errors += o.errors;
        self.dropped += o.dropped;
        self.done_before_drop += o.done_before_drop;
    }
}

#[derive(Default)]
pub struct Lat {
    pub raise: Vec<Duration>,
    pub ack: Vec<Duration>,
    pub start: Vec<Duration>,
    pub dashboard: Vec<Duration>,
    pub complete: Vec<Duration>,
    pub read: Vec<Duration>,
    pub faults: Faults,
    pub lifecycles: usize,
}

impl Lat {
    pub fn add(&mut self, l: Lat) {
        self.raise.extend(l.raise);
        self.ack.extend(l.ack);
        self.start.extend(l.start);
        self.dashboard.extend(l.dashboard);
        self.complete.extend(l.complete);
        self.read.extend(l.read);
        self.faults.add(l.faults);
        self.lifecycles += l.lifecycles;
    }
}

/// One keep-alive HTTP/1.1 connection to the service, one request at a time: the load
/// generator's own client. It does only what this workload needs (a JSON body out, a
/// `Content-Length` body back), so it costs the shared two cores a few µs per request;
/// reqwest, with a `serde_json::Value` parse of every answer, cost about a quarter core.
pub struct Http1 {
    stream: BufReader<TcpStream>,
    host: String,
    out: Vec<u8>,
    line: String,
}

impl Http1 {
    pub async fn connect(host: &str) -> std::io::Result<Http1> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Http1 {
            stream: BufReader::new(stream),
            host: host.to_string(),
            out: Vec::with_capacity(512),
            line: String::new(),
        })
    }

    /// A fresh connection to the same address, trying for up to 10 s (through the proxy,
    /// to the next live instance).
    async fn reconnect(&mut self) -> std::io::Result<()> {
        let mut last = None;
        for _ in 0..100 {
            match Http1::connect(&self.host).await {
                Ok(fresh) => {
                    *self = fresh;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no connection")))
    }

    /// Sends one request; returns the status and the body.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        use std::io::Write as _;
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n",
            self.host
        )?;
        if method == "POST" {
            let body = body.unwrap_or_default();
            write!(
                self.out,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            self.out.extend_from_slice(body);
        } else {
            self.out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&self.out).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let (mut status, mut length) = (0u16, 0usize);
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the service closed the connection",
                ));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if status == 0 {
                status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(line))?;
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(|_| bad(line))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad(
                        "a chunked answer: this client reads Content-Length only",
                    ));
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

#[derive(serde::Deserialize)]
struct Created {
    id: String,
}

/// A request: method, path, bearer token, body.
pub type Request<'a> = (&'a str, &'a str, &'a str, Option<&'a [u8]>);

/// Sends one request and times it; the body when the status is the one expected. A
/// request whose connection drops (its instance was killed) is sent again on a fresh
/// connection, up to three times, and counted in `dropped`; its time runs from the first
/// try to the answer. A retried status change answered 409 had committed on the first try.
pub async fn timed(
    c: &mut Http1,
    (method, path, token, body): Request<'_>,
    expect: u16,
    into: &mut Vec<Duration>,
    faults: &mut Faults,
) -> Option<Vec<u8>> {
    let t = Instant::now();
    let mut retried = false;
    let mut answer = c.send(method, path, token, body).await;
    for _ in 0..3 {
        if answer.is_ok() {
            break;
        }
        faults.dropped += 1;
        retried = true;
        if let Err(e) = c.reconnect().await {
            answer = Err(e);
            break;
        }
        answer = c.send(method, path, token, body).await;
    }
    into.push(t.elapsed());
    match answer {
        Ok((status, body)) if status == expect => Some(body),
        Ok((409, body)) if retried && method == "POST" && path.contains("/api/v1/tasks/") => {
            faults.done_before_drop += 1;
            Some(body)
        }
        other => {
            faults.errors += 1;
            if faults.errors < 5 {
                match other {
                    Ok((status, body)) => {
                        let body = String::from_utf8_lossy(&body);
                        eprintln!("{method} {path}: unexpected {status}: {body}")
                    }
                    Err(e) => eprintln!("{method} {path}: {e}"),
                }
            }
            None
        }
    }
}

/// Raises one task through `c`; its id.
pub async fn raise(
    c: &mut Http1,
    token: &str,
    body: &[u8],
    into: &mut Vec<Duration>,
    faults: &mut Faults,
) -> Option<String> {
    let req = ("POST", "/api/v1/tasks", token, Some(body));
    let task = timed(c, req, 201, into, faults).await?;
    match serde_json::from_slice(&task) {
        Ok(Created { id }) => Some(id),
        Err(_) => {
            faults.errors += 1;
            None
        }
    }
}

/// Moves the task on by one status change (`acknowledge`, `start`, `complete`).
async fn change(
    c: &mut Http1,
    token: &str,
    (id, action, body): (&str, &str, Option<&[u8]>),
    into: &mut Vec<Duration>,
    faults: &mut Faults,
) -> bool {
    let path = format!("/api/v1/tasks/{id}/{action}");
    let req = ("POST", path.as_str(), token, body);
    timed(c, req, 200, into, faults).await.is_some()
}

/// One connection's loop: raise → acknowledge → (start, every other task) → complete, as
/// the coordinator and the FY1 holding the bleep, with a list and a dashboard read every
/// fifth lifecycle.
pub async fn worker(
    mut c: Http1,
    nurse: String,
    doctor: String,
    stop: Arc<AtomicBool>,
    n: usize,
) -> Lat {
    let mut l = Lat::default();
    let mut i = 0usize;
    let done =
        serde_json::to_vec(&json!({ "outcome": { "code": "done", "text": "Taken and sent" } }))
            .unwrap();
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = serde_json::to_vec(&json!({
            "nhs_number": "9990000018", "ward": "Ward 5 (Acute Medicine)", "bed": format!("{}", (n + i) % 28 + 1),
            "category": "bloods", "description": "FBC, U&E and CRP before the ward round", "priority": "urgent",
            "assignee": "Medicine FY1 night",
        }))
        .unwrap();
        let Some(id) = raise(&mut c, &nurse, &body, &mut l.raise, &mut l.faults).await else {
            continue;
        };
        let f = &mut l.faults;
        if !change(&mut c, &doctor, (&id, "acknowledge", None), &mut l.ack, f).await {
            continue;
        }
        // Every other task is started before it is completed.
        if i.is_multiple_of(2)
            && !change(&mut c, &doctor, (&id, "start", None), &mut l.start, f).await
        {
            continue;
        }
        let completed = (&id[..], "complete", Some(&done[..]));
        if change(&mut c, &doctor, completed, &mut l.complete, f).await {
            l.lifecycles += 1;
        }
        if i.is_multiple_of(5) {
            let req = ("GET", "/api/v1/tasks?limit=20", nurse.as_str(), None);
            timed(&mut c, req, 200, &mut l.read, &mut l.faults).await;
            let req = ("GET", "/api/v1/dashboard", nurse.as_str(), None);
            timed(&mut c, req, 200, &mut l.dashboard, &mut l.faults).await;
        }
    }
    l
}
