//! The shared item table during RL (docs/design.md §5): a trainable copy of the ranker's `E` feeding
//! the soft item tokens, its initial value (for the reference policy), and the shield applied
//! to each optimiser step's actual update. Arms: shielded, `--no_projection`, frozen control.

use crate::explainer::Projector;
use crate::ranker::Ranker;
use crate::shield::Shield;
use tch::{nn, Tensor};

/// `E` as RL sees it.
#[derive(Debug)]
pub struct Coupling {
    /// The current table `[n_items + 1, d]` (a variable unless frozen).
    pub e: Tensor,
    /// Its value when RL started.
    pub e0: Tensor,
    /// The projection of each update (`None` = `--no_projection` or frozen).
    pub shield: Option<Shield>,
    /// Share of the last update's norm the shield removed (a scalar f64 tensor: on `E`'s device
    /// once the shield has run, 0 on the CPU before or without it).
    pub removed: Tensor,
    before: Tensor,
}

impl Coupling {
    /// Copies the ranker's `E` into `vs` as a variable (`frozen`: a constant, no coupling).
    pub fn new(vs: &nn::Path, ranker: &Ranker, shield: Option<Shield>, frozen: bool) -> Coupling {
        let e0 = ranker.output_table().detach().copy();
        let e = if frozen {
            e0.shallow_clone()
        } else {
            let mut v = vs.var("shared_item_table", &e0.size(), nn::Init::Const(0.0));
            tch::no_grad(|| v.copy_(&e0));
            v
        };
        Coupling {
            before: e0.copy(),
            e,
            e0,
            shield,
            removed: Tensor::from(0.0f64),
        }
    }

    /// Soft-token vectors `W_p e_i` of `items` from the current table.
    pub fn soft(&self, projector: &Projector, items: &Tensor) -> Tensor {
        projector.forward(&self.e.index_select(0, items))
    }

    /// Call after every optimiser step: projects the step's update of `E` when shielded.
    pub fn after_step(&mut self) {
        if let Some(s) = &self.shield {
            self.removed = s.project_update(&mut self.e, &self.before);
        }
        self.restart_from_current();
    }

    /// Takes the current table as the start of the next update (after restoring it from a
    /// snapshot).
    pub fn restart_from_current(&mut self) {
        self.before = self.e.detach().copy();
    }

    /// Writes the current table into `ranker` (to evaluate ranking drift).
    pub fn sync_into(&self, ranker: &Ranker) {
        let mut table = ranker.output_table().shallow_clone();
        tch::no_grad(|| table.copy_(&self.e));
    }
}
