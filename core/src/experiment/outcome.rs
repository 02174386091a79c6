//! What an experiment gives back, and the names its files and tables use.

use crate::mining::MiningRecord;
use crate::report::{ComparisonTable, EvalReport};
use std::path::PathBuf;

/// The copy of the experiment config every trained run folder holds.
pub const RUN_CONFIG_FILE: &str = "config.toml";

/// The teacher's name in reports and tables.
pub const TEACHER: &str = "Teacher";

/// Results of a whole experiment.
pub struct ExperimentOutcome {
    /// The comparison tables (mIoU for segmentation; accuracy; ACER for two-class data).
    pub tables: Vec<ComparisonTable>,
    /// Every method's per-combination report, teacher first.
    pub reports: Vec<EvalReport>,
    /// Per MAR method, its mining rounds and weak set.
    pub mining: Vec<MiningRecord>,
    /// Where the files went.
    pub run_dir: PathBuf,
}
