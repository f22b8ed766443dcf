//! Which push endpoints a browser may register. An endpoint is a URL this service will later
//! POST to, so without these checks any signed-in user could point it inside the hospital's
//! network (server-side request forgery): only the browsers' push services' hosts, over
//! https on the standard port, and only names that resolve to public addresses. Origins for
//! a test push service are allowed only when listed explicitly (`[push] allow_endpoints`).
use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EndpointPolicy {
    hosts: Vec<HostRule>,
    allowed: Vec<Origin>,
}

#[derive(Debug, Clone)]
enum HostRule {
    Exact(String),
    /// `*.push.apple.com`, kept as `.push.apple.com`.
    Subdomain(String),
}

#[derive(Debug, Clone)]
struct Origin {
    scheme: String,
    host: String,
    /// None: any port.
    port: Option<u16>,
}

/// Why an endpoint was refused: the text is shown to the browser that sent it (and never
/// contains the endpoint's path, which is the subscription's secret part).
pub type Refusal = String;

const MAX_ENDPOINT: usize = 2000;

impl EndpointPolicy {
    pub fn new(hosts: &[String], allow_endpoints: &[String]) -> Result<Self, String> {
        let hosts = hosts
            .iter()
            .map(|h| {
                let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
                let (rule, name) = match h.strip_prefix("*.") {
                    Some(rest) => (HostRule::Subdomain(format!(".{rest}")), rest.to_string()),
                    None => (HostRule::Exact(h.clone()), h.clone()),
                };
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if valid {
                    Ok(rule)
                } else {
                    Err(format!(
                        "allowed_hosts: {h:?} is not a host name such as fcm.googleapis.com or *.push.apple.com"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allowed = allow_endpoints
            .iter()
            .map(|o| {
                let bad =
                    || format!("allow_endpoints: {o:?} must be an origin such as http://127.0.0.1");
                let url = Url::parse(o.trim()).map_err(|_| bad())?;
                let host = url.host_str().ok_or_else(bad)?.to_ascii_lowercase();
                if !matches!(url.scheme(), "http" | "https")
                    || !matches!(url.path(), "" | "/")
                    || url.query().is_some()
                {
                    return Err(bad());
                }
                Ok(Origin {
                    scheme: url.scheme().to_string(),
                    host,
                    port: url.port(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EndpointPolicy { hosts, allowed })
    }

    /// The policy of hosts and origins that the configuration has already validated (with
    /// [`EndpointPolicy::new`]); should they be invalid after all, no endpoint is allowed.
    pub fn of(hosts: &[String], allow_endpoints: &[String]) -> EndpointPolicy {
        Self::new(hosts, allow_endpoints).unwrap_or_else(|e| {
            tracing::error!(error = %e, "push endpoint policy is invalid; allowing no endpoints");
            EndpointPolicy {
                hosts: Vec::new(),
                allowed: Vec::new(),
            }
        })
    }

    /// What can be judged without the network. `Ok(Some((host, port)))`: the name must still
    /// resolve to public addresses; `Ok(None)`: an explicitly allowed origin.
    pub fn check_url(&self, endpoint: &str) -> Result<Option<(String, u16)>, Refusal> {
        if endpoint.len() > MAX_ENDPOINT {
            return Err(format!("endpoint is longer than {MAX_ENDPOINT} characters"));
        }
        let url = Url::parse(endpoint).map_err(|_| {
            "endpoint must be the https:// URL the browser's push service gave".to_string()
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("endpoint must not carry a user name or password".into());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let explicitly_allowed = self.allowed.iter().any(|o| {
            o.scheme == url.scheme()
                && o.host == host
                && (o.port.is_none() || o.port == url.port_or_known_default())
        });
        if explicitly_allowed {
            return Ok(None);
        }
        if url.scheme() != "https" {
            return Err("endpoint must be the https:// URL the browser's push service gave".into());
        }
        let Some(domain) = url.domain() else {
            return Err("endpoint must name a push service's host, not an address".into());
        };
        if url.port().is_some() {
            return Err("endpoint must use the standard https port".into());
        }
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let known = self.hosts.iter().any(|rule| match rule {
            HostRule::Exact(h) => *h == domain,
            HostRule::Subdomain(suffix) => {
                domain.len() > suffix.len() && domain.ends_with(suffix.as_str())
            }
        });
        if !known {
            return Err(format!(
                "endpoint host {domain:?} is not a browser push service this service sends to ({})",
                self.host_list()
            ));
        }
        Ok(Some((domain, 443)))
    }

    /// The full check: [`Self::check_url`], then every address the name resolves to must
    /// be public (not loopback, private, link-local, …).
    pub async fn check(&self, endpoint: &str) -> Result<(), Refusal> {
        let Some((host, port)) = self.check_url(endpoint)? else {
            return Ok(());
        };
        let lookup = tokio::net::lookup_host((host.as_str(), port));
        let addrs: Vec<IpAddr> = tokio::time::timeout(Duration::from_secs(5), lookup)
            .await
            .map_err(|_| format!("endpoint host {host:?} did not resolve in time; try again"))?
            .map_err(|_| format!("endpoint host {host:?} does not resolve"))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() {
            return Err(format!("endpoint host {host:?} does not resolve"));
        }
        if addrs.iter().any(|ip| !is_public(*ip)) {
            return Err(format!(
                "endpoint host {host:?} resolves to an address that is not public"
            ));
        }
        Ok(())
    }

    fn host_list(&self) -> String {
        self.hosts
            .iter()
            .map(|r| match r {
                HostRule::Exact(h) => h.clone(),
                HostRule::Subdomain(s) => format!("*{s}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An address on the public internet: not loopback, private, link-local, shared (CGNAT),
/// multicast, documentation, benchmarking or reserved; IPv4 inside IPv6 judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96).
    let mapped = s[..6] == [0, 0, 0, 0, 0, 0xffff];
    let compatible = s[..6] == [0; 6] && s[6] != 0;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let embedded = (mapped || compatible || nat64)
        .then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    if let Some(v4) = embedded {
        return is_public_v4(v4);
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200)) // Teredo, benchmarking, ORCHID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["142.250.180.10", "17.57.146.10", "2a00:1450:4009:81f::200a"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
