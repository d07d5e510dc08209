//! Outbound hosts: the `scheme://host[:port]` entries of an `allowed_outbound_hosts` list,
//! what a request's URL must match, and whether one list is within another.
//!
//! An entry names a scheme (`http` or `https`), a host and a port:
//! - the host is a name (`api.example.com`), an IP address (`127.0.0.1`, `[::1]`), `*.`
//!   and a domain (`*.example.com`: its subdomains at any depth, not the domain itself),
//!   or `*` (any host);
//! - the port is a number, `*` (any port), or absent: the scheme's own (80, 443).
//!
//! Names are compared in lowercase, as DNS does; an IP address matches the same address
//! written the same canonical way. No path, query, user or trailing dot is accepted. A
//! list with no entry allows nothing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why an outbound host entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbound host {entry:?} {why}; write scheme://host[:port], e.g. https://api.example.com or http://*.internal.example:8080"
)]
pub struct OutboundHostError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A scheme a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Its port when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.domain`: any name that ends in `.domain` (held without the `*.`).
    Subdomains(String),
    /// One name, in lowercase.
    Name(String),
    /// One IP address.
    Ip(IpAddr),
}

/// The port part of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortPattern {
    /// `*`: any port.
    Any,
    /// One port (the scheme's own when the entry names none).
    Port(u16),
}

/// One entry of an `allowed_outbound_hosts` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboundHost {
    /// The scheme.
    pub scheme: Scheme,
    /// The host, a wildcard or `*`.
    pub host: HostPattern,
    /// The port or `*`.
    pub port: PortPattern,
}

/// The host of a request as the URL names it: a name in lowercase, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHost {
    /// A DNS name, in lowercase.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl RequestHost {
    /// The host of a URL (`Uri::host()`: a name, an IPv4 address, or an IPv6 address in
    /// brackets).
    pub fn parse(host: &str) -> Option<RequestHost> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(RequestHost::Ip(ip));
        }
        if host.starts_with('[') {
            return None;
        }
        valid_name(host).then(|| RequestHost::Name(host.to_ascii_lowercase()))
    }
}

/// A name of letters, digits, `-`, `_` and dots, with no empty label and no trailing dot.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl OutboundHost {
    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: Scheme, host: &RequestHost, port: u16) -> bool {
        if scheme != self.scheme {
            return false;
        }
        if let PortPattern::Port(p) = self.port
            && p != port
        {
            return false;
        }
        match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Subdomains(domain), RequestHost::Name(name)) => {
                is_subdomain(name, domain)
            }
            (HostPattern::Name(own), RequestHost::Name(name)) => own == name,
            (HostPattern::Ip(own), RequestHost::Ip(ip)) => own == ip,
            _ => false,
        }
    }

    /// Whether every request this entry allows is allowed by `wider` too.
    pub fn within(&self, wider: &OutboundHost) -> bool {
        if self.scheme != wider.scheme {
            return false;
        }
        let port = match (self.port, wider.port) {
            (_, PortPattern::Any) => true,
            (PortPattern::Port(a), PortPattern::Port(b)) => a == b,
            (PortPattern::Any, PortPattern::Port(_)) => false,
        };
        let host = match (&self.host, &wider.host) {
            (_, HostPattern::Any) => true,
            (HostPattern::Any, _) => false,
            (HostPattern::Subdomains(d), HostPattern::Subdomains(w)) => {
                d == w || is_subdomain(d, w)
            }
            (HostPattern::Name(n), HostPattern::Subdomains(w)) => is_subdomain(n, w),
            (HostPattern::Name(n), HostPattern::Name(w)) => n == w,
            (HostPattern::Ip(a), HostPattern::Ip(b)) => a == b,
            _ => false,
        };
        port && host
    }
}

/// Whether `name` is below `domain` (`a.b.example.com` below `example.com`).
fn is_subdomain(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

impl FromStr for OutboundHost {
    type Err = OutboundHostError;

    fn from_str(entry: &str) -> Result<Self, OutboundHostError> {
        let err = |why| OutboundHostError {
            entry: entry.to_owned(),
            why,
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| err("has no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(err("has a scheme other than http or https")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(err("has a path, query or fragment"));
        }
        if rest.contains('@') {
            return Err(err("has a user part"));
        }
        // The port follows the last ':' outside an IPv6 address's brackets.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let port = match port {
            None => PortPattern::Port(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => PortPattern::Port(n),
                _ => return Err(err("has a port that is not 1 to 65535 or *")),
            },
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            match RequestHost::parse(domain) {
                Some(RequestHost::Name(d)) => HostPattern::Subdomains(d),
                _ => return Err(err("has a wildcard that is not *. followed by a domain")),
            }
        } else if host.contains('*') {
            return Err(err("has a wildcard that is not *. followed by a domain"));
        } else if host.contains(':') && !host.starts_with('[') {
            return Err(err("has an IPv6 address not written in brackets"));
        } else {
            match RequestHost::parse(host) {
                Some(RequestHost::Name(n)) => HostPattern::Name(n),
                Some(RequestHost::Ip(ip)) => HostPattern::Ip(ip),
                None if host.is_empty() => return Err(err("has no host")),
                None => return Err(err("has a host that is not a DNS name or an IP address")),
            }
        };
        Ok(OutboundHost { scheme, host, port })
    }
}

impl fmt::Display for OutboundHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Subdomains(d) => write!(f, "*.{d}")?,
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Port(p) if p == self.scheme.default_port() => Ok(()),
            PortPattern::Port(p) => write!(f, ":{p}"),
        }
    }
}

/// Parses every entry of a list, or says which is wrong.
pub fn parse_outbound_hosts<S: AsRef<str>>(
    entries: &[S],
) -> Result<Vec<OutboundHost>, OutboundHostError> {
    entries.iter().map(|e| e.as_ref().parse()).collect()
}

/// Whether `scheme://host:port` is allowed by some entry of `list`.
pub fn outbound_allowed(
    list: &[OutboundHost],
    scheme: Scheme,
    host: &RequestHost,
    port: u16,
) -> bool {
    list.iter().any(|e| e.allows(scheme, host, port))
}

/// The first entry of `narrow` that no entry of `wide` covers; `None` when `narrow` is a
/// subset of `wide`.
pub fn first_outside<'a>(
    narrow: &'a [OutboundHost],
    wide: &[OutboundHost],
) -> Option<&'a OutboundHost> {
    narrow.iter().find(|n| !wide.iter().any(|w| n.within(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> OutboundHost {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn name(s: &str) -> RequestHost {
        RequestHost::parse(s).unwrap()
    }

    #[test]
    fn entries_parse_with_default_ports_and_print_back() {
        for (text, shown) in [
            ("https://api.example.com", "https://api.example.com"),
            ("HTTPS://API.Example.com:443", "https://api.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:80", "http://[::1]"),
            ("https://*.example.com", "https://*.example.com"),
            ("https://*:*", "https://*:*"),
            ("http://localhost:*", "http://localhost:*"),
        ] {
            assert_eq!(h(text).to_string(), shown, "{text}");
        }
        assert_eq!(h("https://a.example").port, PortPattern::Port(443));
        assert_eq!(h("http://a.example").port, PortPattern::Port(80));
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for (bad, why) in [
            ("api.example.com", "has no scheme"),
            ("ftp://a.example", "scheme other"),
            ("https://a.example/path", "path"),
            ("https://a.example?q", "path"),
            ("https://user@a.example", "user part"),
            ("https://a.example:0", "port"),
            ("https://a.example:70000", "port"),
            ("https://a.example:+80", "port"),
            ("https://", "no host"),
            ("https://a.*.example", "wildcard"),
            ("https://*.", "wildcard"),
            ("https://*example.com", "wildcard"),
            ("https://a..example", "not a DNS name"),
            ("https://a.example.", "not a DNS name"),
            ("https://[::1", "not a DNS name"),
        ] {
            let e = bad.parse::<OutboundHost>().unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_request_must_match_scheme_host_and_port() {
        let e = h("https://api.example.com");
        assert!(e.allows(Scheme::Https, &name("api.example.com"), 443));
        assert!(e.allows(Scheme::Https, &name("API.EXAMPLE.COM"), 443));
        assert!(!e.allows(Scheme::Http, &name("api.example.com"), 443));
        assert!(!e.allows(Scheme::Https, &name("api.example.com"), 8443));
        assert!(!e.allows(Scheme::Https, &name("evil.api.example.com"), 443));
        assert!(!e.allows(Scheme::Https, &name("api.example.com.evil"), 443));

        let w = h("https://*.example.com");
        assert!(w.allows(Scheme::Https, &name("a.example.com"), 443));
        assert!(w.allows(Scheme::Https, &name("a.b.example.com"), 443));
        assert!(!w.allows(Scheme::Https, &name("example.com"), 443));
        assert!(!w.allows(Scheme::Https, &name("badexample.com"), 443));

        let ip = h("http://127.0.0.1:8080");
        assert!(ip.allows(Scheme::Http, &name("127.0.0.1"), 8080));
        assert!(!ip.allows(Scheme::Http, &name("localhost"), 8080));
        // Names are not IPs: `*.` never matches an address.
        assert!(!h("http://*.0.0.1:8080").allows(Scheme::Http, &name("127.0.0.1"), 8080));
        assert!(h("http://*:*").allows(Scheme::Http, &name("[::1]"), 1));
    }

    #[test]
    fn within_is_subset_of_the_requests_each_allows() {
        let wide = [h("https://*.example.com"), h("http://10.0.0.1:*")];
        for inside in [
            "https://a.example.com",
            "https://*.a.example.com",
            "https://*.example.com",
            "http://10.0.0.1:8080",
        ] {
            assert_eq!(first_outside(&[h(inside)], &wide), None, "{inside}");
        }
        for outside in [
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://*",
            "http://10.0.0.1:*".replace("10.0.0.1", "10.0.0.2").as_str(),
        ] {
            assert!(first_outside(&[h(outside)], &wide).is_some(), "{outside}");
        }
        assert!(first_outside(&[h("http://10.0.0.1:*")], &[h("http://10.0.0.1:80")]).is_some());
        assert_eq!(
            first_outside(&[h("http://a.b:*")], &[h("http://*:*")]),
            None
        );
        assert_eq!(first_outside(&[], &[]), None);
    }
}
