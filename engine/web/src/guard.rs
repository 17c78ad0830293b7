//! What every request passes and every response carries: read-only methods, the `Host`
//! check, the security headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::pages::App;

/// The Content-Security-Policy of every response: nothing but this server's own style
/// sheet, images, script (`live.js`) and event stream (`connect-src`, which `default-src
/// 'none'` would refuse to EventSource); no inline script, no frame, no form posting
/// elsewhere, no base URL.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; \
                       frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The security headers every response carries (pages, assets, errors).
pub fn headers() -> [(&'static str, &'static str); 5] {
    [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ]
}

/// A name the console answers to, given with `--host NAME[:PORT]` (without a port: the
/// console's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    name: String,
    port: Option<u16>,
}

impl std::fmt::Display for HostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl std::str::FromStr for HostName {
    type Err = String;

    /// A DNS name (letters, digits, `-`, `.`; at most 253 bytes), optionally `:PORT`.
    fn from_str(text: &str) -> Result<HostName, String> {
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => {
                let port = port.parse::<u16>().map_err(|_| format!("`{port}` is not a port number"))?;
                (name, Some(port))
            }
            None => (text, None),
        };
        let fits = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with(['.', '-'])
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !fits {
            return Err(format!(
                "`{name}` is not a host name (letters, digits, `-` and `.`, like `console.example.com`)"
            ));
        }
        Ok(HostName { name: name.to_ascii_lowercase(), port })
    }
}

/// The names the console answers to when it listens on `addr`: any IP address on its port
/// (a DNS rebinding needs a name: a page that reached the console by an address is of that
/// address's origin), `localhost` on its port, and the `--host` names. Any other `Host` is
/// a 421, whatever the listen address.
#[derive(Debug, Clone)]
pub struct Hosts {
    port: u16,
    names: Vec<HostName>,
}

impl Hosts {
    /// The rules for a console listening on `addr` with the `--host` names `names`.
    pub fn new(addr: std::net::SocketAddr, names: Vec<HostName>) -> Hosts {
        Hosts { port: addr.port(), names }
    }

    /// What a refusal says the console answers to.
    pub fn described(&self) -> String {
        let mut text = format!("an IP address or localhost on port {}", self.port);
        for n in &self.names {
            let n = HostName { name: n.name.clone(), port: Some(n.port.unwrap_or(self.port)) };
            text.push_str(&format!(", `{n}`"));
        }
        text
    }

    /// Whether `host` (a `Host` header's value) names the console.
    pub fn allows(&self, host: &str) -> bool {
        // `[v6]:port`, `[v6]`, `name:port`, `name` (no port: HTTP's 80).
        let (name, port) = if let Some(rest) = host.strip_prefix('[') {
            let Some((inside, after)) = rest.split_once(']') else { return false };
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            let port = match after {
                "" => Some(80),
                p => p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()),
            };
            (inside, port)
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) => (name, port.parse::<u16>().ok()),
                None => (host, Some(80)),
            }
        };
        let Some(port) = port else { return false };
        let literal = host.starts_with('[') || name.parse::<std::net::Ipv4Addr>().is_ok();
        if literal || name.eq_ignore_ascii_case("localhost") {
            return port == self.port;
        }
        // A name without a port means the default port of the scheme it was reached by,
        // which the console cannot see behind a TLS front: `--host NAME:80` and
        // `--host NAME:443` both answer to the bare name.
        let bare = !host.contains(':');
        self.names.iter().any(|n| {
            let want = n.port.unwrap_or(self.port);
            n.name.eq_ignore_ascii_case(name) && (port == want || (bare && want == 443))
        })
    }
}

/// Whether the request's `Host` is one the console answers to (exactly one `Host`).
fn host_allowed(hosts: &Hosts, headers: &HeaderMap) -> bool {
    let values: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    match values.as_slice() {
        [one] => one.to_str().is_ok_and(|h| hosts.allows(h)),
        _ => false,
    }
}

/// The middleware: methods, host, then the headers on whatever answers.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    // With `--auth`, POST reaches the routes (each checks who asks); else nothing but reads.
    let post = app.gate.auth.writes() && *request.method() == Method::POST;
    let mut response = if !matches!(*request.method(), Method::GET | Method::HEAD) && !post {
        let mut r = app.error(
            api,
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only console",
            "This console only shows runs: it takes no action without authentication, which a later \
             version adds. Use the `runbook` command line to act on a run.",
        );
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else if !host_allowed(&app.hosts, request.headers()) {
        app.error(
            api,
            StatusCode::MISDIRECTED_REQUEST,
            "unknown host",
            &format!(
                "This console (listening on {}) answers only to {}: a page under another name could \
                 be a DNS rebinding attack. Give the names it is reached by with `runbook serve --host NAME`.",
                app.addr,
                app.hosts.described()
            ),
        )
    } else if request.uri().path().starts_with("/assets/") {
        next.run(request).await
    } else {
        match crate::actions::admit(&app, api, request).await {
            Err(refused) => refused,
            Ok((request, who)) => {
                // A page waits its turn among those built at once (`App::turns`; never closed).
                match app.turns.acquire().await {
                    Ok(_turn) => crate::auth::SIGNED_IN.scope(who, next.run(request)).await,
                    Err(_) => app.error(
                        api,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "stopping",
                        "The console is stopping.",
                    ),
                }
            }
        }
    };
    let h = response.headers_mut();
    for (name, value) in headers() {
        h.insert(name, HeaderValue::from_static(value));
    }
    if app.gate.auth.writes() {
        // A form's POST carries its `Origin` (checked): `no-referrer` makes it `null`.
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_names_the_console_on_every_address() {
        let names = vec!["Console.Example".parse().expect("name"), "ops.example:8443".parse().expect("name")];
        for listen in
            ["127.0.0.1:8080", "0.0.0.0:8080", "[::ffff:127.0.0.1]:8080", "[::]:8080", "10.1.2.3:8080"]
        {
            let hosts = Hosts::new(listen.parse().expect("addr"), names.clone());
            let ok = |h: &str| {
                let mut m = HeaderMap::new();
                m.insert(header::HOST, HeaderValue::from_str(h).expect("value"));
                host_allowed(&hosts, &m)
            };
            for good in [
                "127.0.0.1:8080",
                "10.1.2.3:8080",
                "[::1]:8080",
                "[::ffff:127.0.0.1]:8080",
                "localhost:8080",
                "LOCALHOST:8080",
                "console.example:8080",
                "ops.example:8443",
            ] {
                assert!(ok(good), "{listen}: {good}");
            }
            for bad in [
                "evil.example:8080",
                "localhost",
                "127.0.0.1",
                "localhost:8081",
                "127.0.0.1:8080.evil",
                "127.0.0.1.evil:8080",
                "2130706433:8080",
                "[::1:8080",
                "[evil]:8080",
                "console.example",
                "console.example:8443",
                "ops.example:8080",
                "console.example.evil:8080",
                "",
            ] {
                assert!(!ok(bad), "{listen}: {bad}");
            }
            assert!(!host_allowed(&hosts, &HeaderMap::new()));
        }
        for bad in ["", "a b", "http://x", "x:notaport", "x/y", ".x", "x:"] {
            assert!(bad.parse::<HostName>().is_err(), "{bad}");
        }
    }
}
