//! Connections are bounded in number and in time (axum's `serve` bounds neither):
//!
//! - At most [`MAX_CONNECTIONS`] are open at once: the listener accepts the next one only
//!   when one closes (the others wait in the kernel's queue), so a flood of clients holds
//!   at most that many descriptors and tasks.
//! - A request's head (its request line and headers) must arrive within [`HEAD`] of its
//!   first wait, in total: a client that trickles a byte now and then is cut at the same
//!   time as a silent one (activity is not progress).
//! - A request's body (its `Content-Length` bytes: a signed-in act's form or JSON) must
//!   arrive within the same [`HEAD`] deadline, and is the same request: bytes after a head
//!   are a new head only once the body announced is in (red team adv27 C1: a body's bytes
//!   were taken for the next head, so an act was prepared under the head's 10 s and cut with
//!   no response at all, dropped wherever it was).
//! - While a response is prepared (the head and its body have arrived, nothing is written
//!   yet) no timer runs: the page itself is bounded (the store's timeouts, the check's
//!   wait), so a request being answered is never cut.
//! - While a response is written, a client that stops reading is cut after [`IDLE`] without
//!   progress, and a response not written in [`TOTAL`] from its first byte is cut whatever
//!   its progress (a client reading a few bytes now and then held a slot for ever), except
//!   a stream of events ([`Conn::streaming`]), which has its own bounds (`live.rs`).

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How long writing a response may make no progress (a client that stopped reading).
pub const IDLE: Duration = Duration::from_secs(30);

/// How long a request's head may take to arrive, in total, from the moment the connection
/// waits for it (accepted, or the previous response written).
pub const HEAD: Duration = Duration::from_secs(10);

/// The most connections open at once.
pub const MAX_CONNECTIONS: usize = 256;

/// The longest a response may take to be written, from its first byte (a 5,000-step run's
/// page is a few MB: two minutes is 25 kB/s).
pub const TOTAL: Duration = Duration::from_secs(120);

/// The bytes of a head's line kept to read a body's length: longer lines are cut.
const LINE: usize = 256;

/// A body whose end these bytes cannot tell: it lasts until the response starts.
const UNTIL_ANSWERED: u64 = u64::MAX;

/// What a head's line says of the request's body: its `Content-Length` (any case, spaces
/// around the value), [`UNTIL_ANSWERED`] for a `Transfer-Encoding` or a length that cannot
/// be read (cut, not a number), `None` for any other line.
fn body_length(line: &[u8], cut: bool) -> Option<u64> {
    let (name, value) = line.split_at(line.iter().position(|b| *b == b':')?);
    let name = name.trim_ascii();
    if name.eq_ignore_ascii_case(b"transfer-encoding") {
        return Some(UNTIL_ANSWERED);
    }
    if !name.eq_ignore_ascii_case(b"content-length") {
        return None;
    }
    let length = std::str::from_utf8(&value[1..]).ok().and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) if !cut => Some(n),
        _ => Some(UNTIL_ANSWERED),
    }
}

/// What a request knows of its connection (axum's `ConnectInfo`): the peer's address, and
/// a way to say that its response is a stream of events with its own bounds.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The peer's address.
    pub remote: SocketAddr,
    streaming: Arc<std::sync::atomic::AtomicBool>,
}

impl Conn {
    /// This connection's response is a stream of events: no [`TOTAL`] deadline (the stream
    /// is bounded by `live::STREAM_MAX` and keeps the [`IDLE`] one with its heartbeats).
    pub fn streaming(&self) {
        self.streaming.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, IdleListener>> for Conn {
    fn connect_info(stream: axum::serve::IncomingStream<'_, IdleListener>) -> Conn {
        Conn { remote: *stream.remote_addr(), streaming: stream.io().streaming.clone() }
    }
}

/// A listener whose connections are capped and bounded in time.
#[derive(Debug)]
pub struct IdleListener {
    inner: TcpListener,
    open: Arc<Semaphore>,
}

impl IdleListener {
    pub fn new(inner: TcpListener) -> IdleListener {
        IdleListener { inner, open: Arc::new(Semaphore::new(MAX_CONNECTIONS)) }
    }
}

impl axum::serve::Listener for IdleListener {
    type Io = IdleStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (IdleStream, SocketAddr) {
        // Never closed: `acquire_owned` cannot fail; a place frees when a stream drops.
        let permit = self.open.clone().acquire_owned().await.ok();
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let stream = IdleStream {
            io,
            head: Head::Waiting,
            deadline: Box::pin(tokio::time::sleep(HEAD)),
            crlf: 0,
            line: Vec::new(),
            cut: false,
            seen: false,
            body: 0,
            began: None,
            streaming: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            _permit: permit,
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Where the connection stands with its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Waiting for (the rest of) a head: the deadline is the head's.
    Waiting,
    /// The head announced a body (`Content-Length`), still arriving: the head's deadline.
    Body,
    /// The head has arrived and nothing is written yet: the response is being prepared.
    Preparing,
    /// A response is being written: the deadline is [`IDLE`] from the last progress.
    Writing,
}

/// A connection with its deadlines.
#[derive(Debug)]
pub struct IdleStream {
    io: TcpStream,
    head: Head,
    deadline: Pin<Box<Sleep>>,
    /// 1 when the last bytes read (`\r` aside) end a line: a line break next ends the head.
    crlf: u8,
    /// The head's line being read (its first [`LINE`] bytes), and whether it was longer.
    line: Vec<u8>,
    cut: bool,
    /// A byte of the head other than a line break came (empty lines before it are skipped).
    seen: bool,
    /// The `Content-Length` the head gave, then the body's bytes still to come
    /// ([`UNTIL_ANSWERED`]: until the response starts).
    body: u64,
    /// When the response being written wrote its first byte.
    began: Option<Instant>,
    /// The response is a stream of events (no [`TOTAL`]).
    streaming: Arc<std::sync::atomic::AtomicBool>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl IdleStream {
    /// Bytes read: a head starts (its deadline runs from the first wait, not reset by more
    /// bytes) or ends at an empty line; the body its `Content-Length` announces follows under
    /// the same deadline, and the request is prepared once it is in. Empty lines before a
    /// request line are skipped, as hyper skips them (red team adv28 W2: `\r\n\r\n` alone
    /// ended a "head" and left the connection with no timer while hyper waited for one). A
    /// body whose length these bytes do not tell (`Transfer-Encoding`, a `Content-Length`
    /// longer than [`LINE`] or not a number) stays under the head's deadline until the
    /// response starts (red team adv28 W1: such a body was never timed).
    fn read_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.head == Head::Body {
                if self.body != UNTIL_ANSWERED {
                    self.body = self.body.saturating_sub(1);
                    if self.body == 0 {
                        self.head = Head::Preparing;
                    }
                }
                continue;
            }
            if self.head != Head::Waiting {
                // More bytes: the next request's head.
                self.head = Head::Waiting;
                self.began = None;
                self.deadline.as_mut().reset(Instant::now() + HEAD);
                self.crlf = 0;
                self.line.clear();
                self.cut = false;
                self.seen = false;
                self.body = 0;
            }
            // An empty line ends the head: `\r\n\r\n`, or `\n\n` (which hyper accepts too).
            match b {
                b'\n' if self.crlf == 1 && self.seen => {
                    self.head = if self.body > 0 { Head::Body } else { Head::Preparing };
                    self.crlf = 0;
                }
                b'\n' => {
                    self.crlf = u8::from(self.seen);
                    if let Some(length) = body_length(&self.line, self.cut) {
                        self.body = length;
                    }
                    self.line.clear();
                    self.cut = false;
                }
                b'\r' => {}
                _ => {
                    self.crlf = 0;
                    self.seen = true;
                    if self.line.len() < LINE {
                        self.line.push(b);
                    } else {
                        self.cut = true;
                    }
                }
            }
        }
    }

    /// `deadline`, or the response's total deadline when it is sooner (a response under
    /// way, not a stream of events).
    fn capped(&self, deadline: Instant) -> Instant {
        match self.began {
            Some(began) if !self.streaming.load(std::sync::atomic::Ordering::SeqCst) => {
                deadline.min(began + TOTAL)
            }
            Some(_) | None => deadline,
        }
    }

    /// What a write did: bytes written push the write deadline back; `Pending` waits for it.
    fn wrote(&mut self, written: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match written {
            // An interim response (`100 Continue`) while a body of known length is awaited
            // starts nothing; any write ends a body of unknown length.
            Poll::Ready(Ok(n)) if self.head == Head::Body && self.body != UNTIL_ANSWERED => {
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let now = Instant::now();
                    // A response starts with its first byte after its head (hyper also polls
                    // the socket for reading while it writes: that is not a new response).
                    if self.head == Head::Preparing || self.began.is_none() {
                        self.began = Some(now);
                    }
                    self.head = Head::Writing;
                    let deadline = self.capped(now + IDLE);
                    self.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.waiting(cx),
        }
    }

    /// `Pending` from the socket: an error once the deadline has passed; no deadline while
    /// a response is being prepared.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.head == Head::Preparing {
            return Poll::Pending;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection too slow")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The socket has no bytes to read: after a response, the wait for the next head.
    fn read_waiting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.head == Head::Writing {
            self.head = Head::Waiting;
            // A stream of events waits for its next event as long as its heartbeat allows.
            let wait = if self.streaming.load(std::sync::atomic::Ordering::SeqCst) { IDLE } else { HEAD };
            let deadline = self.capped(Instant::now() + wait);
            self.deadline.as_mut().reset(deadline);
        }
        self.waiting(cx)
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len();
                if read > before {
                    let fresh = buf.filled()[before..read].to_vec();
                    this.read_bytes(&fresh);
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.read_waiting(cx),
        }
    }
}

impl AsyncWrite for IdleStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        this.wrote(written, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
