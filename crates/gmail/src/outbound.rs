//! The SSRF-guarded client for RFC 8058 one-click unsubscribe requests.
//!
//! An unsubscribe URL comes from a stranger's mail, so every request is treated as hostile:
//! - https only; the host is checked against `UNSUBSCRIBE_DENY` / `UNSUBSCRIBE_ALLOW` patterns;
//! - the host is resolved once, by [`VettingResolver`], which refuses the whole name if any of its
//!   addresses is loopback, private, link-local, CGNAT, multicast, unspecified, broadcast,
//!   documentation, unique-local, IPv4-mapped/compatible/NAT64 forms of those, or a cloud metadata
//!   address — and the connection is made to the vetted addresses only (no second lookup to
//!   rebind);
//! - IP-literal hosts (which reqwest does not resolve) are vetted the same way before sending;
//! - redirects are re-vetted, at most 3; 10 s timeout; at most 64 KiB of the body is read.
//!
//! The policy is a value with named constructors, after Meilisearch's `IpPolicy`:
//! [`OutboundPolicy::public_only`] in production, [`OutboundPolicy::allow_loopback_for_tests`]
//! only in tests (it also allows plain http to loopback, never anything else).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quietbox_core::ports::{OneClickClient, OneClickResponse, OutboundError};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Largest response body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 3;

/// What outbound requests may reach.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    allow_loopback: bool,
    allow: Vec<HostPattern>,
    deny: Vec<HostPattern>,
}

impl OutboundPolicy {
    /// Public https hosts only (the production policy).
    pub fn public_only() -> Self {
        OutboundPolicy {
            allow_loopback: false,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Also loopback addresses (over plain http, or https with a self-signed certificate) — for
    /// tests that run a local endpoint. Never used outside tests; private, link-local and
    /// metadata addresses stay refused.
    pub fn allow_loopback_for_tests() -> Self {
        OutboundPolicy {
            allow_loopback: true,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Only hosts matching one of `patterns` (`UNSUBSCRIBE_ALLOW`); empty means any public host.
    pub fn with_allow(mut self, patterns: &[String]) -> Self {
        self.allow = patterns.iter().map(|p| HostPattern::new(p)).collect();
        self
    }

    /// Never hosts matching one of `patterns` (`UNSUBSCRIBE_DENY`); deny wins over allow.
    pub fn with_deny(mut self, patterns: &[String]) -> Self {
        self.deny = patterns.iter().map(|p| HostPattern::new(p)).collect();
        self
    }

    /// Checks scheme, host patterns and IP-literal hosts of a URL.
    pub fn vet_url(&self, url: &Url) -> Result<(), String> {
        let host = url.host().ok_or_else(|| format!("{url} has no host"))?;
        let loopback_http = self.allow_loopback
            && url.scheme() == "http"
            && matches!(&host, Host::Ipv4(ip) if ip.is_loopback());
        if url.scheme() != "https" && !loopback_http {
            return Err(format!("only https is allowed, not {}", url.scheme()));
        }
        let name = match &host {
            Host::Domain(d) => d.to_ascii_lowercase(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        if self.deny.iter().any(|p| p.matches(&name)) {
            return Err(format!("{name} is denied by UNSUBSCRIBE_DENY"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(&name)) {
            return Err(format!("{name} is not allowed by UNSUBSCRIBE_ALLOW"));
        }
        match host {
            Host::Ipv4(ip) => self.vet_ip(IpAddr::V4(ip)),
            Host::Ipv6(ip) => self.vet_ip(IpAddr::V6(ip)),
            Host::Domain(_) => Ok(()),
        }
    }

    /// Refuses addresses that are not public (loopback passes only under the test policy).
    pub fn vet_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_loopback && canonical(ip).is_loopback() {
            return Ok(());
        }
        match forbidden_reason(ip) {
            Some(reason) => Err(format!("{ip} is a {reason} address")),
            None => Ok(()),
        }
    }
}

/// A host pattern: `**` matches every host, `*.example.com` any subdomain, else exact.
#[derive(Debug, Clone)]
struct HostPattern(String);

impl HostPattern {
    fn new(pattern: &str) -> Self {
        HostPattern(pattern.trim().to_ascii_lowercase())
    }

    fn matches(&self, host: &str) -> bool {
        let pattern = self.0.as_str();
        if pattern == "**" {
            return true;
        }
        match pattern.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == pattern,
        }
    }
}

/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::/96`)
/// addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[0..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why an address must not be contacted, or `None` for a public unicast address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Some("cloud metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("CGNAT (shared)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("broadcast/reserved")
    } else if ip.is_documentation()
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        Some("special-purpose")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local (private)")
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0) {
        // 6to4 and Teredo embed IPv4 addresses that may be private.
        Some("tunnelled (6to4/Teredo)")
    } else {
        None
    }
}

/// Resolves a name once and passes on only vetted addresses; refuses the name when any of its
/// addresses is forbidden (a name mixing public and private answers is a rebinding attempt).
#[derive(Debug, Clone)]
pub struct VettingResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            for addr in &addrs {
                policy
                    .vet_ip(addr.ip())
                    .map_err(|why| format!("{host} resolves to a refused address: {why}"))?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The one-click client.
#[derive(Debug, Clone)]
pub struct SsrfGuardedClient {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl SsrfGuardedClient {
    /// A client enforcing `policy`.
    pub fn new(policy: OutboundPolicy) -> Result<Self, OutboundError> {
        let policy = Arc::new(policy);
        let redirect_policy = policy.clone();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirect_policy.vet_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            }))
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent("quietbox (RFC 8058 one-click unsubscribe)")
            .no_proxy()
            // Loopback test endpoints use self-signed certificates; only the test policy, which
            // reaches nothing but loopback, accepts them.
            .danger_accept_invalid_certs(policy.allow_loopback)
            .build()
            .map_err(|e| OutboundError::Failed(format!("cannot build HTTP client: {e}")))?;
        Ok(SsrfGuardedClient { client, policy })
    }
}

#[async_trait]
impl OneClickClient for SsrfGuardedClient {
    async fn post_one_click(&self, url: &str) -> Result<OneClickResponse, OutboundError> {
        let parsed = Url::parse(url)
            .map_err(|e| OutboundError::Refused(format!("{url:?} is not a URL: {e}")))?;
        self.policy
            .vet_url(&parsed)
            .map_err(OutboundError::Refused)?;
        let response = self
            .client
            .post(parsed)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        // Read at most MAX_BODY bytes, then drop the connection.
        let mut response = response;
        let mut read = 0usize;
        while read < MAX_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(OneClickResponse { status })
    }
}

/// Tells refusals (policy) from failures (network), looking through reqwest's error chain.
fn describe(error: reqwest::Error) -> OutboundError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if text.contains("refused address")
        || text.contains("redirect refused")
        || text.contains("redirects")
    {
        OutboundError::Refused(text)
    } else {
        OutboundError::Failed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_address_class_is_refused() {
        let refused = [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "fd00:ec2::254",
            "2001:db8::1",
            "2002:a00:1::",
        ];
        for text in refused {
            let ip: IpAddr = text.parse().unwrap();
            assert!(forbidden_reason(ip).is_some(), "{text} must be refused");
        }
        for text in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:93.184.216.34",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(forbidden_reason(ip), None, "{text} is public");
        }
    }

    #[test]
    fn urls_must_be_https_and_match_the_host_patterns() {
        let policy = OutboundPolicy::public_only()
            .with_allow(&["*.example.com".into(), "lists.example.org".into()])
            .with_deny(&["bad.example.com".into()]);
        let vet = |u: &str| policy.vet_url(&Url::parse(u).unwrap());
        assert!(vet("https://news.example.com/u").is_ok());
        assert!(vet("https://lists.example.org/u").is_ok());
        assert!(
            vet("http://news.example.com/u")
                .unwrap_err()
                .contains("https")
        );
        assert!(
            vet("https://bad.example.com/u")
                .unwrap_err()
                .contains("DENY")
        );
        assert!(
            vet("https://example.com/u").unwrap_err().contains("ALLOW"),
            "*.x does not match the apex"
        );
        assert!(vet("https://evil.test/u").is_err());
        let open = OutboundPolicy::public_only().with_deny(&["**".into()]);
        assert!(
            open.vet_url(&Url::parse("https://any.example.net/").unwrap())
                .is_err()
        );
    }

    #[test]
    fn the_test_policy_allows_only_loopback_extra() {
        let policy = OutboundPolicy::allow_loopback_for_tests();
        assert!(
            policy
                .vet_url(&Url::parse("http://127.0.0.1:8080/u").unwrap())
                .is_ok()
        );
        assert!(
            policy
                .vet_url(&Url::parse("http://10.0.0.1/u").unwrap())
                .is_err()
        );
        assert!(
            policy
                .vet_url(&Url::parse("https://169.254.169.254/").unwrap())
                .is_err()
        );
        let production = OutboundPolicy::public_only();
        assert!(
            production
                .vet_url(&Url::parse("https://127.0.0.1/u").unwrap())
                .is_err()
        );
        assert!(
            production
                .vet_url(&Url::parse("https://[::ffff:127.0.0.1]/u").unwrap())
                .is_err()
        );
    }
}
