//! Evaluation results per modality combination, and paper-style comparison tables written as
//! Markdown, CSV and JSON.

use crate::error::{CoreError, Result};
use crate::metrics::PadRates;
use crate::modality::ModalitySet;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Metrics of one model on one fixed combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinationResult {
    /// The combination.
    pub combination: ModalitySet,
    /// Its label (`pix+fou`).
    pub label: String,
    /// Number of evaluated samples.
    pub samples: usize,
    /// Accuracy in 0..1.
    pub accuracy: f64,
    /// APCER / BPCER / ACER (two-class tasks only).
    pub pad: Option<PadRates>,
    /// mIoU and per-class IoU (segmentation only; `accuracy` is then the pixel accuracy and
    /// `samples` the number of scenes).
    #[serde(default)]
    pub seg: Option<SegScores>,
}

/// Segmentation scores of one combination over a split (ESANet's convention: a class with an
/// empty union has IoU 0 and still counts in the mean).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegScores {
    /// Mean IoU over the classes, 0..1.
    pub miou: f64,
    /// IoU per class, 0..1.
    pub class_iou: Vec<f64>,
    /// Labelled (non-void) pixels evaluated.
    pub pixels: u64,
}

/// One model evaluated on every combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Method name (`SF-MD`, `Teacher`, …).
    pub method: String,
    /// Modality names in index order.
    pub modalities: Vec<String>,
    /// One row per combination, in the paper's order.
    pub rows: Vec<CombinationResult>,
}

impl EvalReport {
    /// Mean accuracy over the rows.
    pub fn mean_accuracy(&self) -> f64 {
        mean(self.rows.iter().map(|r| r.accuracy))
    }

    /// Mean mIoU over the rows (segmentation).
    pub fn mean_miou(&self) -> Option<f64> {
        if self.rows.iter().all(|r| r.seg.is_some()) && !self.rows.is_empty() {
            Some(mean(
                self.rows
                    .iter()
                    .filter_map(|r| r.seg.as_ref().map(|s| s.miou)),
            ))
        } else {
            None
        }
    }

    /// The model-selection score: mean mIoU for segmentation, mean accuracy otherwise.
    pub fn selection_score(&self) -> f64 {
        self.mean_miou().unwrap_or_else(|| self.mean_accuracy())
    }

    /// Mean ACER over the rows (two-class tasks).
    pub fn mean_acer(&self) -> Option<f64> {
        if self.rows.iter().all(|r| r.pad.is_some()) && !self.rows.is_empty() {
            Some(mean(self.rows.iter().filter_map(|r| r.pad.map(|p| p.acer))))
        } else {
            None
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// Which number a comparison table shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMetric {
    /// Accuracy in percent (higher is better; pixel accuracy for segmentation).
    Accuracy,
    /// ACER in percent (lower is better).
    Acer,
    /// mIoU in percent (higher is better; segmentation).
    Miou,
    /// APCER in percent: attacks accepted as bona fide (lower is better; ISO naming — the
    /// official code calls this NPCER on CASIA-SURF).
    Apcer,
    /// BPCER in percent: bona fide presentations rejected (lower is better).
    Bpcer,
}

impl TableMetric {
    fn of(self, r: &CombinationResult) -> Option<f64> {
        match self {
            TableMetric::Accuracy => Some(r.accuracy * 100.0),
            TableMetric::Acer => r.pad.map(|p| p.acer * 100.0),
            TableMetric::Miou => r.seg.as_ref().map(|s| s.miou * 100.0),
            TableMetric::Apcer => r.pad.map(|p| p.apcer * 100.0),
            TableMetric::Bpcer => r.pad.map(|p| p.bpcer * 100.0),
        }
    }

    /// Whether a larger value is better (accuracy, mIoU) rather than worse (error rates).
    pub fn higher_is_better(self) -> bool {
        matches!(self, TableMetric::Accuracy | TableMetric::Miou)
    }

    /// Short name for progress lines (`acc`, `ACER`, `mIoU`).
    pub fn short_name(self) -> &'static str {
        match self {
            TableMetric::Accuracy => "acc",
            TableMetric::Acer => "ACER",
            TableMetric::Miou => "mIoU",
            TableMetric::Apcer => "APCER",
            TableMetric::Bpcer => "BPCER",
        }
    }

    /// Column header.
    pub fn name(self) -> &'static str {
        match self {
            TableMetric::Accuracy => "accuracy (%)",
            TableMetric::Acer => "ACER (%)",
            TableMetric::Miou => "mIoU (%)",
            TableMetric::Apcer => "APCER (%)",
            TableMetric::Bpcer => "BPCER (%)",
        }
    }
}

/// Rows = combinations + average, columns = methods; each cell the mean (and std over seeds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonTable {
    /// What the cells hold.
    pub metric: TableMetric,
    /// Row labels: every combination, then `Average`.
    pub rows: Vec<String>,
    /// Row combinations as bit strings (`Average` has none).
    pub row_bits: Vec<Option<String>>,
    /// Column labels (methods).
    pub methods: Vec<String>,
    /// `cells[row][method]` = (mean, std) over the runs given; std is 0 for one run.
    pub cells: Vec<Vec<(f64, f64)>>,
    /// Number of runs (seeds) behind each column.
    pub runs: Vec<usize>,
    /// For a table of paired differences: the baseline method each cell is measured against
    /// (each seed's value minus the baseline's on the same seed, then mean ± std).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difference_to: Option<String>,
}

impl ComparisonTable {
    /// Builds the table from, per method, one report per seed. All reports must cover the same
    /// combinations in the same order.
    pub fn build(metric: TableMetric, methods: &[(String, Vec<EvalReport>)]) -> Result<Self> {
        Self::build_from(metric, methods, None)
    }

    /// The paired differences of every other method to `baseline`: per seed, the method's
    /// value minus the baseline's on the same seed — the student methods of one seed share
    /// initialisation, batch order and modality draws, so the difference is the method's own
    /// effect — then mean ± std over the seeds. `None` without the baseline or another method.
    pub fn paired(
        metric: TableMetric,
        methods: &[(String, Vec<EvalReport>)],
        baseline: &str,
    ) -> Result<Option<Self>> {
        let Some(base) = methods.iter().find(|(name, _)| name == baseline) else {
            return Ok(None);
        };
        let others: Vec<(String, Vec<EvalReport>)> = methods
            .iter()
            .filter(|(name, _)| name != baseline)
            .cloned()
            .collect();
        if others.is_empty() {
            return Ok(None);
        }
        if let Some((name, reports)) = others.iter().find(|(_, r)| r.len() != base.1.len()) {
            return Err(CoreError::data(
                "paired comparison",
                format!(
                    "{name} has {} runs, {baseline} {}: differences pair runs of the same seed",
                    reports.len(),
                    base.1.len()
                ),
            ));
        }
        Self::build_from(metric, &others, Some((baseline, &base.1))).map(Some)
    }

    /// One cell's value of `rep`: row `k`, or the mean over the combinations for the last row.
    fn value(metric: TableMetric, rep: &EvalReport, k: usize, n_rows: usize) -> Result<f64> {
        if k + 1 == n_rows {
            let per: Vec<f64> = rep.rows.iter().filter_map(|r| metric.of(r)).collect();
            Ok(mean(per.into_iter()))
        } else {
            rep.rows.get(k).and_then(|r| metric.of(r)).ok_or_else(|| {
                CoreError::data(
                    "comparison table",
                    format!(
                        "method {} has no {} value for row {k}",
                        rep.method,
                        metric.name()
                    ),
                )
            })
        }
    }

    fn build_from(
        metric: TableMetric,
        methods: &[(String, Vec<EvalReport>)],
        baseline: Option<(&str, &[EvalReport])>,
    ) -> Result<Self> {
        let first = methods
            .iter()
            .find_map(|(_, r)| r.first())
            .ok_or_else(|| CoreError::data("comparison table", "no results to tabulate"))?;
        let n_modalities = first.modalities.len();
        let mut rows: Vec<String> = first.rows.iter().map(|r| r.label.clone()).collect();
        let mut row_bits: Vec<Option<String>> = first
            .rows
            .iter()
            .map(|r| Some(r.combination.bit_string(n_modalities)))
            .collect();
        rows.push("Average".into());
        row_bits.push(None);
        let n_rows = rows.len();
        let mut cells = vec![Vec::with_capacity(methods.len()); n_rows];
        let mut runs = Vec::with_capacity(methods.len());
        for (_, reports) in methods {
            runs.push(reports.len());
            for (k, cell_row) in cells.iter_mut().enumerate() {
                let values: Vec<f64> = reports
                    .iter()
                    .enumerate()
                    .map(|(seed, rep)| {
                        let v = Self::value(metric, rep, k, n_rows)?;
                        match baseline {
                            Some((_, base)) => Ok(v - Self::value(metric, &base[seed], k, n_rows)?),
                            None => Ok(v),
                        }
                    })
                    .collect::<Result<_>>()?;
                cell_row.push(mean_std(&values));
            }
        }
        Ok(ComparisonTable {
            metric,
            rows,
            row_bits,
            methods: methods.iter().map(|(n, _)| n.clone()).collect(),
            cells,
            runs,
            difference_to: baseline.map(|(name, _)| name.to_string()),
        })
    }

    fn fmt_cell(&self, (m, s): (f64, f64), runs: usize) -> String {
        // a difference that rounds to zero reads +0.00, not -0.00
        let m = if (m * 100.0).round() == 0.0 { 0.0 } else { m };
        match (self.difference_to.is_some(), runs > 1) {
            (true, true) => format!("{m:+.2} ± {s:.2}"),
            (true, false) => format!("{m:+.2}"),
            (false, true) => format!("{m:.2} ± {s:.2}"),
            (false, false) => format!("{m:.2}"),
        }
    }

    /// Index of the best method in row `r` (highest accuracy / lowest ACER).
    pub fn best_in_row(&self, r: usize) -> Option<usize> {
        let row = self.cells.get(r)?;
        (0..row.len()).reduce(|a, b| {
            let better = match self.metric {
                m if m.higher_is_better() => row[b].0 > row[a].0,
                _ => row[b].0 < row[a].0,
            };
            if better { b } else { a }
        })
    }

    /// The table as aligned Markdown (the best cell of each row in bold).
    pub fn to_markdown(&self) -> String {
        let mut header = vec![match &self.difference_to {
            Some(base) => format!("Combination — {} minus {base}, paired", self.metric.name()),
            None => format!("Combination — {}", self.metric.name()),
        }];
        header.extend(self.methods.iter().cloned());
        let mut lines: Vec<Vec<String>> = vec![header];
        for (r, label) in self.rows.iter().enumerate() {
            let best = self.best_in_row(r);
            let mut line = vec![label.clone()];
            for (c, cell) in self.cells[r].iter().enumerate() {
                let text = self.fmt_cell(*cell, self.runs[c]);
                line.push(if Some(c) == best && self.methods.len() > 1 {
                    format!("**{text}**")
                } else {
                    text
                });
            }
            lines.push(line);
        }
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            out.push('|');
            for (c, cell) in l.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
            out.push('\n');
            if i == 0 {
                out.push('|');
                for (c, w) in widths.iter().enumerate() {
                    let dashes = "-".repeat(*w);
                    if c == 0 {
                        let _ = write!(out, " {dashes} |");
                    } else {
                        let _ = write!(out, " {}: |", &dashes[1..]);
                    }
                }
                out.push('\n');
            }
        }
        out
    }

    /// The table as CSV: `combination,bits,<method>_mean,<method>_std,…`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("combination,bits");
        for m in &self.methods {
            let _ = write!(out, ",{m}_mean,{m}_std");
        }
        out.push('\n');
        for (r, label) in self.rows.iter().enumerate() {
            let _ = write!(
                out,
                "{label},{}",
                self.row_bits[r].clone().unwrap_or_default()
            );
            for (m, s) in &self.cells[r] {
                let _ = write!(out, ",{m:.6},{s:.6}");
            }
            out.push('\n');
        }
        out
    }

    /// Writes `<stem>.md`, `<stem>.csv` and `<stem>.json` into `store` (atomically on disk).
    pub fn write_all(&self, store: &mut dyn crate::store::RunStore, stem: &str) -> Result<()> {
        store.write(&format!("{stem}.md"), self.to_markdown().as_bytes())?;
        store.write(&format!("{stem}.csv"), self.to_csv().as_bytes())?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| CoreError::data("comparison table", e.to_string()))?;
        store.write(&format!("{stem}.json"), &json)
    }
}

/// The comparison tables a set of reports supports: mIoU first when every row has
/// segmentation scores, then accuracy, then ACER, APCER and BPCER when every row has PAD rates
/// (two-class data, as the paper's anti-spoofing tables).
pub fn comparison_tables(methods: &[(String, Vec<EvalReport>)]) -> Result<Vec<ComparisonTable>> {
    table_metrics(methods)
        .into_iter()
        .map(|metric| ComparisonTable::build(metric, methods))
        .collect()
}

/// The metrics every row of `methods` has: mIoU (segmentation), accuracy, then ACER, APCER and
/// BPCER (two-class data).
fn table_metrics(methods: &[(String, Vec<EvalReport>)]) -> Vec<TableMetric> {
    let every = |f: &dyn Fn(&CombinationResult) -> bool| {
        methods
            .iter()
            .flat_map(|(_, reps)| reps.iter().flat_map(|r| &r.rows))
            .all(f)
    };
    let mut metrics = Vec::new();
    if every(&|r| r.seg.is_some()) {
        metrics.push(TableMetric::Miou);
    }
    metrics.push(TableMetric::Accuracy);
    if every(&|r| r.pad.is_some()) {
        metrics.extend([TableMetric::Acer, TableMetric::Apcer, TableMetric::Bpcer]);
    }
    metrics
}

/// The paired-difference tables (see [`ComparisonTable::paired`]) against `baseline`, one per
/// metric of [`comparison_tables`]; empty without the baseline or another method.
pub fn paired_tables(
    methods: &[(String, Vec<EvalReport>)],
    baseline: &str,
) -> Result<Vec<ComparisonTable>> {
    let mut tables = Vec::new();
    for metric in table_metrics(methods) {
        if let Some(p) = ComparisonTable::paired(metric, methods, baseline)? {
            tables.push(p);
        }
    }
    Ok(tables)
}

impl TableMetric {
    /// File stem of this metric's table: `base` for accuracy, `base-acer`, `base-apcer`,
    /// `base-bpcer`, `base-miou`.
    pub fn file_stem(self, base: &str) -> String {
        match self {
            TableMetric::Accuracy => base.to_string(),
            TableMetric::Acer => format!("{base}-acer"),
            TableMetric::Miou => format!("{base}-miou"),
            TableMetric::Apcer => format!("{base}-apcer"),
            TableMetric::Bpcer => format!("{base}-bpcer"),
        }
    }
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let m = values.iter().sum::<f64>() / n;
    let v = values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(method: &str, rates: &[(f64, f64)]) -> EvalReport {
        let names: Vec<String> = ["rgb", "depth"].map(String::from).to_vec();
        let combos = [
            ModalitySet::single(0),
            ModalitySet::single(1),
            ModalitySet::full(2),
        ];
        EvalReport {
            method: method.into(),
            modalities: names.clone(),
            rows: combos
                .iter()
                .zip(rates)
                .map(|(&c, &(apcer, bpcer))| CombinationResult {
                    combination: c,
                    label: c.long_label(&names),
                    samples: 10,
                    accuracy: 1.0 - (apcer + bpcer) / 2.0,
                    pad: Some(PadRates {
                        apcer,
                        bpcer,
                        acer: (apcer + bpcer) / 2.0,
                    }),
                    seg: None,
                })
                .collect(),
        }
    }

    #[test]
    fn two_class_data_gets_acer_apcer_and_bpcer_tables() {
        let methods = vec![
            (
                "SF-MD".to_string(),
                vec![report("SF-MD", &[(0.2, 0.1), (0.3, 0.3), (0.1, 0.0)])],
            ),
            (
                "MMANet".to_string(),
                vec![report("MMANet", &[(0.1, 0.1), (0.4, 0.2), (0.0, 0.1)])],
            ),
        ];
        let tables = comparison_tables(&methods).unwrap();
        let metrics: Vec<TableMetric> = tables.iter().map(|t| t.metric).collect();
        assert_eq!(
            metrics,
            [
                TableMetric::Accuracy,
                TableMetric::Acer,
                TableMetric::Apcer,
                TableMetric::Bpcer
            ]
        );
        let apcer = &tables[2];
        assert_eq!(apcer.rows, ["rgb", "depth", "rgb+depth", "Average"]);
        assert!((apcer.cells[1][1].0 - 40.0).abs() < 1e-9);
        assert!((apcer.cells[3][0].0 - 20.0).abs() < 1e-9, "the average row");
        // error rates: the lower value is the better method of a row
        assert_eq!(apcer.best_in_row(0), Some(1));
        assert_eq!(tables[3].best_in_row(1), Some(1));
        assert_eq!(TableMetric::Apcer.file_stem("results"), "results-apcer");
        assert_eq!(TableMetric::Bpcer.file_stem("results"), "results-bpcer");
        assert!(!TableMetric::Bpcer.higher_is_better());
    }

    #[test]
    fn paired_differences_are_signed_and_a_rounded_zero_has_no_minus() {
        let table = ComparisonTable {
            metric: TableMetric::Acer,
            rows: vec!["rgb".into(), "Average".into()],
            row_bits: vec![Some("10".into()), None],
            methods: vec!["MMANet".into()],
            cells: vec![vec![(-0.001, 0.46)], vec![(-1.5, 0.2)]],
            runs: vec![5],
            difference_to: Some("SF-MD".into()),
        };
        let md = table.to_markdown();
        assert!(md.contains("+0.00 ± 0.46"), "{md}");
        assert!(md.contains("-1.50 ± 0.20"), "{md}");
        assert!(!md.contains("-0.00"), "{md}");
    }
}
