//! Predictions as files: CSV (one row per sample, a probability column per class) or JSON (the
//! model, its modalities and classes, and the predictions).

use super::SamplePrediction;
use crate::bundle::BundleHeader;
use crate::error::{CoreError, Result};
use serde::Serialize;

/// The predictions as CSV: `id, seen, predicted, [label, correct,] p:<class>…` — `seen` joins the
/// modality names with `+`, classes are written by name.
pub fn predictions_csv(header: &BundleHeader, predictions: &[SamplePrediction]) -> Result<Vec<u8>> {
    let names = modality_names(header);
    let labelled = predictions.iter().any(|p| p.label.is_some());
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut columns = vec!["id".to_string(), "seen".into(), "predicted".into()];
    if labelled {
        columns.extend(["label".into(), "correct".into()]);
    }
    columns.extend(header.class_names.iter().map(|c| format!("p:{c}")));
    let fail = |e: ::csv::Error| CoreError::data("predictions", format!("cannot write CSV: {e}"));
    w.write_record(&columns).map_err(fail)?;
    for p in predictions {
        let mut row = vec![
            p.id.clone(),
            p.seen.long_label(&names),
            class_name(header, p.class),
        ];
        if labelled {
            match p.label {
                Some(l) => row.extend([class_name(header, l), (l == p.class).to_string()]),
                None => row.extend([String::new(), String::new()]),
            }
        }
        row.extend(p.probabilities.iter().map(|v| v.to_string()));
        w.write_record(&row).map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| CoreError::data("predictions", format!("cannot write CSV: {e}")))
}

#[derive(Serialize)]
struct JsonPredictions<'a> {
    method: &'a str,
    dataset: &'a str,
    modalities: Vec<String>,
    class_names: &'a [String],
    predictions: Vec<JsonPrediction<'a>>,
}

#[derive(Serialize)]
struct JsonPrediction<'a> {
    id: &'a str,
    seen: Vec<String>,
    class: usize,
    class_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<usize>,
    probabilities: &'a [f32],
}

/// The predictions as pretty JSON: `{method, dataset, modalities, class_names, predictions:
/// [{id, seen: [names], class, class_name, label?, probabilities}]}`.
pub fn predictions_json(
    header: &BundleHeader,
    predictions: &[SamplePrediction],
) -> Result<Vec<u8>> {
    let names = modality_names(header);
    let doc = JsonPredictions {
        method: &header.method,
        dataset: &header.dataset,
        modalities: names.clone(),
        class_names: &header.class_names,
        predictions: predictions
            .iter()
            .map(|p| JsonPrediction {
                id: &p.id,
                seen: p.seen.indices().map(|m| names[m].clone()).collect(),
                class: p.class,
                class_name: class_name(header, p.class),
                label: p.label,
                probabilities: &p.probabilities,
            })
            .collect(),
    };
    serde_json::to_vec_pretty(&doc)
        .map_err(|e| CoreError::data("predictions", format!("cannot write JSON: {e}")))
}

fn modality_names(header: &BundleHeader) -> Vec<String> {
    header.modalities.iter().map(|m| m.name.clone()).collect()
}

fn class_name(header: &BundleHeader, class: usize) -> String {
    header
        .class_names
        .get(class)
        .cloned()
        .unwrap_or_else(|| class.to_string())
}
