//! Service instances for the load bench: several processes on one database, the
//! round-robin TCP proxy in front of them, and the kill of one mid-run.
use crate::common::{cpu_seconds, peak_rss_mib};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// One service process.
pub struct Instance {
    child: Child,
    pub addr: SocketAddr,
    /// Its CPU time when the timed part began.
    cpu_before: Option<f64>,
    /// CPU time and peak RSS when it was last looked at (at the end, or just before its kill).
    pub seen: Option<(Option<f64>, Option<f64>)>,
    /// Seconds into the timed part at which it was killed.
    pub killed_at: Option<f64>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `n` service processes on the database, each on its own port: `program` is the
/// binary and the arguments that come first (the HTTP floor's `--floor-server`). With several
/// on SQLite a caller would get a second writer process, so the bench refuses that earlier.
pub fn spawn(
    (bin, lead): (&str, &[&str]),
    database: &str,
    config: Option<&Path>,
    n: usize,
) -> Vec<Instance> {
    (0..n)
        .map(|_| {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut cmd = Command::new(bin);
            cmd.args(lead);
            if let Some(path) = config {
                cmd.arg("--config").arg(path);
            }
            let child = cmd
                .args(["--database", database, "--bind", &addr.to_string()])
                .env(
                    "RUST_LOG",
                    std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdout(Stdio::null())
                // Each task's push fails for want of a registered phone (measured in the
                // escalation benchmark instead), and every escalation is logged at WARN;
                // those lines are not this benchmark's business, unless BENCH_SERVICE_LOG
                // asks for the service's log.
                .stderr(match std::env::var_os("BENCH_SERVICE_LOG") {
                    Some(_) => Stdio::inherit(),
                    None => Stdio::null(),
                })
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start the service binary {bin}: {e}"));
            Instance {
                child,
                addr,
                cpu_before: None,
                seen: None,
                killed_at: None,
            }
        })
        .collect()
}

/// Waits until every instance accepts connections; stops the bench if one exits or does
/// not within 20 s.
pub async fn wait_ready(instances: &mut [Instance]) {
    for i in instances.iter_mut() {
        let mut ready = false;
        for _ in 0..400 {
            if TcpStream::connect(i.addr).await.is_ok() {
                ready = true;
                break;
            }
            if let Ok(Some(status)) = i.child.try_wait() {
                crate::common::stop(&format!("a service instance exited at start: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !ready {
            crate::common::stop(&format!("the service on {} did not start", i.addr));
        }
    }
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Marks the start of the timed part.
    pub fn start_clock(&mut self) {
        self.cpu_before = cpu_seconds(self.pid());
    }

    /// Notes its CPU time and peak RSS now.
    pub fn look(&mut self) {
        self.seen = Some((cpu_seconds(self.pid()), peak_rss_mib(self.pid())));
    }

    /// CPU seconds it used in the timed part (up to its kill, if killed).
    pub fn cpu_used(&self) -> Option<f64> {
        match (self.cpu_before, self.seen) {
            (Some(b), Some((Some(a), _))) => Some(a - b),
            _ => None,
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The instances' config file: `pool_size` when asked, and for the
/// escalation check a tick every second and stat tasks due to escalate after `stat_ack`
/// seconds at each level (the other priorities keep their defaults, so the lifecycles'
/// urgent tasks, acknowledged within milliseconds, never escalate).
pub fn config_text(pool_size: Option<usize>, stat_ack: Option<u32>) -> String {
    let mut text = String::new();
    if let Some(n) = pool_size {
        text.push_str(&format!("pool_size = {n}\n"));
    }
    if let Some(stat) = stat_ack {
        text.push_str(&format!(
            "\n[escalation]\nschedule = \"* * * * * *\"\n\n[escalation.ack_seconds]\n\
             stat = {stat}\nasap = 300\nurgent = 900\nroutine = 3600\n"
        ));
    }
    text
}

/// A round-robin TCP proxy on one address in front of the instances: each new connection
/// goes to the next instance that is still alive (one whose port refuses is marked dead and
/// passed over), and is then copied both ways until either side closes.
pub struct Proxy {
    pub addr: String,
    alive: Arc<Vec<AtomicBool>>,
}

impl Proxy {
    pub async fn start(backends: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let alive: Arc<Vec<AtomicBool>> =
            Arc::new(backends.iter().map(|_| AtomicBool::new(true)).collect());
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let live = alive.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(forward(inbound, first, backends.clone(), live.clone()));
            }
        });
        Proxy { addr, alive }
    }

    /// Stops giving connections to instance `i`.
    pub fn mark_dead(&self, i: usize) {
        self.alive[i].store(false, Ordering::Relaxed);
    }
}

/// Gives one inbound connection to the first live instance from `first` on.
async fn forward(
    mut inbound: TcpStream,
    first: usize,
    backends: Arc<Vec<SocketAddr>>,
    alive: Arc<Vec<AtomicBool>>,
) {
    let n = backends.len();
    for k in 0..n {
        let i = (first + k) % n;
        if !alive[i].load(Ordering::Relaxed) {
            continue;
        }
        match TcpStream::connect(backends[i]).await {
            Ok(mut up) => {
                let _ = inbound.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut up).await;
                return;
            }
            Err(_) => alive[i].store(false, Ordering::Relaxed),
        }
    }
    // No instance alive: dropping the connection tells the client so.
}
