//! One experiment of one task: the teacher, then each student method, every model evaluated
//! on the test split, the tables and records written into the run's store.

use super::methods::{sf_stage, student_stage};
use super::outcome::{ExperimentOutcome, RUN_CONFIG_FILE, TEACHER};
use super::progress::ProgressSink;
use super::stage::{RunContext, RunMode, StageSpec, run_stage};
use super::stage_id::StageId;
use crate::config::{ExperimentConfig, Method};
use crate::error::{CoreError, Result};
use crate::mining::{MiningRecord, MiningTrace};
use crate::modality::{ModalitySet, all_combinations};
use crate::prepare::TaskData;
use crate::report::{EvalReport, comparison_tables};
use crate::store::RunStore;
use crate::task::Task;
use crate::train::EpochSummary;
use burn::prelude::*;

/// Runs the experiment `cfg` describes on `data`: teacher, then each method; evaluates all on
/// the test split; writes every file into `store`. `device` should be a plain (non-autodiff)
/// device. Awaits [`ProgressSink::between_steps`] before every training step.
pub(super) async fn run_task<T: Task>(
    cfg: &ExperimentConfig,
    data: &TaskData<T>,
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    cfg.mmanet.mad_impl.use_kernels(device)?;
    T::check_settings(cfg, &data.source)?;
    let run_dir = store.location("");
    let test = &data.split.test;
    let eval_on = async |model: &T::Net, combos: &[ModalitySet], name: &str| {
        T::evaluate(
            &model.valid(),
            &data.source,
            test,
            combos,
            cfg.eval.batch_size,
            device,
            Some(cfg.eval.bona_fide_label),
            name,
        )
        .await
    };
    if mode == RunMode::Train {
        // The run folder describes itself: `mmanet gui` and the runs loader read this back.
        let text = toml::to_string(cfg)
            .map_err(|e| CoreError::config("config", format!("cannot encode: {e}")))?;
        store.write(RUN_CONFIG_FILE, text.as_bytes())?;
    }
    let mut reports = Vec::new();
    let ctx = RunContext {
        cfg,
        data,
        device,
        resume,
        mode,
    };

    let teacher_spec = StageSpec::plain(StageId::teacher::<T>(cfg), &cfg.teacher);
    let (teacher, _) = run_stage(teacher_spec, &ctx, store, sink).await?;
    let n = T::num_modalities(&teacher);
    let combos = all_combinations(n);
    reports.push(eval_on(&teacher, &combos, TEACHER).await?);
    let mut mining = Vec::new();

    for &method in &cfg.methods {
        if method == Method::Sf {
            // one separately trained model per fixed combination
            let mut rows = Vec::with_capacity(combos.len());
            let mut modalities = Vec::new();
            for &c in &combos {
                let (stage, id) = sf_stage::<T>(cfg, c, n);
                let (model, _) = run_stage(StageSpec::plain(id, &stage), &ctx, store, sink).await?;
                let report = eval_on(&model, &[c], method.label()).await?;
                modalities = report.modalities;
                rows.extend(report.rows);
            }
            reports.push(EvalReport {
                method: method.label().into(),
                modalities,
                rows,
            });
            continue;
        }
        let spec = student_stage::<T>(cfg, method, &teacher, n, device);
        let (model, meta) = run_stage(spec, &ctx, store, sink).await?;
        reports.push(eval_on(&model, &combos, method.label()).await?);
        if let Some(trace) = MiningTrace::from_events(EpochSummary::mining_events(&meta.history)) {
            let record = MiningRecord {
                method: method.label().to_string(),
                trace,
            };
            let bytes = serde_json::to_vec_pretty(&record)
                .map_err(|e| CoreError::Training(format!("cannot encode mining: {e}")))?;
            store.write(&format!("{}/mining.json", method.slug()), &bytes)?;
            mining.push(record);
        }
    }

    let per_method: Vec<(String, Vec<EvalReport>)> = reports
        .iter()
        .map(|r| (r.method.clone(), vec![r.clone()]))
        .collect();
    let tables = comparison_tables(&per_method)?;
    for t in &tables {
        t.write_all(store, &t.metric.file_stem("results"))?;
    }
    let json = serde_json::to_vec_pretty(&reports)
        .map_err(|e| CoreError::Training(format!("cannot encode reports: {e}")))?;
    store.write("reports.json", &json)?;
    Ok(ExperimentOutcome {
        tables,
        reports,
        mining,
        run_dir,
    })
}
