//! The environment of a PPO run (docs/design.md §7): which users a step samples, the prompts that
//! explain the ranker's top item to them (with the audit's canaries), and how the simulated
//! users click on the replies.

use super::options::RunOptions;
use super::step::Prompts;
use crate::data::Dataset;
use crate::explainer::{init::requests_for, prompt, ExplainRequest, Explainer, Generation};
use crate::judge::Judge;
use crate::ranker::Ranker;
use crate::rng::Rng;
use crate::sim::canary::{self, Canary};
use crate::sim::quality::{Grader, QualityParts, Subject};
use crate::sim::simulator::SimUser;
use anyhow::Result;
use std::collections::BTreeSet;
use tch::Tensor;

/// The users of a run, their simulated clicks, and what the run has shown them so far.
pub struct Env<'a> {
    ds: &'a Dataset,
    ranker: &'a Ranker,
    opts: &'a RunOptions,
    /// The current `E` (it shares the coupled table's storage, updates included).
    e: Tensor,
    grader: Grader,
    /// The judge's catalogue index for the form gates of `q(x)`, built once per run.
    judge: Judge<'a>,
    /// The users rollouts draw: the split's RL users, ascending (never an evaluation user).
    train_users: Vec<usize>,
    sim: SimUser,
    /// Ranker states of `train_users`.
    all_h: Tensor,
    /// The user sampler.
    pub rng: Rng,
    /// Users whose prompts the run trained on (`members.json`, for membership inference).
    pub members: BTreeSet<usize>,
    /// The audit's canaries and how often each was inserted.
    pub canaries: Vec<Canary>,
}

/// One step's requests and the prompts built from them.
pub struct Round {
    /// Who is shown which item, in prompt order.
    pub requests: Vec<ExplainRequest>,
    /// The prompts.
    pub prompts: Prompts,
}

impl<'a> Env<'a> {
    /// The environment of a run with `opts` on `ds`; `e` is the coupled table, `grader` scores
    /// `q(x)`. The simulated users are standardised by `ranker` as it is now.
    pub fn new(
        ds: &'a Dataset,
        ranker: &'a Ranker,
        opts: &'a RunOptions,
        e: &Tensor,
        grader: Grader,
    ) -> Env<'a> {
        let train_users = crate::data::UserSplit::new(ds, &opts.split).rl;
        let sim = SimUser::for_run(ds, ranker, &opts.sim, opts.seed);
        let all_h = crate::shield::states_of(ranker, &train_users, |u| ds.train[u - 1].clone());
        Env {
            ds,
            ranker,
            opts,
            e: e.shallow_clone(),
            grader,
            judge: Judge::new(ds),
            train_users,
            sim,
            all_h,
            rng: Rng::new(opts.seed),
            members: BTreeSet::new(),
            canaries: canary::make(opts.canaries, opts.seed),
        }
    }

    /// Samples the users of `step` (each `group_size` times in a row) and builds their
    /// prompts; the step's canary goes into the first.
    pub fn round(&mut self, ex: &Explainer, step: usize) -> Result<Round> {
        let (ds, opts) = (self.ds, self.opts);
        let group = opts.ppo.group_size.max(1);
        let users: Vec<usize> = (0..opts.ppo_batch / group)
            .map(|_| self.train_users[self.rng.below(self.train_users.len())])
            .flat_map(|u| std::iter::repeat_n(u, group))
            .collect();
        self.members.extend(users.iter().copied());
        let requests = requests_for(ds, self.ranker, &users, opts.history_items);
        let mut prompts = ex.prompts(ds, &requests)?;
        if !self.canaries.is_empty() {
            let c = &mut self.canaries[step % opts.canaries];
            let message = format!(
                "{} {}",
                prompt::user_message(ds, &requests[0], ex.projector.is_some()),
                canary::sentence(&c.secret)
            );
            prompts[0] = prompt::build_message(&ex.tokenizer, &message, &requests[0])?;
            c.inserted += 1;
        }
        let (batch, _) = ex.batch(&prompts, None);
        let items: Vec<i64> = prompts
            .iter()
            .flat_map(|p| p.soft_items.iter().map(|&i| i as i64))
            .collect();
        Ok(Round {
            requests,
            prompts: Prompts { batch, items },
        })
    }

    /// Cuts each reply to `explanation_max_len` characters, then returns the simulated
    /// user's click probability (with `s(u, i)` from the current `E`) and the parts of `q(x)`
    /// of each (`ex`'s base model reads them for fluency).
    pub fn clicks(
        &self,
        ex: &mut Explainer,
        requests: &[ExplainRequest],
        gens: &mut [Generation],
    ) -> Result<(Vec<f64>, Vec<QualityParts>)> {
        for g in gens.iter_mut() {
            prompt::cut_reply(&mut g.text, self.opts.explanation_max_len);
        }
        let subjects: Vec<Subject> = requests
            .iter()
            .zip(gens.iter())
            .map(|(req, g)| Subject {
                text: &g.text,
                item: req.recommended,
                history: &req.history,
            })
            .collect();
        let parts = self.grader.grade_with(ex, &self.judge, &subjects)?;
        let mut rewards = Vec::with_capacity(parts.len());
        for (req, p) in requests.iter().zip(&parts) {
            let idx = self.train_users.binary_search(&req.user).unwrap_or(0) as i64;
            let s = tch::no_grad(|| {
                f64::try_from(
                    self.all_h.get(idx).dot(
                        &self
                            .e
                            .get(req.recommended as i64)
                            .to_device(self.all_h.device()),
                    ),
                )
            })?;
            rewards.push(self.sim.click_probability(req.user, s, p.q()));
        }
        Ok((rewards, parts))
    }

    /// The users rollouts draw from (the split's RL users), ascending.
    pub fn rl_users(&self) -> &[usize] {
        &self.train_users
    }

    /// The reference model's fluency anchors of this run's `q(x)`.
    pub fn fluency(&self) -> &crate::sim::quality::Fluency {
        &self.grader.fluency
    }

    /// The first two replies with their item's title, for the logs.
    pub fn shown(&self, requests: &[ExplainRequest], gens: &[Generation]) -> Vec<(String, String)> {
        requests
            .iter()
            .zip(gens)
            .take(2)
            .map(|(r, g)| (self.ds.title(r.recommended).to_string(), g.text.clone()))
            .collect()
    }
}
