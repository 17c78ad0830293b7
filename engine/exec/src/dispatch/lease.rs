//! The lease: renewed by a task of its own, and released when the run lets it go.

use std::sync::Arc;
use std::time::Duration;

use runbook_store::StoreError;
use tokio::sync::watch;

use super::{Dispatcher, ExecError, Scope};

/// The lease's renewal: a task of its own, so nothing the dispatcher awaits (a `finally`
/// step, a compensation, a precondition, a slow store) can delay it. Each round it first
/// arms the reaper's watchdog, then renews the lease; a refused renewal (the lock was taken)
/// kills every step process group at once and says so on `lost`. Dropped (aborted) when the
/// engine lets the lock go or suspends it.
pub(super) struct Renewal {
    task: tokio::task::JoinHandle<()>,
    pub(super) lost: watch::Receiver<bool>,
    error: Arc<std::sync::Mutex<Option<StoreError>>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often the lease is renewed, and how long the reaper lets step processes live without
/// news from the engine: a quarter and three quarters of the lease. The watchdog's clock
/// starts after the renewal was sent and the store's lease after it arrived, so the step
/// processes of a stalled engine are killed a quarter of a lease before anyone else may take
/// the lease.
pub fn renewal_times(ttl: Duration) -> (Duration, Duration) {
    // `ttl / 4 * 3`, not `ttl * 3 / 4`: no overflow for any duration (red team adv28 E1).
    (ttl / 4, ttl / 4 * 3)
}

/// Waits until `flag` turns `true`; never, without one.
pub(super) async fn until_true(flag: &mut Option<watch::Receiver<bool>>) {
    match flag {
        Some(f) => {
            if f.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

impl Dispatcher<'_> {
    /// Start renewing the lease just taken (see [`Renewal`]).
    pub(super) fn start_renewal(&mut self) {
        let Some(lease) = self.lease.clone() else { return };
        let (tx, lost) = watch::channel(false);
        let error = Arc::new(std::sync::Mutex::new(None));
        let store = self.store.clone();
        let reaper = self.opts.reaper.clone();
        let ttl = self.opts.lease_ttl;
        let kept = error.clone();
        let task = tokio::spawn(async move {
            let (period, watchdog) = renewal_times(ttl);
            // Before the watchdog's deadline (armed just before the renewal), by an eighth of
            // the lease: the loss is known before the reaper's own kill can land.
            let bound = watchdog.saturating_sub(period / 2);
            loop {
                tokio::time::sleep(period).await;
                if let Some(r) = &reaper {
                    // A dead reaper is seen by the dispatcher through `Reaper::gone`.
                    let _ = r.watch(watchdog);
                }
                // The store's clock, not this host's: every engine judges leases by it. A
                // renewal the store does not answer before `bound` is a lost lease (red team
                // adv27 S2): the reaper's watchdog would kill the steps a quarter of a lease
                // later, with nothing telling the dispatcher, which took the kill for a
                // failure of the step and ran it again. The engine ends them itself and says
                // why.
                let renewal = async {
                    match store.clock_ms().await {
                        Ok(ms) => store.renew_lock(&lease, ms, ttl).await,
                        Err(e) => Err(e),
                    }
                };
                let renewed = tokio::time::timeout(bound, renewal).await.unwrap_or_else(|_| {
                    Err(StoreError::Stalled { lock: lease.name.clone(), secs: bound.as_secs() })
                });
                if let Err(e) = renewed {
                    if let Ok(mut slot) = kept.lock() {
                        *slot = Some(e);
                    }
                    // Lost before the kill: an attempt the kill ends is read as the lease's
                    // loss, never as the step's failure (`run_loop`).
                    let _ = tx.send(true);
                    if let Some(r) = &reaper {
                        let _ = r.kill_all();
                    }
                    return;
                }
            }
        });
        self.renewal = Some(Renewal { task, lost, error });
    }

    /// The lease was lost (or its renewal stalled): every step group is being killed.
    /// An included run asks the including run's renewal.
    pub(super) fn lease_lost(&self) -> bool {
        self.renewal.as_ref().is_some_and(|r| *r.lost.borrow())
            || self.opts.parent_lost.as_ref().is_some_and(|l| *l.borrow())
    }

    /// Why the renewal stopped.
    pub(super) fn lost_lease(&mut self) -> ExecError {
        let kept = self.renewal.take().and_then(|r| r.error.lock().ok().and_then(|mut e| e.take()));
        match kept {
            Some(e) => e.into(),
            None => ExecError::Store(StoreError::Fenced {
                run_id: self.opts.run_id.clone(),
                lock: self.lease.as_ref().map(|l| l.name.clone()).unwrap_or_default(),
                fence: self.lease.as_ref().map_or(0, |l| l.fence),
                current: 0,
            }),
        }
    }

    /// The run stopped unfinished (interrupted, needing an operator): no engine holds it
    /// any more, but it keeps its lock until it is resumed or ended
    /// ([`runbook_core::lifecycle::run_keeps_its_lock`]).
    pub(super) async fn park(&mut self) {
        self.let_go(true).await;
    }

    /// The run has finished: the lock is free.
    pub(super) async fn release(&mut self) {
        self.let_go(false).await;
    }

    async fn let_go(&mut self, park: bool) {
        if self.machine.scope() == Scope::Nested {
            // The lock is the including run's.
            return;
        }
        self.renewal = None;
        if let Some(lease) = self.lease.take() {
            let _ =
                if park { self.store.park_lock(&lease).await } else { self.store.release_lock(&lease).await };
        }
    }
}
