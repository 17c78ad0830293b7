//! `http` steps and webhook deliveries (`notify`, escalations), over reqwest with rustls.
//!
//! A request arrives here fully rendered. The response becomes the step's outputs
//! (`status`, `headers`, `body`, `json`, `latency_ms`); the step succeeds when the status is
//! expected, the latency is under `max-latency`, and the `assert` expression holds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::{Check, Outputs};

/// The most of a response body kept in the `body` output (the `json` output is parsed
/// from up to [`MAX_BODY`]).
pub const BODY_OUTPUT_LIMIT: usize = 64 * 1024;
/// The most of a response body read at all.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// A request with every template rendered.
#[derive(Debug, Clone)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Query pairs (percent-encoded by the client).
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: Body,
    /// Accepted statuses (empty: any 2xx).
    pub expect_status: Vec<u16>,
    /// Latency limit.
    pub max_latency: Option<Duration>,
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 the CA file had when the run started; `None`: not checked.
    pub ca_sha256: Option<String>,
    /// Client-side limit for the whole exchange.
    pub request_timeout: Option<Duration>,
}

/// What a request sends.
#[derive(Debug, Clone)]
pub enum Body {
    /// Nothing.
    None,
    /// Text.
    Text(String),
    /// JSON (`Content-Type: application/json`).
    Json(Value),
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn client(req: &Request) -> Result<reqwest::Client, String> {
    install_crypto();
    let mut builder = reqwest::Client::builder().user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = req.request_timeout {
        builder = builder.timeout(t);
    }
    if let Some(path) = &req.ca_file {
        let pem =
            crate::files::read_pinned(path, req.ca_sha256.as_deref()).map_err(|e| format!("CA file: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file `{}` holds no PEM certificate: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file `{}` holds no PEM certificate", path.display()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
}

/// Why a request got no answer, in words: the cause a person acts on (a refused
/// connection, a TLS failure, a timeout, a name that does not resolve) instead of the
/// wrappers' text and the libraries' `Debug` names (`InvalidContentType`, `UnknownIssuer`,
/// `client error (Connect)`). The chain is walked with `Display` and `downcast_ref` alone
/// (ARCHITECTURE.md, "user-facing errors are said in words"); what is not recognised falls
/// back to [`error_chain`] without the wrappers.
pub fn error_words(e: &reqwest::Error, timeout: Option<std::time::Duration>) -> String {
    // The URL is not named here: the step's line names it, redacted whole, and a webhook's
    // URL may be a secret of which a host or a port would be a piece (promise 3).
    let mut level: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut deepest = String::new();
    while let Some(err) = level {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls_words(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = tls_inside(io) {
                return tls_words(tls);
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return "connection refused (nothing listens on that port, or a firewall refuses)".into();
                }
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    return "the server closed the connection".into();
                }
                std::io::ErrorKind::TimedOut => return "connecting timed out".into(),
                _ => {}
            }
            let text = io.to_string();
            if text.contains("lookup address") || text.contains("Name or service not known") {
                return format!("the host name does not resolve (DNS): {}", without_os_code(&text));
            }
        }
        let text = err.to_string();
        if text.starts_with("dns error") {
            deepest = "the host name does not resolve (DNS)".into();
        } else if !is_wrapper(err, &text) && deepest.is_empty() {
            deepest = without_os_code(&text);
        }
        level = err.source();
    }
    if e.is_timeout() {
        return match timeout {
            Some(t) => format!("no answer within {} (`request-timeout`)", humantime::format_duration(t)),
            None => "no answer in time".into(),
        };
    }
    if deepest.is_empty() && e.is_connect() {
        return "cannot connect".into();
    }
    if deepest.is_empty() { without_os_code(&error_chain(e)) } else { deepest }
}

/// The TLS error an io error carries, through the io errors that wrap it (its `source()`
/// skips the error it carries: only `get_ref` reaches it).
fn tls_inside(io: &std::io::Error) -> Option<&rustls::Error> {
    let inner = io.get_ref()?;
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    inner.downcast_ref::<std::io::Error>().and_then(tls_inside)
}

/// A level of the chain that only wraps its cause: reqwest's "error sending request for
/// url (..)" (the step's line already names the URL), hyper's "client error (Connect)".
fn is_wrapper(err: &(dyn std::error::Error + 'static), text: &str) -> bool {
    err.downcast_ref::<reqwest::Error>().is_some()
        || text.starts_with("client error")
        || text.starts_with("error sending request")
        || text == "tcp connect error"
}

/// An io error's text without its `(os error N)` tail.
fn without_os_code(text: &str) -> String {
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// A TLS failure, in words.
fn tls_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "TLS: the server's certificate is not trusted: no known authority signed it (give the authority's certificate as `ca-file`)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "TLS: the server's certificate is not valid for the host name of the URL: it was issued for another name".into()
            }
            C::Expired | C::ExpiredContext { .. } => "TLS: the server's certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (is this host's clock right?)".into()
            }
            C::Revoked => "TLS: the server's certificate was revoked".into(),
            C::BadSignature => "TLS: the server's certificate has a bad signature".into(),
            C::BadEncoding => "TLS: the server's certificate cannot be read".into(),
            _ => "TLS: the server's certificate was refused".into(),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "TLS: the server did not answer in TLS (a plain-HTTP server? then the URL starts with `http://`)".into()
        }
        rustls::Error::AlertReceived(_) => "TLS: the server ended the handshake (it refused this client)".into(),
        rustls::Error::NoCertificatesPresented => "TLS: the server presented no certificate".into(),
        _ => "TLS: the handshake failed".into(),
    }
}

/// The error and its causes on one line (reqwest's own message is often just "error
/// sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Send the request; the response as outputs, or why there is none. The body is redacted
/// as bytes before anything cuts it (`body` keeps [`BODY_OUTPUT_LIMIT`]) or parses it
/// (`json`, whose numbers beyond a u64 or an f64 would otherwise be re-encoded before the
/// journal's value-by-value redaction sees them): no piece of a secret survives either
/// (issue 11, promise 3).
pub async fn send(req: &Request, redactor: &crate::secrets::Redactor) -> Result<Outputs, String> {
    let client = client(req)?;
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", req.method))?;
    let mut builder = client.request(method, &req.url);
    if !req.query.is_empty() {
        builder = builder.query(&req.query);
    }
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    builder = match &req.body {
        Body::None => builder,
        Body::Text(t) => builder.body(t.clone()),
        Body::Json(j) => builder.json(j),
    };
    let start = Instant::now();
    let words = |e: &reqwest::Error| error_words(e, req.request_timeout);
    let mut response = builder.send().await.map_err(|e| format!("request failed: {}", words(&e)))?;
    let mut bytes = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| format!("reading the response failed: {}", words(&e)))?
    {
        let room = MAX_BODY.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    let latency_ms = start.elapsed().as_millis() as u64;
    let status = response.status().as_u16();
    let mut headers = serde_json::Map::new();
    for (k, v) in response.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        // Repeated headers are joined as HTTP allows.
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let bytes = redactor.redact_bytes(&bytes);
    // A secret that was a JSON number is now a mark outside a string: not JSON any more,
    // and `json` is null rather than the number's rounded digits.
    let json = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let mut body = String::from_utf8_lossy(&bytes).into_owned();
    if body.len() > BODY_OUTPUT_LIMIT {
        let mut cut = BODY_OUTPUT_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    Ok(BTreeMap::from([
        ("status".to_string(), Value::from(status)),
        ("headers".to_string(), Value::Object(headers)),
        ("body".to_string(), Value::String(body)),
        ("json".to_string(), json),
        ("latency_ms".to_string(), Value::from(latency_ms)),
    ]))
}

/// Whether a response passes the step's checks (status, latency), before `assert`.
pub fn judge(req: &Request, outputs: &Outputs) -> Check {
    let status = outputs.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
    let ok_status = if req.expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        req.expect_status.contains(&status)
    };
    if !ok_status {
        let wanted = if req.expect_status.is_empty() {
            "a 2xx status".to_string()
        } else {
            req.expect_status.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        };
        return Check::Failed(format!("{} {} answered {status}, expected {wanted}", req.method, req.url));
    }
    let latency = outputs.get("latency_ms").and_then(Value::as_u64).unwrap_or(0);
    if let Some(max) = req.max_latency
        && u128::from(latency) > max.as_millis()
    {
        return Check::Failed(format!(
            "{} {} took {latency} ms, over the {} ms limit (`max-latency`)",
            req.method,
            req.url,
            max.as_millis()
        ));
    }
    Check::Passed(format!("{} {} → {status} in {latency} ms", req.method, req.url))
}
