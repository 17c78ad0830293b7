//! A step's attempts: `when`, preconditions, confirmation, the attempt itself and what its end means.

use std::time::SystemTime;

use runbook_core::journal::RunEvent;
use runbook_core::model::{Action, Precondition, Step};
use runbook_core::template::{self, Mode};
use tokio::sync::{mpsc, watch};

use crate::action::{self, Done, Produced};
use crate::output::Sink;
use crate::process::Exit;

use super::record::Quiet;
use super::{Answer, Begun, Dispatcher, ExecError, LINES_IN_FLIGHT, Msg, Unanswered, Withdrawn};

/// A number in `[0, 1)` for jitter, from the standard library's per-process random keys.
pub(super) fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A precondition's failure message with the end of what it printed, for the terminal and
/// the journal.
pub(super) fn with_output(message: String, output: Option<&str>) -> String {
    match output {
        Some(out) => {
            let lines: Vec<String> = out.lines().map(|l| format!("    {l}")).collect();
            format!("{message}; its output ends with:\n{}", lines.join("\n"))
        }
        None => message,
    }
}

impl Dispatcher<'_> {
    /// Evaluate `when` and the step's preconditions, then start its first attempt (or, for
    /// an approval, ask for decisions).
    pub(super) async fn begin(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Begun, ExecError> {
        let step = &self.runbook.steps[idx];
        // Once the run is interrupted nothing new starts, not even a precondition.
        if *cancel.borrow() {
            return Ok(Begun::Interrupted);
        }
        if let Some(when) = &step.when {
            match template::eval(&when.text, &self.context_for(step.id.as_str(), None)) {
                Ok(v) if !template::truthy(&v) => {
                    self.skip(idx, format!("`when` is false: {}", when.text)).await?;
                    return Ok(Begun::Skipped);
                }
                Ok(_) => {}
                Err(e) => {
                    return self
                        .fail_before_start(idx, format!("`when` cannot be evaluated: {}", e.message))
                        .await;
                }
            }
        }
        for p in &step.preconditions {
            // A step that ended before this one was begun is journaled first: a check may
            // take as long as its timeout, and the engine may die meanwhile.
            let checked = self.quiet().await?.check(p, Some(step), cancel).await;
            match checked {
                Check::Passed => {}
                // Cut off by the signal: not a failure. A precondition only reads; the step
                // stays pending and the resume checks it again.
                Check::Interrupted => return Ok(Begun::Interrupted),
                Check::Failed { message, output } => {
                    let path = format!("{}{}", self.opts.prefix, step.id);
                    let (precondition, shown) = (p.id.clone(), output.clone());
                    self.record(RunEvent::PreconditionFailed {
                        step: Some(path),
                        precondition,
                        message: message.clone(),
                        output: shown,
                    })
                    .await?;
                    return self.fail_before_start_with(idx, message, output).await;
                }
            }
        }
        if let Some(question) = &step.confirm {
            let question = self
                .render_for(step.id.as_str(), question, Mode::Plain, None)
                .unwrap_or_else(|_| question.text.clone());
            let question = self.redactor.redact(&question);
            let Some(ask) = self.opts.confirm.clone() else {
                // `--yes` answered for the operator: journaled as such, then the step starts.
                self.record_answer(idx, question, true, true).await?;
                return self.proceed(idx, attempt_cancel, tx).await;
            };
            // The question is journaled, then asked off the loop: the loop goes on journaling
            // what ends and starting what is ready; the answer comes back as a message.
            let step_id = step.id.to_string();
            let (withdrawn, handle) = Withdrawn::pair().map_err(|e| ExecError::RunDir {
                path: self.opts.run_dir.display().to_string(),
                error: format!("cannot make a pipe for the question: {e}"),
            })?;
            self.record(RunEvent::ConfirmationRequested { step: step_id, question: question.clone() })
                .await?;
            self.questions.insert(idx, handle);
            let tx = tx.clone();
            tokio::task::spawn_blocking(move || {
                let answer = ask(&question, &withdrawn);
                let _ = tx.send(Msg::Answered { idx, question, answer });
            });
            return Ok(Begun::Asking);
        }
        self.proceed(idx, attempt_cancel, tx).await
    }

    /// The operator's answer to step `idx`'s question: journaled, then the step starts (yes),
    /// fails (no) or stays pending (no answer, or the run stopped meanwhile).
    pub(super) async fn answered(
        &mut self,
        idx: usize,
        question: String,
        answer: Answer,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<Begun, ExecError> {
        self.questions.remove(&idx);
        let yes = match answer {
            Answer::Yes => true,
            Answer::No => false,
            Answer::Unanswered(Unanswered::Withdrawn) => return Ok(Begun::Unanswered { closed: false }),
            Answer::Unanswered(Unanswered::TerminalClosed) => {
                self.interrupt_reason
                    .get_or_insert_with(|| "the terminal closed at a prompt: no answer".to_string());
                return Ok(Begun::Unanswered { closed: true });
            }
        };
        self.record_answer(idx, question, yes, false).await?;
        if !yes {
            return self.fail_before_start(idx, "the operator did not confirm it".into()).await;
        }
        // Answered while the run stopped (a signal, a failed step): nothing new starts; the
        // step stays pending and the resume asks again.
        if *cancel.borrow() || self.machine.phase() != super::machine::Phase::Running {
            return Ok(Begun::Unanswered { closed: false });
        }
        self.proceed(idx, attempt_cancel, tx).await
    }

    /// Journal `confirmation_given` for step `idx`.
    async fn record_answer(
        &mut self,
        idx: usize,
        question: String,
        confirmed: bool,
        by_yes: bool,
    ) -> Result<(), ExecError> {
        let step = self.runbook.steps[idx].id.to_string();
        let operator = self.opts.operator.clone();
        self.record(RunEvent::ConfirmationGiven { step, question, operator, confirmed, by_yes }).await
    }

    /// Start step `idx` once it may: its first attempt, its include, or its approval request.
    async fn proceed(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<Begun, ExecError> {
        let step = &self.runbook.steps[idx];
        if let Action::Approval(_) = &step.action {
            self.request_approval(idx, tx).await?;
            return Ok(Begun::Awaiting);
        }
        if let Action::Runbook(_) = &step.action {
            return Ok(if self.start_include(idx, attempt_cancel, tx).await? {
                Begun::Include
            } else {
                Begun::Failed
            });
        }
        self.attempt(idx, attempt_cancel, tx).await?;
        Ok(Begun::Spawned)
    }

    pub(super) async fn fail_before_start(&mut self, idx: usize, reason: String) -> Result<Begun, ExecError> {
        self.fail_before_start_with(idx, reason, None).await
    }

    /// [`Dispatcher::fail_before_start`] with the end of what a precondition printed.
    pub(super) async fn fail_before_start_with(
        &mut self,
        idx: usize,
        reason: String,
        output: Option<String>,
    ) -> Result<Begun, ExecError> {
        let step = self.runbook.steps[idx].id.to_string();
        self.record(RunEvent::StepFailed { step, attempt: 0, reason, output }).await?;
        Ok(Begun::Failed)
    }

    /// Journal `step_started`, then start the attempt.
    pub(super) async fn attempt(
        &mut self,
        idx: usize,
        attempt_cancel: &watch::Receiver<bool>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(), ExecError> {
        let step = &self.runbook.steps[idx];
        let attempt = self.attempts_of(step.id.as_str()) + 1;
        let output_file =
            self.opts.run_dir.join(format!("{}.{attempt}.outputs", self.stem(step.id.as_str())));
        let prepared = self.work(
            step.id.as_str(),
            &step.action,
            &step.env,
            step.dir.as_deref(),
            step.timeout,
            &output_file,
            &step.outputs,
            None,
        );
        let timeout = step.timeout;
        let log = self.opts.run_dir.join(format!("{}.{attempt}.log", self.stem(step.id.as_str())));
        let live = crate::output::log_key(&log)
            .map(|(key, _)| crate::output::Live::new(self.store.clone(), &self.opts.run_id, &key, attempt));
        let sink = Sink::new(log, format!("{}{}", self.opts.prefix, step.id), attempt, self.report.clone());
        let sink = match live {
            Some(live) => sink.with_live(live),
            None => sink,
        };
        self.record(RunEvent::StepStarted { step: step.id.to_string(), attempt }).await?;
        // The lease may have been lost while the start was being made durable (a store that
        // held the write lock): no process starts without it (red team adv28 L5). The step
        // stays in doubt, as when its engine dies at this point.
        if self.lease_lost() {
            return Err(self.lost_lease());
        }
        let tx = tx.clone();
        let cancel = attempt_cancel.clone();
        let reaper = self.opts.reaper.clone();
        let redactor = self.redactor.clone();
        tokio::spawn(async move {
            let (done, tail) = match prepared {
                Err(e) => (Done { exit: Exit::SpawnFailed(e), outputs: Produced::Nothing }, None),
                Ok(work) => {
                    // Output goes from the attempt to its log and the terminal here, off the
                    // dispatcher's loop, over a bounded channel.
                    let (ltx, lrx) = mpsc::channel(LINES_IN_FLIGHT);
                    let forward = tokio::spawn(sink.drain(lrx));
                    let done =
                        action::perform(work, timeout, &redactor, ltx, cancel, reaper.as_deref()).await;
                    let tail = forward.await.ok().and_then(|t| t.text());
                    (done, tail)
                }
            };
            let _ = tx.send(Msg::Done { idx, attempt, done, tail });
        });
        Ok(())
    }
}

impl Quiet<'_, '_> {
    /// Run a precondition; [`Check::Failed`] carries the message to show and the end of what
    /// the check printed (redacted). A check that could not run (it could not start, its program or
    /// working directory is missing, bash's 126/127) says so instead of its message: its
    /// message says what a check that ran and said no means, and this one said nothing.
    pub(super) async fn check(
        &self,
        p: &Precondition,
        step: Option<&Step>,
        cancel: &watch::Receiver<bool>,
    ) -> Check {
        // Once the run is interrupted no check starts.
        if *cancel.borrow() {
            return Check::Interrupted;
        }
        let owner = step.map_or_else(|| "runbook".to_string(), |s| format!("step `{}`", s.id));
        let scratch = self.opts.run_dir.join(format!("precondition-{}.outputs", self.stem(&p.id)));
        let label = step.map_or(p.id.as_str(), |s| s.id.as_str());
        let work =
            match self.work(label, &p.action, &p.env, p.dir.as_deref(), Some(p.timeout), &scratch, &[], None)
            {
                Ok(work) => work,
                Err(e) => {
                    return Check::Failed {
                        message: format!("precondition `{}` of {owner} could not run: {e}", p.id),
                        output: None,
                    };
                }
            };
        // Nobody shows a precondition's output as it comes; its last lines say why it failed.
        let (tx, rx) = mpsc::channel(LINES_IN_FLIGHT);
        let collect = tokio::spawn(crate::output::Tail::collect(rx));
        let done = action::perform(
            work,
            Some(p.timeout),
            &self.redactor,
            tx,
            cancel.clone(),
            self.opts.reaper.as_deref(),
        )
        .await;
        let _ = std::fs::remove_file(&scratch);
        let tail = collect.await.ok().and_then(|t| t.text());
        if done.exit.success() {
            return Check::Passed;
        }
        if done.exit == Exit::Cancelled {
            return Check::Interrupted;
        }
        let message = p.message.as_ref().map(|m| {
            self.redactor
                .redact(&self.render_for(label, m, Mode::Plain, None).unwrap_or_else(|_| m.text.clone()))
        });
        let could_not_run = matches!(done.exit, Exit::SpawnFailed(_) | Exit::Code(126 | 127));
        let text = match (could_not_run, message) {
            (true, Some(m)) => format!(
                "precondition `{}` of {owner} could not run ({}), so it checked nothing; what it checks: {m}",
                p.id,
                done.exit.describe()
            ),
            (true, None) => {
                format!("precondition `{}` of {owner} could not run ({})", p.id, done.exit.describe())
            }
            (false, Some(m)) => {
                format!("precondition `{}` of {owner} failed: {m} (the check {})", p.id, done.exit.describe())
            }
            (false, None) => {
                format!("precondition `{}` of {owner} failed: the check {}", p.id, done.exit.describe())
            }
        };
        Check::Failed { message: self.redactor.redact(&text), output: tail }
    }
}

/// How a precondition's check ended ([`Quiet::check`]).
pub(super) enum Check {
    /// It passed.
    Passed,
    /// It said no, or could not run: the message to show and journal, and the end of what
    /// it printed (redacted).
    Failed {
        /// What failed.
        message: String,
        /// The end of its output.
        output: Option<String>,
    },
    /// The run was interrupted before or while it ran: not a failure (it only reads).
    Interrupted,
}
