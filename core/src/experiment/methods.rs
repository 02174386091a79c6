//! The student methods and what each trains: SF, one model per fixed combination; SF-MD, one
//! network with modality dropout; and on top of it the loss terms of SP and MAD (relation
//! distillation from the teacher), SR (+ a regularization head on every single modality) and
//! MMANet (+ MAR on the mined weak combinations).

use super::stage::StageSpec;
use super::stage_id::StageId;
use crate::config::{ExperimentConfig, Method, StageConfig};
use crate::dropout::DropoutMode;
use crate::losses::mad::MadReduction;
use crate::mmanet::{MadTerm, MarTerm};
use crate::mmanet_settings::MiningSplit;
use crate::modality::ModalitySet;
use crate::task::Task;
use burn::prelude::*;

/// SF's stage settings and identity for the combination `c` of `n` modalities: the student's
/// settings with the dropout fixed to `c`.
pub(super) fn sf_stage<T: Task>(
    cfg: &ExperimentConfig,
    c: ModalitySet,
    n: usize,
) -> (StageConfig, StageId) {
    let mut stage = cfg.student.clone();
    stage.dropout = DropoutMode::Fixed {
        combination: c.mask(n).iter().map(|&b| u8::from(b)).collect(),
    };
    let id = StageId::sf::<T>(cfg, &stage, c, n);
    (stage, id)
}

/// The stage of a unified student method: SF-MD, or SF-MD plus the terms `method` switches on.
pub(super) fn student_stage<'a, T: Task>(
    cfg: &'a ExperimentConfig,
    method: Method,
    teacher: &T::Net,
    n: usize,
    device: &Device,
) -> StageSpec<'a, T> {
    let m = &cfg.mmanet;
    let mut spec = StageSpec::plain(StageId::student::<T>(cfg, method), &cfg.student);
    spec.with_reg_head = method.uses_reg_head();
    spec.mine_on_training_split = m.mining_split == MiningSplit::Training;
    match method {
        Method::Sp => spec.terms.push(Box::new(MadTerm::<T>::new(
            teacher,
            m,
            MadReduction::Sp,
            device,
        ))),
        Method::Mad | Method::Sr | Method::Mmanet => spec
            .terms
            .push(Box::new(MadTerm::<T>::new(teacher, m, m.mad, device))),
        Method::Sf | Method::SfMd => {}
    }
    match method {
        Method::Sr => spec.terms.push(Box::new(MarTerm::<T>::singles(m, n))),
        Method::Mmanet => spec.terms.push(Box::new(MarTerm::<T>::mined(m, n))),
        _ => {}
    }
    spec
}
