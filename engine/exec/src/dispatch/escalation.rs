//! Escalations: timers from the run's start, notifications sent in the background.

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::action::{self};
use crate::http;

use super::machine;
use super::{Dispatcher, Msg, Report};

impl Dispatcher<'_> {
    /// The escalations at this moment (see [`machine::escalations`]).
    fn escalations_now(&self, started: SystemTime, escalating: &[String]) -> machine::Escalations {
        let elapsed = SystemTime::now().duration_since(started).unwrap_or_default();
        let fired = &self.journal.escalations_fired;
        machine::escalations(self.runbook, self.machine.scope(), fired, escalating, elapsed)
    }

    /// When the next unfired escalation is due.
    pub(super) fn next_escalation(
        &self,
        started: SystemTime,
        escalating: &[String],
    ) -> Option<tokio::time::Instant> {
        // Never `Instant + Duration`, which panics on overflow: check bounds `after` to
        // `MAX_DURATION`, and an instant past what the clock can say is never due.
        let next_in = self.escalations_now(started, escalating).next_in?;
        tokio::time::Instant::now().checked_add(next_in.min(runbook_core::model::MAX_DURATION))
    }

    /// The escalation whose time has come, if any.
    pub(super) fn due_escalation(&self, started: SystemTime, escalating: &[String]) -> Option<String> {
        self.escalations_now(started, escalating).due
    }

    /// Send an escalation's notification in the background; the loop journals the result.
    pub(super) fn escalate(&self, id: &str, tx: &mpsc::UnboundedSender<Msg>) {
        let Some(escalation) = self.runbook.escalations.iter().find(|e| e.id == id) else { return };
        let _ = self.report.send(Report::Notice(format!(
            "escalation `{id}`: the run is still going after {}",
            runbook_core::model::format_duration(escalation.after)
        )));
        let request = self.notify_request(&escalation.notify, None);
        let redactor = self.redactor.clone();
        let tx = tx.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let (delivered, error) = match request {
                Err(e) => (false, Some(e)),
                Ok(request) => match http::send(&request, &redactor).await {
                    Err(e) => (false, Some(e)),
                    Ok(outputs) => match http::judge(&request, &outputs) {
                        action::Check::Passed(_) => (true, None),
                        action::Check::Failed(e) => (false, Some(e)),
                    },
                },
            };
            let error = error.map(|e| redactor.redact(&e));
            let _ = tx.send(Msg::Escalated { id, delivered, error });
        });
    }
}
