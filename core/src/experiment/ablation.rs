//! The ablation: the same experiment once per seed, tabulated as mean ± std per method, with
//! every method's paired difference to SF-MD.

use super::entry::{ExperimentData, run_experiment};
use super::outcome::TEACHER;
use super::progress::ProgressSink;
use super::stage::RunMode;
use crate::config::{ExperimentConfig, Method};
use crate::error::{CoreError, Result};
use crate::fsutil::write_atomic;
use crate::report::{ComparisonTable, EvalReport, comparison_tables, paired_tables};
use crate::store::FolderStore;
use burn::prelude::*;
use std::path::PathBuf;

/// Results of an ablation over several seeds.
pub struct AblationOutcome {
    /// Per metric, rows = combinations + average, columns = methods, mean ± std over seeds.
    pub tables: Vec<ComparisonTable>,
    /// Per metric, every other method's paired difference to SF-MD (same seed, same
    /// initialisation, batch order and modality draws), mean ± std over seeds; empty without
    /// SF-MD.
    pub paired: Vec<ComparisonTable>,
    /// Per seed, every method's report.
    pub reports: Vec<Vec<EvalReport>>,
    /// Per seed, the weak set each MAR method mined (as modality-name labels).
    pub weak_sets: Vec<Vec<(String, Vec<String>)>>,
    /// Where the files went.
    pub run_dir: PathBuf,
}

/// Runs the experiment once per seed (`seeds` runs in `<output_dir>/<name>/seed-<k>`; seed k
/// adds k to the teacher's and the student's seeds, the data split stays the same) and
/// tabulates mean ± std per method. Writes `ablation.{md,csv,json}` (plus `ablation-miou.*` for
/// segmentation, `ablation-acer.*`, `-apcer.*`, `-bpcer.*` for two-class data), the paired
/// differences to SF-MD as `ablation-paired*.{md,csv,json}`, and `ablation-mining.json` into
/// `<output_dir>/<name>/` (native targets; blocks until done).
pub fn run_ablation(
    cfg: &ExperimentConfig,
    data: &(impl ExperimentData + ?Sized),
    device: &Device,
    seeds: usize,
    resume: bool,
    sink: &mut dyn ProgressSink,
) -> Result<AblationOutcome> {
    if seeds == 0 {
        return Err(CoreError::config("seeds", "run at least one seed"));
    }
    cfg.mmanet.mad_impl.use_kernels(device)?;
    let run_dir = cfg.output_dir.join(&cfg.name);
    let mut all_reports = Vec::with_capacity(seeds);
    let mut weak_sets = Vec::with_capacity(seeds);
    for k in 0..seeds {
        let mut c = cfg.clone();
        c.output_dir = run_dir.clone();
        c.name = format!("seed-{k}");
        c.teacher.seed = cfg.teacher.seed.wrapping_add(k as u64);
        c.student.seed = cfg.student.seed.wrapping_add(k as u64);
        sink.message(&format!("seed {} of {seeds}", k + 1));
        let out = run_experiment(&c, data, device, resume, RunMode::Train, sink)?;
        let names = out
            .reports
            .first()
            .map(|r| r.modalities.clone())
            .unwrap_or_default();
        weak_sets.push(
            out.mining
                .iter()
                .filter_map(|m| Some((m.method.clone(), m.trace.weak_set_labels(&names)?)))
                .collect(),
        );
        all_reports.push(out.reports);
    }
    let methods: Vec<String> = all_reports[0].iter().map(|r| r.method.clone()).collect();
    let per_method: Vec<(String, Vec<EvalReport>)> = methods
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.clone(),
                all_reports.iter().map(|seed| seed[i].clone()).collect(),
            )
        })
        .collect();
    let tables = comparison_tables(&per_method)?;
    for t in &tables {
        t.write_all(
            &mut FolderStore::new(&run_dir),
            &t.metric.file_stem("ablation"),
        )?;
    }
    // the teacher sees every modality in training and has a seed of its own: not paired
    let students: Vec<(String, Vec<EvalReport>)> = per_method
        .iter()
        .filter(|(name, _)| name != TEACHER)
        .cloned()
        .collect();
    let paired = paired_tables(&students, Method::SfMd.label())?;
    for t in &paired {
        t.write_all(
            &mut FolderStore::new(&run_dir),
            &t.metric.file_stem("ablation-paired"),
        )?;
    }
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "weak_sets_per_seed": weak_sets }))
        .map_err(|e| CoreError::Training(format!("cannot encode mining: {e}")))?;
    write_atomic(&run_dir.join("ablation-mining.json"), &json)?;
    Ok(AblationOutcome {
        tables,
        paired,
        reports: all_reports,
        weak_sets,
        run_dir,
    })
}
