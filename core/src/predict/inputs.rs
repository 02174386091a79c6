//! New samples for a classifier bundle, read from where users keep them: per-modality CSV files
//! (rows aligned, an empty row = that modality absent), a dataset's own samples (a config or a
//! manifest and a split), or one sample's image files. Values are raw — as in the files; the
//! [`super::Classifier`] prepares them with the bundle's statistics.

use crate::data::imagelist::ImagePreprocessing;
use crate::data::{ModalityKind, ModalitySpec, MultimodalSource};
use crate::error::{CoreError, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Samples to predict, read one at a time (so a large image dataset is never all in memory).
pub trait SampleReader {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How sample `i` is named in tables and errors (`row 12`, `sample 7`, a file name).
    fn id(&self, i: usize) -> String;
    /// The known class of sample `i`, if the input carries labels.
    fn label(&self, i: usize) -> Option<usize>;
    /// Sample `i`'s values per modality of the model, in its order; `None` where the modality is
    /// absent. Image modalities are prepared as in evaluation; vectors are raw.
    fn read(&self, i: usize) -> Result<Vec<Option<Vec<f32>>>>;
}

/// Where a CSV row keeps its label, when it has one more column than the modality's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LabelAt {
    /// The last column (mfeat's files, the training manifests' default).
    #[default]
    Last,
    /// The first column.
    First,
}

/// Whether a CSV file starts with a header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeaderRule {
    /// A header when no cell of the first line is a number, or when its feature cells are the
    /// column numbers `0, 1, 2, …` (pandas' default header, as in mfeat's files).
    #[default]
    Auto,
    /// The first line is a header.
    Present,
    /// The first line is data.
    Absent,
}

/// One modality's CSV file for prediction.
#[derive(Clone, Debug)]
pub struct CsvInput<'a> {
    /// The model's modality this file holds.
    pub modality: String,
    /// File name, named in every error.
    pub file: String,
    /// The CSV text.
    pub text: &'a str,
}

/// Samples read from per-modality CSV files, held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvRows {
    /// Per sample, per model modality: the row's values or `None` (absent).
    pub values: Vec<Vec<Option<Vec<f32>>>>,
    /// Per sample, the label when any file has a label column.
    pub labels: Option<Vec<Option<usize>>>,
}

/// The model's modality index called `name`, or an error listing the ones it has.
pub fn modality_index(modalities: &[ModalitySpec], name: &str) -> Result<usize> {
    modalities
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| {
            CoreError::config(
                "modalities",
                format!(
                    "the model has no modality `{name}` (it has: {})",
                    modalities
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// Reads aligned CSV files, one per modality (any subset of the model's): line `n` of every file
/// is sample `n`. A first line that is not all numbers is a header. A row is the modality's
/// features, or the features and a label (`label_at`). An empty line, or a line of empty cells,
/// is that modality absent for that sample; empty lines at the end of a file are ignored (a last
/// absent row is written as a line of commas).
/// Every error names the file, line and column.
pub fn read_csv_rows(
    modalities: &[ModalitySpec],
    classes: usize,
    inputs: &[CsvInput<'_>],
    header: HeaderRule,
    label_at: LabelAt,
) -> Result<CsvRows> {
    if inputs.is_empty() {
        return Err(CoreError::config("inputs", "no CSV file given"));
    }
    let mut per_file = Vec::with_capacity(inputs.len());
    let mut seen = vec![None::<&str>; modalities.len()];
    for input in inputs {
        let m = modality_index(modalities, &input.modality)?;
        if let Some(other) = seen[m] {
            return Err(CoreError::config(
                "inputs",
                format!(
                    "modality `{}` is given twice ({other} and {})",
                    input.modality, input.file
                ),
            ));
        }
        seen[m] = Some(&input.file);
        per_file.push((
            m,
            parse_rows(&modalities[m], classes, input, header, label_at)?,
        ));
    }
    let n = per_file[0].1.len();
    for (input, (_, rows)) in inputs.iter().zip(&per_file).skip(1) {
        if rows.len() != n {
            return Err(CoreError::data(
                &input.file,
                format!(
                    "has {} data rows, {} has {n}: rows must be aligned (leave a row empty for an absent modality)",
                    rows.len(),
                    inputs[0].file
                ),
            ));
        }
    }
    let any_labels = per_file
        .iter()
        .any(|(_, rows)| rows.iter().any(|r| r.label.is_some()));
    let mut values = vec![vec![None; modalities.len()]; n];
    let mut labels: Vec<Option<(usize, &str)>> = vec![None; n];
    for (input, (m, rows)) in inputs.iter().zip(per_file) {
        for (i, row) in rows.into_iter().enumerate() {
            if let Some(l) = row.label {
                match labels[i] {
                    Some((other, first)) if other != l => {
                        return Err(CoreError::Parse {
                            file: input.file.clone(),
                            line: row.line,
                            column: None,
                            message: format!(
                                "label {l} disagrees with {first}, which says {other}"
                            ),
                        });
                    }
                    _ => labels[i] = Some((l, &input.file)),
                }
            }
            values[i][m] = row.values;
        }
    }
    Ok(CsvRows {
        values,
        labels: any_labels.then(|| labels.into_iter().map(|l| l.map(|(l, _)| l)).collect()),
    })
}

struct ParsedRow {
    line: usize,
    /// An empty line (not a line of empty cells).
    blank: bool,
    values: Option<Vec<f32>>,
    label: Option<usize>,
}

fn parse_rows(
    spec: &ModalitySpec,
    classes: usize,
    input: &CsvInput<'_>,
    header: HeaderRule,
    label_at: LabelAt,
) -> Result<Vec<ParsedRow>> {
    let dim = spec.kind.numel();
    let what = match spec.kind {
        ModalityKind::Vector { dim } => format!("{dim} features"),
        ModalityKind::Image {
            channels,
            height,
            width,
        } => format!("{channels}×{height}×{width} = {dim} pixel values"),
    };
    let err = |line: usize, column: Option<usize>, message: String| CoreError::Parse {
        file: input.file.clone(),
        line,
        column,
        message,
    };
    let mut rows = Vec::new();
    for (k, raw) in input.text.lines().enumerate() {
        let line = k + 1;
        let cells: Vec<&str> = raw.split(',').map(str::trim).collect();
        if cells.iter().all(|c| c.is_empty()) {
            rows.push(ParsedRow {
                line,
                blank: raw.trim().is_empty(),
                values: None,
                label: None,
            });
            continue;
        }
        if k == 0 && is_header(&cells, dim, header, label_at) {
            continue;
        }
        let label_col = match cells.len() {
            w if w == dim => None,
            w if w == dim + 1 => Some(match label_at {
                LabelAt::First => 0,
                LabelAt::Last => dim,
            }),
            w => {
                return Err(err(
                    line,
                    None,
                    format!(
                        "{w} columns, but the model's `{}` takes {what} (or one more column: a label)",
                        spec.name
                    ),
                ));
            }
        };
        let mut values = Vec::with_capacity(dim);
        let mut label = None;
        for (c, cell) in cells.iter().enumerate() {
            if Some(c) == label_col {
                let l: usize = cell.parse().ok().filter(|&l| l < classes).ok_or_else(|| {
                    err(
                        line,
                        Some(c + 1),
                        format!("label `{cell}` is not a class of the model (0..{classes})"),
                    )
                })?;
                label = Some(l);
                continue;
            }
            if cell.is_empty() {
                return Err(err(
                    line,
                    Some(c + 1),
                    "an empty cell (leave the whole row empty when the modality is absent)".into(),
                ));
            }
            let v: f32 = cell
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| {
                    err(
                        line,
                        Some(c + 1),
                        format!("`{cell}` is not a finite number"),
                    )
                })?;
            values.push(v);
        }
        rows.push(ParsedRow {
            line,
            blank: false,
            values: Some(values),
            label,
        });
    }
    while rows.last().is_some_and(|r| r.blank) {
        rows.pop();
    }
    if rows.is_empty() {
        return Err(CoreError::data(&input.file, "has no data rows"));
    }
    Ok(rows)
}

fn is_header(cells: &[&str], dim: usize, rule: HeaderRule, label_at: LabelAt) -> bool {
    match rule {
        HeaderRule::Present => true,
        HeaderRule::Absent => false,
        HeaderRule::Auto => {
            if cells.iter().all(|c| c.parse::<f64>().is_err()) {
                return true;
            }
            let features = match (cells.len() == dim + 1, label_at) {
                (true, LabelAt::First) => &cells[1..],
                (true, LabelAt::Last) => &cells[..dim],
                (false, _) => cells,
            };
            features.len() >= 2
                && features
                    .iter()
                    .enumerate()
                    .all(|(i, c)| c.parse::<usize>() == Ok(i))
        }
    }
}

impl SampleReader for CsvRows {
    fn len(&self) -> usize {
        self.values.len()
    }
    fn id(&self, i: usize) -> String {
        format!("row {}", i + 1)
    }
    fn label(&self, i: usize) -> Option<usize> {
        self.labels.as_ref().and_then(|l| l[i])
    }
    fn read(&self, i: usize) -> Result<Vec<Option<Vec<f32>>>> {
        Ok(self.values[i].clone())
    }
}

/// A dataset's own samples (every modality present, labels known), raw: load the dataset
/// without standardisation, the classifier applies the bundle's.
pub struct DatasetSamples {
    /// The dataset.
    pub source: Arc<dyn MultimodalSource>,
    /// The samples to predict (a split).
    pub indices: Vec<usize>,
}

impl SampleReader for DatasetSamples {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn id(&self, i: usize) -> String {
        format!("sample {}", self.indices[i])
    }
    fn label(&self, i: usize) -> Option<usize> {
        Some(self.source.label(self.indices[i]))
    }
    fn read(&self, i: usize) -> Result<Vec<Option<Vec<f32>>>> {
        let mut out = vec![Vec::new(); self.source.modalities().len()];
        self.source.load_sample(self.indices[i], None, &mut out)?;
        Ok(out.into_iter().map(Some).collect())
    }
}

/// One sample from image files, one per present modality (`None`: absent), prepared as the
/// bundle's training data was.
pub struct ImageFiles {
    /// Per model modality, its image file or `None`.
    pub paths: Vec<Option<PathBuf>>,
    /// The bundle's image preparation.
    pub prep: ImagePreprocessing,
}

impl SampleReader for ImageFiles {
    fn len(&self) -> usize {
        1
    }
    fn id(&self, _i: usize) -> String {
        self.paths
            .iter()
            .flatten()
            .next()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sample".into())
    }
    fn label(&self, _i: usize) -> Option<usize> {
        None
    }
    fn read(&self, _i: usize) -> Result<Vec<Option<Vec<f32>>>> {
        self.paths
            .iter()
            .map(|p| p.as_ref().map(|p| self.prep.read(p)).transpose())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ModalitySpec> {
        vec![
            ModalitySpec {
                name: "a".into(),
                kind: ModalityKind::Vector { dim: 2 },
            },
            ModalitySpec {
                name: "b".into(),
                kind: ModalityKind::Vector { dim: 3 },
            },
        ]
    }

    fn input<'a>(modality: &str, text: &'a str) -> CsvInput<'a> {
        CsvInput {
            modality: modality.into(),
            file: format!("{modality}.csv"),
            text,
        }
    }

    #[test]
    fn rows_align_across_files_with_headers_labels_and_absent_rows() {
        let a = "x1,x2,label\n1,2,0\n,,\n5,6,1\n\n";
        let b = "1,1,1\n2,2,2\n,,\n\n";
        let rows = read_csv_rows(
            &specs(),
            2,
            &[input("a", a), input("b", b)],
            HeaderRule::Auto,
            LabelAt::Last,
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.values[0],
            vec![Some(vec![1.0, 2.0]), Some(vec![1.0, 1.0, 1.0])]
        );
        assert_eq!(rows.values[1], vec![None, Some(vec![2.0, 2.0, 2.0])]);
        assert_eq!(rows.values[2], vec![Some(vec![5.0, 6.0]), None]);
        assert_eq!(rows.labels, Some(vec![Some(0), None, Some(1)]));
        // label first
        let rows = read_csv_rows(
            &specs(),
            4,
            &[input("a", "3,1,2\n")],
            HeaderRule::Auto,
            LabelAt::First,
        )
        .unwrap();
        assert_eq!(rows.values[0][0], Some(vec![1.0, 2.0]));
        assert_eq!(rows.label(0), Some(3));
        // pandas' header of column numbers (mfeat's) is found; forced rules win
        let text = "0,1,0\n0,1,1\n";
        let read = |rule| {
            read_csv_rows(&specs(), 2, &[input("a", text)], rule, LabelAt::Last)
                .unwrap()
                .len()
        };
        assert_eq!(read(HeaderRule::Auto), 1);
        assert_eq!(read(HeaderRule::Absent), 2);
        assert_eq!(read(HeaderRule::Present), 1);
    }

    #[test]
    fn bad_rows_and_files_are_named_errors() {
        let bad = |inputs: &[CsvInput<'_>], want: &[&str]| {
            let e = read_csv_rows(&specs(), 2, inputs, HeaderRule::Auto, LabelAt::Last)
                .unwrap_err()
                .to_string();
            for w in want {
                assert!(e.contains(w), "{e} lacks {w}");
            }
        };
        bad(
            &[input("a", "1,2\n1,2,3,4\n")],
            &["a.csv:2", "4 columns", "takes 2 features"],
        );
        bad(&[input("a", "1,2\n1,x\n")], &["a.csv:2, column 2", "`x`"]);
        bad(&[input("a", "1,2\n1,NaN\n")], &["not a finite number"]);
        bad(
            &[input("a", "1,2\n1,,\n")],
            &["a.csv:2, column 2", "empty cell"],
        );
        bad(&[input("a", "1,2,7\n")], &["column 3", "label `7`", "0..2"]);
        bad(&[input("c", "1\n")], &["no modality `c`", "a, b"]);
        bad(
            &[input("a", "1,2\n"), input("a", "1,2\n")],
            &["`a` is given twice"],
        );
        bad(
            &[input("a", "1,2\n3,4\n"), input("b", "1,2,3\n")],
            &["b.csv", "1 data rows", "a.csv has 2"],
        );
        bad(
            &[input("a", "1,2,0\n"), input("b", "1,2,3,1\n")],
            &["b.csv:1", "label 1 disagrees with a.csv, which says 0"],
        );
        bad(&[input("a", "h1,h2\n\n")], &["a.csv", "no data rows"]);
        bad(&[], &["no CSV file"]);
    }
}
