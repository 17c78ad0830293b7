//! Who is asking (`runbook serve --auth token|proxy`): operator tokens and their sessions,
//! the trusted proxy's identity header, and the CSRF token of every form.
//!
//! - A token is `rbt_` and 64 hex digits (32 bytes from the OS); the store keeps only its
//!   SHA-256 ([`token_hash`]): a token has 256 bits of entropy, so a fast hash cannot be
//!   searched backwards and a slow one (argon2, bcrypt) would protect nothing more.
//! - A browser types its token once on `/login` and gets a session cookie (32 random
//!   bytes, `HttpOnly; SameSite=Strict; Path=/`, [`SESSION`] long); the store keeps the
//!   SHA-256 of its id with the token's name and its expiry (`Store::start_session`), so a
//!   restart signs no one out and every console on the store knows it. Its forms' CSRF
//!   token is an HMAC of the id ([`csrf_of`]): stored nowhere. The API takes
//!   `Authorization: Bearer rbt_...`. Each request with a session or a bearer reads the
//!   token's row: a revoked token stops working at once, its sessions too.
//! - Behind a proxy, the identity header is read only when the TCP peer is one of the
//!   trusted proxies; from any other address it is ignored (anonymous, read-only).
//! - An identity is a bounded single line ([`identity`]): a header with control, bidi or
//!   zero-width characters, or too long, is refused (400), never recorded.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use runbook_store::{Location, Store, StoreError};
use sha2::{Digest as _, Sha256};

/// How the console knows who is asking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Nobody: the console is read-only.
    #[default]
    None,
    /// Operator tokens (`runbook serve token add NAME`).
    Token,
    /// An authenticating reverse proxy: `header` names the user, believed only from
    /// `trusted` peers.
    Proxy {
        /// The proxies' addresses.
        trusted: Vec<IpAddr>,
        /// The header that names the user (`X-Forwarded-Email`).
        header: String,
    },
}

impl Auth {
    /// Whether anything can be written (someone can be identified).
    pub fn writes(&self) -> bool {
        !matches!(self, Auth::None)
    }
}

/// How long a session lasts from sign-in.
pub const SESSION: Duration = Duration::from_secs(8 * 3600);
/// The most sessions the store keeps at once (expired ones and revoked tokens' ones are
/// deleted first, on every sign-in).
pub const MAX_SESSIONS: usize = 10_000;
/// The most sessions one token (one identity) keeps: signing in once more ends its oldest,
/// so no one identity can fill [`MAX_SESSIONS`] (it takes 625 live tokens).
pub const SESSIONS_PER_IDENTITY: usize = 16;
/// The longest identity (bytes).
pub const MAX_IDENTITY: usize = 256;
/// The session cookie's name.
pub const COOKIE: &str = "runbook_session";
/// The token prefix.
pub const PREFIX: &str = "rbt_";

/// A new operator token: [`PREFIX`] and 32 random bytes from the OS as hex.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

/// What the store keeps of a token: its SHA-256, as hex.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of the forms of the session `id` (64 hex digits): an HMAC-SHA-256 keyed
/// with the id's bytes, so every console derives it and no store holds it. `None` for an
/// id that is not 64 hex digits (no session has it).
pub fn csrf_of(id: &str) -> Option<String> {
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hmac(&key, "runbook console session csrf"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104) of `message` with `key`, as hex.
fn hmac(key: &[u8; 32], message: &str) -> String {
    let mut inner = Sha256::new();
    let mut outer = Sha256::new();
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message.as_bytes());
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    hex(&outer.finalize())
}

/// `name` as an identity: one line (no control, bidi or zero-width character: what
/// `shown::one_line` would escape), no surrounding spaces, 1 to [`MAX_IDENTITY`] bytes.
pub fn identity(name: &str) -> Result<&str, String> {
    if name.is_empty() || name.len() > MAX_IDENTITY {
        return Err(format!("an identity is 1 to {MAX_IDENTITY} bytes (this one is {})", name.len()));
    }
    if runbook_core::shown::one_line(name) != name || name.trim() != name {
        return Err(
            "an identity is one line of visible characters (no control, bidi or zero-width character, no surrounding space)"
                .into(),
        );
    }
    Ok(name)
}

/// `name` as the name of an operator token (`runbook serve token add NAME`): an
/// [`identity`] the approval rules accept (`journal::identity_problem`), written in its
/// NFKC form (`bob`, never the full-width `ｂｏｂ` or another compatibility spelling), so
/// that names which only look alike cannot be two tokens' names; the store then refuses
/// a name whose `identity_key` (case folded, spaces collapsed) another token has.
pub fn operator_name(name: &str) -> Result<&str, String> {
    use unicode_normalization::UnicodeNormalization as _;
    let name = identity(name)?;
    if let Some(why) = runbook_core::journal::identity_problem(name) {
        return Err(why);
    }
    let nfkc: String = name.nfkc().collect();
    if nfkc != name {
        return Err(format!(
            "it is not written in its plain (NFKC) form: write `{}`",
            runbook_core::shown::one_line(&nfkc)
        ));
    }
    Ok(name)
}

/// Why the token `name` cannot sign in: another token, `twin`, names the same person.
pub fn twin_refusal(name: &str, twin: &str) -> String {
    format!(
        "the token `{}` names the same person as the token `{}` (identities compare case-folded and NFKC-normalised); \
         neither signs in while both are live: an administrator revokes one with `runbook serve token revoke NAME`",
        runbook_core::shown::one_line(name),
        runbook_core::shown::one_line(twin)
    )
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Who {
    /// The identity the journal records.
    pub name: String,
    /// The CSRF token its forms carry (empty for a bearer: no browser sends one by itself).
    pub csrf: String,
    /// Authenticated by `Authorization: Bearer` (no cookie: no cross-site forgery).
    pub bearer: bool,
    /// The session id, when signed in on `/login`.
    pub session: Option<String>,
}

/// The console's authentication state.
pub struct Gate {
    /// The mode.
    pub auth: Auth,
    location: Location,
    /// The store opened read-write (tokens, decisions): only when `auth` writes.
    writer: tokio::sync::Mutex<Option<Store>>,
    /// The key of the proxy mode's CSRF tokens (random per process).
    key: [u8; 32],
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("auth", &self.auth).finish_non_exhaustive()
    }
}

/// A refused identification.
#[derive(Debug)]
pub enum Refused {
    /// 400: the proxy's identity header is not a usable identity.
    BadIdentity(String),
    /// 503: the store cannot be read to check a token.
    Store(String),
}

impl Gate {
    pub fn new(auth: Auth, location: Location) -> Gate {
        let mut key = [0u8; 32];
        // Without a random source the proxy mode's forms cannot be protected: the key of
        // zeroes is refused below (no form is accepted).
        let _ = getrandom::fill(&mut key);
        Gate { auth, location, writer: tokio::sync::Mutex::new(None), key }
    }

    /// The store, opened read-write (`Store::open`) once auth is configured; opened again
    /// after a failure.
    pub async fn store(&self) -> Result<Store, String> {
        if !self.auth.writes() {
            return Err("the console has no authentication: it writes nothing".into());
        }
        let mut cached = self.writer.lock().await;
        if let Some(s) = &*cached {
            return Ok(s.clone());
        }
        match tokio::time::timeout(Duration::from_secs(10), Store::open(&self.location)).await {
            Ok(Ok(s)) => {
                *cached = Some(s.clone());
                Ok(s)
            }
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(_) => Err(format!("the state store {} did not answer within 10 s", self.location.shown())),
        }
    }

    /// A store failure in words (the URL's password masked); the store is opened again
    /// next time.
    pub fn failed(&self, e: &StoreError) -> String {
        runbook_core::shown::one_line(&format!(
            "the state store {} cannot be used: {}",
            self.location.shown(),
            self.location.masked(&e.to_string())
        ))
    }

    async fn forget(&self) {
        *self.writer.lock().await = None;
    }

    /// The secrets' engine environment of the console's store (what `runbook` hides from
    /// secret helpers), for redacting what an approver types.
    pub fn engine_env(&self) -> runbook_exec::secrets::EngineEnv {
        match &self.location {
            Location::Sqlite(_) => runbook_exec::secrets::EngineEnv::sqlite(),
            Location::Postgres(url) => runbook_exec::secrets::EngineEnv::postgres(url),
        }
    }

    /// Who sent `headers` from `peer`: `None` is anonymous (read-only).
    pub async fn identify(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Option<Who>, Refused> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Proxy { trusted, header: name } => {
                // Only from a trusted proxy; from anyone else the header is not read at all.
                let Some(peer) = peer.map(|p| p.to_canonical()) else { return Ok(None) };
                if !trusted.iter().any(|t| t.to_canonical() == peer) {
                    return Ok(None);
                }
                let values: Vec<_> = headers.get_all(name.as_str()).iter().collect();
                let value = match values.as_slice() {
                    [] => return Ok(None),
                    [one] => std::str::from_utf8(one.as_bytes()).map_err(|_| {
                        Refused::BadIdentity(format!("the proxy's `{name}` header is not UTF-8 text"))
                    })?,
                    _ => return Err(Refused::BadIdentity(format!("the proxy sent `{name}` more than once"))),
                };
                // `a, b` is what a proxy that appends to a client's header sends: ambiguous.
                if value.contains(',') {
                    return Err(Refused::BadIdentity(format!(
                        "the proxy's `{name}` holds a comma: it names more than one user, or a client's value was appended to"
                    )));
                }
                let who = identity(value)
                    .map_err(|e| Refused::BadIdentity(format!("the proxy's `{name}`: {e}")))?;
                if self.key == [0u8; 32] {
                    return Ok(None);
                }
                Ok(Some(Who {
                    name: who.to_string(),
                    csrf: hmac(&self.key, who),
                    bearer: false,
                    session: None,
                }))
            }
            Auth::Token => {
                if let Some(token) = bearer(headers) {
                    return Ok(self.by_token(token).await?.map(|name| Who {
                        name,
                        csrf: String::new(),
                        bearer: true,
                        session: None,
                    }));
                }
                let Some(id) = cookie(headers, COOKIE) else { return Ok(None) };
                let Some(csrf) = csrf_of(id) else { return Ok(None) };
                // The store's row, joined with its token's: an expired session, or one of a
                // revoked token, is refused (and deleted) at once, on every console.
                let store = self.store().await.map_err(Refused::Store)?;
                let name = match store.session(&token_hash(id), now_ms()).await {
                    Ok(Some(name)) => name,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.forget().await;
                        return Err(Refused::Store(self.failed(&e)));
                    }
                };
                Ok(Some(Who { name, csrf, bearer: false, session: Some(id.to_string()) }))
            }
        }
    }

    /// The operator a token signs in as, if it is a live token (its use recorded).
    pub async fn by_token(&self, token: &str) -> Result<Option<String>, Refused> {
        let token = token.trim();
        if !token.starts_with(PREFIX) || token.len() > 200 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let store = self.store().await.map_err(Refused::Store)?;
        let found = match store.token_by_hash(&hash).await {
            Ok(f) => f,
            Err(e) => {
                self.forget().await;
                return Err(Refused::Store(self.failed(&e)));
            }
        };
        match found {
            Some((t, stored)) if same(&stored, &hash) && t.is_live() => {
                // Two tokens of one person (a store from before adv19a-3's folding) are never
                // merged silently: neither signs in until one is revoked.
                let twins = match store.token_twins(&t.name).await {
                    Ok(twins) => twins,
                    Err(e) => {
                        self.forget().await;
                        return Err(Refused::Store(self.failed(&e)));
                    }
                };
                if let Some(twin) = twins.first() {
                    return Err(Refused::BadIdentity(twin_refusal(&t.name, twin)));
                }
                let _ = store.touch_token(&t.name, &runbook_exec::dispatch::now().0).await;
                Ok(Some(t.name))
            }
            _ => Ok(None),
        }
    }

    /// A new session for the token `name`: its id (the cookie's value), kept in the store by
    /// its SHA-256 (`Store::start_session`). `name` keeps at most [`SESSIONS_PER_IDENTITY`]
    /// sessions (its oldest is ended); expired sessions and those of revoked tokens are
    /// deleted first; `Ok(None)` when the store still holds [`MAX_SESSIONS`]; `Err` when
    /// the store cannot be written (or the system has no random source).
    pub async fn start_session(&self, name: &str) -> Result<Option<String>, String> {
        let id = random_hex().ok_or("the system's random source failed")?;
        let store = self.store().await?;
        let now = now_ms();
        let until = now.saturating_add(SESSION.as_millis() as i64);
        match store
            .start_session(&token_hash(&id), name, now, until, SESSIONS_PER_IDENTITY, MAX_SESSIONS)
            .await
        {
            Ok(true) => Ok(Some(id)),
            Ok(false) => Ok(None),
            Err(e) => {
                self.forget().await;
                Err(self.failed(&e))
            }
        }
    }

    /// End a session (`/logout`): its row is deleted, so no console knows it any more.
    pub async fn end_session(&self, id: &str) -> Result<(), String> {
        let store = self.store().await?;
        if let Err(e) = store.end_session(&token_hash(id)).await {
            self.forget().await;
            return Err(self.failed(&e));
        }
        Ok(())
    }
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The value of cookie `name` (the first).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` of a new session.
pub fn session_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", SESSION.as_secs())
}

/// The `Set-Cookie` that ends it.
pub fn ended_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Whether a form's POST comes from the console's own pages: its `Origin` (or, without one,
/// its `Referer`) is the console's origin for the request's `Host` (which the guard has
/// already checked names the console).
///
/// The console may be reached through a TLS front (the book's proxy setup), so both
/// schemes are the console's own, compared as origins are: the scheme's default port is
/// the port a `Host` without one means and an `Origin` without one has (`Host:
/// ops-console.example.com:443` is `https://ops-console.example.com`), names compared
/// case-insensitively. Anything else (another name, port or scheme, `null`, user info, a
/// path in an `Origin`) fails closed.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let Some((name, port)) = split_host(host) else { return false };
    let own = |origin: &str| {
        let Some((scheme, rest)) = origin.split_once("://") else { return false };
        let default = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let Some((o_name, o_port)) = split_host(rest) else { return false };
        o_name.eq_ignore_ascii_case(name) && o_port.unwrap_or(default) == port.unwrap_or(default)
    };
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) => own(origin),
        Some(Err(_)) => false,
        None => headers.get(header::REFERER).and_then(|r| r.to_str().ok()).is_some_and(|r| {
            let Some((scheme, rest)) = r.split_once("://") else { return false };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            // A Referer's path starts with `/`: `http://h?x` and `http://h#x` are not forms of ours.
            (end == rest.len() || rest[end..].starts_with('/'))
                && own(&format!("{scheme}://{}", &rest[..end]))
        }),
    }
}

/// `name[:port]` (a `Host`, or an origin's authority): the name and the port, if any.
/// `None` for anything that is not exactly that (user info, an empty name, a bad port).
fn split_host(authority: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        }
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':');
    if name.is_empty() || !name.chars().all(ok) || (!name.starts_with('[') && name.contains(':')) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((name, port))
}

tokio::task_local! {
    /// The identity of the request being answered and its forms' CSRF token, for the page
    /// header ("signed in as") and the forms of every page.
    pub static SIGNED_IN: Option<(String, String)>;
}

/// The identity of the request being answered and its CSRF token (see [`SIGNED_IN`]).
pub fn signed_in() -> Option<(String, String)> {
    SIGNED_IN.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64, "{a}");
        assert_eq!(token_hash(&a).len(), 64);
        assert!(!token_hash(&a).contains(&a[PREFIX.len()..]));
        assert!(same(&token_hash(&a), &token_hash(&a)));
        assert!(!same(&token_hash(&a), &token_hash(&b)));
        assert!(!same("ab", "abc"));
    }

    #[test]
    fn a_sessions_csrf_token_is_derived_from_its_id_only() {
        let a = random_hex().expect("id");
        let b = random_hex().expect("id");
        assert_eq!(csrf_of(&a), csrf_of(&a));
        assert_ne!(csrf_of(&a), csrf_of(&b));
        let csrf = csrf_of(&a).expect("a CSRF token");
        // Neither the id nor what the store keeps of it (its SHA-256).
        assert!(csrf != a && csrf != token_hash(&a) && csrf.len() == 64, "{csrf}");
        for bad in ["", "x", &a[..63], &a.to_uppercase(), &format!("{a}0"), &"g".repeat(64)] {
            assert_eq!(csrf_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 1: a key of 20 bytes 0x0b (padded with zeroes to the block, as
        // our 32-byte key with 12 zero bytes is), "Hi There".
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hmac(&key, "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_ne!(hmac(&key, "alice"), hmac(&key, "bob"));
    }

    proptest::proptest! {
        /// Any text is an identity only as one bounded line with nothing hidden in it.
        #[test]
        fn any_text_is_an_identity_only_as_one_visible_line(name in "\\PC{0,40}|[\\x00-\\x7f\\u{80}-\\u{3000}\\u{200b}-\\u{206f}]{0,300}") {
            if let Ok(who) = identity(&name) {
                proptest::prop_assert!(!who.is_empty() && who.len() <= MAX_IDENTITY);
                proptest::prop_assert!(!who.chars().any(char::is_control), "{:?}", who);
                proptest::prop_assert_eq!(runbook_core::shown::one_line(who), who);
                proptest::prop_assert_eq!(who.trim(), who);
            }
        }
    }

    #[test]
    fn a_form_comes_from_the_console_only_by_its_own_origin() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    v.parse().expect("value"),
                );
            }
            m
        };
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[host, ("referer", "http://127.0.0.1:8080/runs/x")])));
        assert!(same_origin(&headers(&[host, ("referer", "http://127.0.0.1:8080")])));
        // Behind a TLS front: the scheme's default port is the one a Host or an Origin
        // without a port means.
        for (h, origin) in [
            ("127.0.0.1:8080", "https://127.0.0.1:8080"),
            ("ops-console.example.com:443", "https://ops-console.example.com"),
            ("ops-console.example.com:443", "https://ops-console.example.com:443"),
            ("ops-console.example.com:443", "HTTPS://OPS-Console.example.com"),
            ("ops-console.example.com", "https://ops-console.example.com"),
            ("ops-console.example.com", "http://ops-console.example.com"),
            ("ops-console.example.com:80", "http://ops-console.example.com"),
            ("[::1]:8080", "http://[::1]:8080"),
        ] {
            assert!(same_origin(&headers(&[("host", h), ("origin", origin)])), "{h} {origin}");
            let referer = format!("{origin}/runs/x");
            assert!(same_origin(&headers(&[("host", h), ("referer", referer.as_str())])), "{h} {referer}");
        }
        for (h, origin) in [
            ("ops-console.example.com:443", "http://ops-console.example.com"),
            ("ops-console.example.com:443", "https://ops-console.example.com:8443"),
            ("ops-console.example.com", "https://ops-console.example.com:8443"),
            ("ops-console.example.com:80", "https://ops-console.example.com"),
            ("ops-console.example.com:443", "https://ops-console.example.com.evil"),
            ("ops-console.example.com:443", "https://evil.ops-console.example.com"),
            ("[::1]:8080", "http://[::2]:8080"),
        ] {
            assert!(!same_origin(&headers(&[("host", h), ("origin", origin)])), "{h} {origin}");
        }
        for bad in [
            vec![host],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://127.0.0.1:8080.evil")],
            vec![host, ("origin", "https://127.0.0.1:8443")],
            vec![host, ("origin", "https://127.0.0.1")],
            vec![host, ("origin", "http://127.0.0.1")],
            vec![host, ("origin", "ftp://127.0.0.1:8080")],
            vec![host, ("origin", "http://user@127.0.0.1:8080")],
            vec![host, ("origin", "http://127.0.0.1:8080/")],
            vec![host, ("origin", "http://127.0.0.1:")],
            vec![host, ("referer", "http://127.0.0.1:8080?x")],
            vec![host, ("referer", "http://127.0.0.1:8080@evil/")],
            vec![host, ("origin", "http://127.0.0.1:8081")],
            vec![host, ("referer", "http://127.0.0.1:8080.evil/")],
            vec![host, ("referer", "http://127.0.0.1:80801/")],
            vec![host, ("origin", "http://evil"), ("referer", "http://127.0.0.1:8080/")],
            vec![("origin", "http://127.0.0.1:8080")],
        ] {
            assert!(!same_origin(&headers(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn an_identity_is_one_bounded_visible_line() {
        for good in ["alice", "alice@example.com", "Bob Smith", "élodie"] {
            assert_eq!(identity(good), Ok(good));
        }
        let long = "a".repeat(MAX_IDENTITY + 1);
        for bad in [
            "",
            " alice",
            "alice ",
            "al\nice",
            "alice\r\nX-Evil: 1",
            "al\u{1b}[31mice",
            "ali\u{202e}ce",
            "ali\u{200b}ce",
            "al\tice",
            "al\u{0}ice",
            long.as_str(),
        ] {
            assert!(identity(bad).is_err(), "{bad:?}");
        }
    }
}
