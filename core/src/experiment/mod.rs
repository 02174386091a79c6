//! The whole experiment, for either task: train (or reuse) the teacher, train each student
//! method, evaluate every combination on the test split, and write the results; and the
//! ablation, the same experiment over several seeds.
//!
//! One job per file:
//! * [`stage_id`] — a stage's identity: its name and the fingerprint of what determines it;
//! * `methods` — what each student method trains: its stage and the loss terms it switches on;
//! * `entry` — the entry points below; `outcome` — what an experiment gives back;
//! * `run` — one experiment: the teacher, the students, the test tables, the files;
//! * `ablation` — the experiment over several seeds ([`run_ablation`]);
//! * [`stage`] — running one stage: its files, reuse, resume, the loop, the save;
//! * [`progress`] — where progress goes ([`ProgressSink`]).
//!
//! The entry points take any [`ExperimentData`] (one task's data, or data loaded for whichever
//! task the config names): [`run_experiment_in`] (asynchronous, into any [`RunStore`](crate::store::RunStore): the
//! browser keeps runs in memory and awaits it between frames), [`run_experiment`] (native; the
//! run folder, blocking) and [`run_ablation`].
//!
//! Outputs go to `<output_dir>/<name>/` (or the same relative paths in a
//! [`crate::store::MemoryStore`]):
//! * `<stage>/checkpoint.bin` — progress + model + optimiser + best model, rewritten atomically
//!   after every epoch (`--resume` continues from it);
//! * `<stage>/model.bpk` + `<stage>/meta.json` — the selected model of a finished stage and what it
//!   was trained from (a finished teacher whose settings match is reused, not retrained);
//! * `results.md`, `results.csv`, `results.json` — the per-combination comparison table
//!   (`results-miou.*` for segmentation; `results-acer.*`, `results-apcer.*` and
//!   `results-bpcer.*` for two-class data);
//!   `reports.json` — every method's full per-combination metrics;
//!   `<method>/mining.json` — MAR's mining rounds and weak set.

mod ablation;
mod entry;
mod methods;
mod outcome;
pub mod progress;
mod run;
pub mod stage;
pub mod stage_id;

pub use crate::prepare::{
    AnyTaskData, LoadedData, PreparedData, TaskData, prepare_data, prepare_manifest,
    prepare_seg_data,
};
pub use ablation::{AblationOutcome, run_ablation};
pub use entry::{ExperimentData, ExperimentFuture, run_experiment, run_experiment_in};
pub use outcome::{ExperimentOutcome, RUN_CONFIG_FILE, TEACHER};
pub use progress::{ProgressSink, SilentProgress, StepYield, block_on};
pub use stage::{RunContext, RunMode, StageMeta, StageSpec, run_stage};
pub use stage_id::StageId;
