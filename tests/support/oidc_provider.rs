//! A real OpenID provider for the sign-in tests: panva's certified `oidc-provider` (npm),
//! run by Node from `tests/support/oidc_provider/server.mjs` on a free port. `npm ci` runs
//! there first if its `node_modules` is missing. The process is killed when the value drops.
//!
//! The provider's one client sends browsers back to [`CALLBACK`], a placeholder: the tests
//! follow redirects themselves and turn it into the app's own address, which is known only
//! once the app has started (after its configuration, which names the provider).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Mutex;

pub const CLIENT_ID: &str = "bleepless";
pub const CLIENT_SECRET: &str = "a-client-secret-for-tests-only";
/// Where the provider sends browsers back to (see the module's note).
pub const PLACEHOLDER: &str = "http://127.0.0.1:1";
pub const CALLBACK: &str = "http://127.0.0.1:1/login/oidc/callback";

pub struct OidcProvider {
    pub issuer: String,
    child: Child,
    http: reqwest::Client,
}

/// How long the provider has to say where it listens (it takes about a second).
const STARTUP: std::time::Duration = std::time::Duration::from_secs(30);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc_provider")
}

/// `npm ci`, once per test process, when the provider's packages are not installed.
fn install() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done || dir().join("node_modules/oidc-provider").exists() {
        *done = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--silent"])
        .current_dir(dir())
        .status()
        .expect("npm runs (the sign-in tests need Node.js and npm: .ci/run installs them)");
    assert!(
        status.success(),
        "npm ci in tests/support/oidc_provider failed"
    );
    *done = true;
}

impl OidcProvider {
    pub async fn start() -> OidcProvider {
        tokio::task::spawn_blocking(Self::spawn)
            .await
            .expect("join")
    }

    /// Starts the provider, again if it has not said where it listens within
    /// [`STARTUP`]: Node 20 has been seen to hang before listening, in a futex wait, when
    /// started while the machine was busy (one start in many, under the PostgreSQL run).
    fn spawn() -> OidcProvider {
        install();
        for attempt in 1..=3 {
            match Self::spawn_once() {
                Ok(provider) => return provider,
                Err((mut child, why)) => {
                    eprintln!("the OpenID provider {why} (attempt {attempt}); starting it again");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("the OpenID provider did not start in three attempts");
    }

    /// One start: the provider, or its process and why, if it did not print its issuer in
    /// time.
    fn spawn_once() -> Result<OidcProvider, (Child, String)> {
        let options = json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [CALLBACK],
            "post_logout_redirect_uris": [format!("{PLACEHOLDER}/login")],
        });
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg(options.to_string())
            .current_dir(dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (the sign-in tests need Node.js: .ci/run installs it)");
        let out = child.stdout.take().expect("stdout");
        // Its output is read on a thread of its own, which keeps reading (and dropping)
        // it so that it never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if let Some(i) = v["issuer"].as_str() {
                        let _ = tx.send(i.to_string());
                        break;
                    }
                }
            }
            for _ in lines {}
        });
        match rx.recv_timeout(STARTUP) {
            Ok(issuer) => Ok(OidcProvider {
                issuer,
                child,
                http: reqwest::Client::new(),
            }),
            Err(e) => {
                let why = match (e, child.try_wait()) {
                    (RecvTimeoutError::Timeout, _) => {
                        format!("did not say where it listens within {STARTUP:?}")
                    }
                    (RecvTimeoutError::Disconnected, Ok(Some(status))) => {
                        format!("exited before saying where it listens ({status})")
                    }
                    (RecvTimeoutError::Disconnected, _) => {
                        "closed its output before saying where it listens".to_string()
                    }
                };
                Err((child, why))
            }
        }
    }

    async fn control(&self, what: &str, body: Value) {
        let res = self
            .http
            .post(format!("{}/test/{what}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("the provider's test control answers");
        assert_eq!(res.status().as_u16(), 204, "/test/{what}");
    }

    /// Sets the claims of an account (its login name is its `sub`).
    pub async fn account(&self, login: &str, claims: Value) {
        self.control("accounts", json!({ login: claims })).await;
    }

    /// A new signing key replaces the old one.
    pub async fn rotate_key(&self) {
        self.control("rotate", json!({})).await;
    }

    /// From now on the ID token carries `sub` only; the other claims come from userinfo.
    pub async fn claims_from_userinfo(&self) {
        self.control("claims-from-userinfo", json!({})).await;
    }

    /// The next ID token is re-signed (with the provider's key) with these claims changed.
    pub async fn tamper_next_token(&self, changes: Value) {
        self.control("tamper", changes).await;
    }

    /// Stops the provider (it is down from now on).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A browser: a cookie jar, redirects followed by the test.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response, from: &str) -> String {
    let loc = res.headers()["location"].to_str().unwrap();
    reqwest::Url::parse(from)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// Starts a sign-in at the app and logs in at the provider's own form as `login`; returns
/// the callback address the provider sends the browser back to.
pub async fn through_provider(b: &reqwest::Client, app_base: &str, login: &str) -> String {
    let mut url = format!("{app_base}/login/oidc?next=/api/v1/me");
    let mut res = b.get(&url).send().await.unwrap();
    let mut logged_in = false;
    let form_action = regex::Regex::new(r#"action="([^"]+)""#).unwrap();
    loop {
        if res.status().is_redirection() {
            let next = location(&res, &url);
            if next.starts_with(PLACEHOLDER) {
                return next.replacen(PLACEHOLDER, app_base, 1);
            }
            url = next;
            res = b.get(&url).send().await.unwrap();
            continue;
        }
        let status = res.status().as_u16();
        let html = res.text().await.unwrap();
        assert!(status == 200 && !logged_in, "{status} at {url}: {html}");
        let action = form_action
            .captures(&html)
            .unwrap_or_else(|| panic!("the provider's login form: {html}"))[1]
            .to_string();
        url = reqwest::Url::parse(&url)
            .unwrap()
            .join(&action)
            .unwrap()
            .to_string();
        res = b
            .post(&url)
            .form(&[("prompt", "login"), ("login", login), ("password", "any")])
            .send()
            .await
            .unwrap();
        logged_in = true;
    }
}

/// Follows the callback; returns its status, where it sends the browser and its body.
pub async fn callback(b: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let res = b.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let to = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, to, res.text().await.unwrap())
}

/// The app's `[oidc]` settings for a provider started here.
pub fn app_config(issuer: &str) -> bleepless::config::OidcConfig {
    bleepless::config::OidcConfig {
        name: "Test Trust".into(),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        redirect_url: CALLBACK.into(),
        post_logout_url: format!("{PLACEHOLDER}/login"),
        claim: "email".into(),
        match_on: bleepless::config::MatchOn::Email,
        name_claim: "name".into(),
        permissions_claim: None,
        permission_map: Vec::new(),
        create_unknown: false,
        timeout: std::time::Duration::from_secs(5),
    }
}
