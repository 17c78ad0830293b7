//! What every request passes and every response carries: read-only methods, the `Host`
//! check, the security headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::pages::App;

/// The Content-Security-Policy of every response: nothing but this server's own style
/// sheet and images; no script, no frame, no form posting elsewhere, no base URL.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
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

/// The hosts a browser may name when the console is bound to `addr` on loopback: the
/// address itself, `localhost` and `[::1]`/`127.0.0.1` on the same port. `None`: any
/// (bound elsewhere, with a warning; authentication comes in a later round).
pub fn allowed_hosts(addr: std::net::SocketAddr) -> Option<Vec<String>> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let port = addr.port();
    let mut hosts = vec![
        addr.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    if port == 80 {
        hosts.extend(["localhost".to_string(), "127.0.0.1".to_string(), "[::1]".to_string()]);
    }
    hosts.sort();
    hosts.dedup();
    Some(hosts)
}

/// Whether the request's `Host` is one the console answers to.
fn host_allowed(allowed: Option<&[String]>, headers: &HeaderMap) -> bool {
    let Some(allowed) = allowed else { return true };
    let hosts: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    match hosts.as_slice() {
        [one] => one.to_str().is_ok_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h))),
        _ => false,
    }
}

/// The middleware: methods, host, then the headers on whatever answers.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = app.error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only console",
            "This console only shows runs: it takes no action without authentication, which a later \
             version adds. Use the `runbook` command line to act on a run.",
        );
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else if !host_allowed(app.allowed_hosts.as_deref(), request.headers()) {
        app.error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown host",
            &format!(
                "This console answers only to the address it listens on ({}) or localhost on its port: \
                 a page under another name could be a DNS rebinding attack.",
                app.addr
            ),
        )
    } else if request.uri().path().starts_with("/assets/") {
        next.run(request).await
    } else {
        // A page waits its turn among those built at once (`App::turns`; never closed).
        match app.turns.acquire().await {
            Ok(_turn) => next.run(request).await,
            Err(_) => app.error_page(StatusCode::SERVICE_UNAVAILABLE, "stopping", "The console is stopping."),
        }
    };
    let h = response.headers_mut();
    for (name, value) in headers() {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listen_address_and_localhost_on_its_port_are_allowed() {
        let allowed = allowed_hosts("127.0.0.1:8080".parse().expect("addr")).expect("loopback");
        let ok = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).expect("value"));
            host_allowed(Some(&allowed), &m)
        };
        assert!(ok("127.0.0.1:8080"));
        assert!(ok("localhost:8080"));
        assert!(ok("LOCALHOST:8080"));
        for bad in
            ["evil.example:8080", "localhost", "127.0.0.1", "localhost:8081", "127.0.0.1:8080.evil", ""]
        {
            assert!(!ok(bad), "{bad}");
        }
        assert!(!host_allowed(Some(&allowed), &HeaderMap::new()));
        assert!(allowed_hosts("0.0.0.0:8080".parse().expect("addr")).is_none());
    }
}
