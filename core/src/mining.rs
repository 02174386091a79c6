//! What MAR's mining reports, typed: the events a loss term emits at the end of an epoch
//! ([`MiningEvent`]), one mining round ([`MiningRound`], whose [`RoundMeasure`] is a
//! classification prediction distribution or a segmentation mIoU), and the trace of a whole
//! warm-up ([`MiningTrace`]) that the CLI, the ablation, the run folders and the app read.
//!
//! The two tasks mine differently (spec §1.7, §2):
//! * classification ranks each candidate by the KL between its prediction distribution and the
//!   full combination's;
//! * segmentation ranks it by the squared gap between its mIoU and the full combination's.
//!
//! Both accumulate the per-round discrepancy in a memory bank
//! ([`crate::losses::mar::MemoryBank`]) and pick the bank's argmax.

use crate::modality::ModalitySet;
use serde::{Deserialize, Serialize};

/// What a round measured for each combination (the candidates, then the full one last).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundMeasure {
    /// Classification: each combination's class distribution of predictions on the mining
    /// split; the discrepancy is a KL divergence.
    Distributions(Vec<Vec<f64>>),
    /// Segmentation: each combination's mIoU on the mining split; the discrepancy is
    /// `(mIoU_full − mIoU_k)²`.
    Miou(Vec<f64>),
}

impl RoundMeasure {
    /// Number of combinations measured.
    pub fn len(&self) -> usize {
        match self {
            RoundMeasure::Distributions(d) => d.len(),
            RoundMeasure::Miou(m) => m.len(),
        }
    }

    /// Whether nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the discrepancy of this kind of measure is called (`KL`, `mIoU gap²`).
    pub fn discrepancy_name(&self) -> &'static str {
        match self {
            RoundMeasure::Distributions(_) => "KL",
            RoundMeasure::Miou(_) => "mIoU gap²",
        }
    }
}

/// One mining round's measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiningRound {
    /// Epoch of the round (0-based).
    pub epoch: usize,
    /// The candidates, then the full combination last.
    pub combinations: Vec<ModalitySet>,
    /// What was measured for each of `combinations`.
    pub measure: RoundMeasure,
    /// Discrepancy of each candidate to the full combination (KL, or squared mIoU gap).
    pub discrepancy: Vec<f64>,
    /// The bank after this round (one value per candidate).
    pub bank: Vec<f64>,
}

/// The weak set fixed at the end of the warm-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeakSetChoice {
    /// The weak combination, then (classification) its single modalities.
    pub weak_set: Vec<ModalitySet>,
    /// The bank it was chosen from, one value per candidate.
    pub bank: Vec<f64>,
    /// The ranked candidates, in the bank's order.
    pub candidates: Vec<ModalitySet>,
}

/// What a loss term reports at the end of an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MiningEvent {
    /// A mining round was measured and added to the bank.
    Round(MiningRound),
    /// The weak set was fixed.
    WeakSetChosen(WeakSetChoice),
}

/// What MAR's mining did over a stage's warm-up: every round and the chosen weak set.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct MiningTrace {
    /// One round per mining epoch, in order.
    pub rounds: Vec<MiningRound>,
    /// The ranked candidate combinations (the bank's order).
    pub candidates: Vec<ModalitySet>,
    /// The bank when the weak set was chosen.
    pub final_bank: Vec<f64>,
    /// The weak set (the combination with the largest bank value, and for classification its
    /// single modalities), once chosen.
    pub weak_set: Option<Vec<ModalitySet>>,
    /// The epoch after which it was chosen.
    pub chosen_after_epoch: Option<usize>,
}

impl MiningTrace {
    /// The mining recorded by a stage's events, each with the epoch that reported it (as
    /// [`crate::train::EpochSummary::mining_events`] hands them out); `None` when there are none
    /// (the stage did not mine).
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = (usize, &'a MiningEvent)>,
    ) -> Option<Self> {
        let mut trace = MiningTrace::default();
        let mut any = false;
        for (epoch, event) in events {
            any = true;
            match event {
                MiningEvent::Round(round) => {
                    if trace.candidates.is_empty() {
                        let k = round.combinations.len().saturating_sub(1);
                        trace.candidates = round.combinations[..k].to_vec();
                    }
                    trace.rounds.push(round.clone());
                }
                MiningEvent::WeakSetChosen(choice) => {
                    trace.weak_set = Some(choice.weak_set.clone());
                    trace.final_bank = choice.bank.clone();
                    trace.candidates = choice.candidates.clone();
                    trace.chosen_after_epoch = Some(epoch);
                }
            }
        }
        any.then_some(trace)
    }

    /// The weak set as modality-name labels (`rgb+depth`), once chosen.
    pub fn weak_set_labels(&self, names: &[String]) -> Option<Vec<String>> {
        self.weak_set
            .as_ref()
            .map(|w| w.iter().map(|s| s.long_label(names)).collect())
    }
}

/// One method's mining in a run (`<method>/mining.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiningRecord {
    /// The method's label (`MMANet`).
    pub method: String,
    /// Its trace.
    pub trace: MiningTrace,
}
