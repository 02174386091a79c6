//! Multi-view CSV: one CSV file per modality, rows aligned (row n of every file is sample n),
//! the label in a column of at least one file.
//!
//! Every problem is reported with the file, the 1-based line and, for a bad cell, the 1-based
//! column: a non-numeric cell, a row of the wrong width, a label that is not a class index or is
//! out of range, files whose row counts or labels disagree.

use super::{InMemoryDataset, MAX_CLASSES, ModalityKind, ModalitySpec};
use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Where a CSV file keeps the label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum LabelColumn {
    /// `"first"`, `"last"` or `"none"`.
    Named(LabelPosition),
    /// A 1-based column number.
    Index(usize),
    /// No label in this file.
    #[default]
    #[serde(skip)]
    Absent,
}

/// Named label positions for [`LabelColumn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelPosition {
    /// The first column.
    First,
    /// The last column.
    Last,
    /// No label column.
    None,
}

/// One modality's CSV text and how to read it.
#[derive(Clone, Debug)]
pub struct CsvView<'a> {
    /// Modality name.
    pub name: String,
    /// File name used in error messages.
    pub file: String,
    /// The CSV text.
    pub text: &'a str,
    /// Whether the first line is a header to skip.
    pub header: bool,
    /// Where the label is, if this file has one.
    pub label: LabelColumn,
    /// Read each row as an image of this shape instead of a vector (`C·H·W` must equal the
    /// number of feature columns), e.g. mfeat's pixel view as `1×15×16`.
    pub image_shape: Option<[usize; 3]>,
}

struct ParsedView {
    values: Vec<f32>,
    width: usize,
    labels: Option<Vec<(usize, usize)>>, // (label, line)
}

fn label_index(label: &LabelColumn, width: usize) -> Option<usize> {
    match label {
        LabelColumn::Named(LabelPosition::First) => Some(0),
        LabelColumn::Named(LabelPosition::Last) => Some(width.saturating_sub(1)),
        LabelColumn::Index(i) => Some(i.saturating_sub(1)),
        LabelColumn::Named(LabelPosition::None) | LabelColumn::Absent => None,
    }
}

fn parse_view(view: &CsvView<'_>, classes: Option<usize>) -> Result<ParsedView> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(view.header)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(view.text.as_bytes());
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    let mut label_at: Option<usize> = None;
    for record in reader.records() {
        let record = record.map_err(|e| CoreError::Parse {
            file: view.file.clone(),
            line: e.position().map(|p| p.line() as usize).unwrap_or(0),
            column: None,
            message: e.to_string(),
        })?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
            continue; // blank line
        }
        let w = *width.get_or_insert(record.len());
        if record.len() != w {
            return Err(CoreError::Parse {
                file: view.file.clone(),
                line,
                column: None,
                message: format!("{} columns, but the first data row has {w}", record.len()),
            });
        }
        if label_at.is_none() {
            label_at = label_index(&view.label, w);
            if let Some(l) = label_at
                && l >= w
            {
                return Err(CoreError::Parse {
                    file: view.file.clone(),
                    line,
                    column: None,
                    message: format!("label column {} does not exist ({w} columns)", l + 1),
                });
            }
        }
        for (c, cell) in record.iter().enumerate() {
            if Some(c) == label_at {
                let label: usize = cell.parse().map_err(|_| CoreError::Parse {
                    file: view.file.clone(),
                    line,
                    column: Some(c + 1),
                    message: format!("label `{cell}` is not a class index (0, 1, 2, …)"),
                })?;
                if classes.is_none() && label >= MAX_CLASSES {
                    return Err(CoreError::Parse {
                        file: view.file.clone(),
                        line,
                        column: Some(c + 1),
                        message: format!(
                            "label {label} is beyond the {MAX_CLASSES} classes mmanet supports (labels are class indices 0, 1, 2, …)"
                        ),
                    });
                }
                if let Some(k) = classes
                    && label >= k
                {
                    return Err(CoreError::Parse {
                        file: view.file.clone(),
                        line,
                        column: Some(c + 1),
                        message: format!("label {label} is out of range: {k} classes (0..{k})"),
                    });
                }
                labels.push((label, line));
            } else {
                let v: f32 = cell.parse().map_err(|_| CoreError::Parse {
                    file: view.file.clone(),
                    line,
                    column: Some(c + 1),
                    message: format!("`{cell}` is not a number"),
                })?;
                if !v.is_finite() {
                    return Err(CoreError::Parse {
                        file: view.file.clone(),
                        line,
                        column: Some(c + 1),
                        message: format!("`{cell}` is not a finite number"),
                    });
                }
                values.push(v);
            }
        }
    }
    let width = width.unwrap_or(0) - usize::from(label_at.is_some());
    if values.is_empty() && labels.is_empty() {
        return Err(CoreError::data(&view.file, "the file has no data rows"));
    }
    Ok(ParsedView {
        values,
        width,
        labels: label_at.map(|_| labels),
    })
}

/// Reads aligned per-modality CSV texts into one dataset. `classes`, when given, bounds the
/// labels; otherwise it is the largest label + 1.
pub fn load_multiview(
    dataset_name: &str,
    views: &[CsvView<'_>],
    classes: Option<usize>,
) -> Result<InMemoryDataset> {
    if views.is_empty() {
        return Err(CoreError::data(dataset_name, "no modality files given"));
    }
    let parsed = views
        .iter()
        .map(|v| parse_view(v, classes))
        .collect::<Result<Vec<_>>>()?;
    let rows = |p: &ParsedView| {
        p.labels
            .as_ref()
            .map(Vec::len)
            .unwrap_or_else(|| p.values.len() / p.width.max(1))
    };
    let n = rows(&parsed[0]);
    for (v, p) in views.iter().zip(&parsed).skip(1) {
        if rows(p) != n {
            return Err(CoreError::data(
                dataset_name,
                format!(
                    "row counts disagree: {} has {} data rows, {} has {}",
                    views[0].file,
                    n,
                    v.file,
                    rows(p)
                ),
            ));
        }
    }
    // Labels: the first file that has them; every other labelled file must agree.
    let mut labels: Option<(&str, Vec<(usize, usize)>)> = None;
    for (v, p) in views.iter().zip(&parsed) {
        if let Some(ls) = &p.labels {
            match &labels {
                None => labels = Some((&v.file, ls.clone())),
                Some((first, reference)) => {
                    if let Some(((a, _), (b, line))) =
                        reference.iter().zip(ls).find(|((a, _), (b, _))| a != b)
                    {
                        return Err(CoreError::Parse {
                            file: v.file.clone(),
                            line: *line,
                            column: None,
                            message: format!("label {b} disagrees with {first}, which says {a}"),
                        });
                    }
                }
            }
        }
    }
    let Some((_, labels)) = labels else {
        return Err(CoreError::data(
            dataset_name,
            "no file has a label column (set `label` on at least one modality)",
        ));
    };
    let labels: Vec<usize> = labels.into_iter().map(|(l, _)| l).collect();
    let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(0, |m| m + 1));
    let mut modalities = Vec::with_capacity(views.len());
    let mut features = Vec::with_capacity(views.len());
    for (v, p) in views.iter().zip(parsed) {
        let kind = match v.image_shape {
            Some([c, h, w]) => {
                if c * h * w != p.width {
                    return Err(CoreError::data(
                        &v.file,
                        format!(
                            "image shape {c}×{h}×{w} = {} values, but rows have {} feature columns",
                            c * h * w,
                            p.width
                        ),
                    ));
                }
                ModalityKind::Image {
                    channels: c,
                    height: h,
                    width: w,
                }
            }
            None => ModalityKind::Vector { dim: p.width },
        };
        modalities.push(ModalitySpec {
            name: v.name.clone(),
            kind,
        });
        features.push(p.values);
    }
    let ds = InMemoryDataset {
        name: dataset_name.to_string(),
        modalities,
        classes,
        class_names: None,
        features,
        labels,
    };
    ds.validate()?;
    Ok(ds)
}
