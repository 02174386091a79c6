//! Evaluation: run a model with one fixed combination for every sample, once per combination,
//! and compute accuracy (and APCER / BPCER / ACER on two-class tasks). All device reads are
//! asynchronous so the browser can use the same code.

use crate::data::{MultimodalSource, make_batch};
use crate::error::{CoreError, Result};
use crate::metrics::{accuracy, pad_rates};
use crate::modality::ModalitySet;
use crate::model::{MultimodalNet, mask_tensor};
use crate::report::{CombinationResult, EvalReport};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Reads a float tensor back to the host (asynchronously).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| CoreError::Backend(format!("reading a tensor failed: {e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| CoreError::Backend(format!("reading a tensor failed: {e:?}")))
}

/// Reads an int tensor back to the host (asynchronously).
pub async fn read_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| CoreError::Backend(format!("reading a tensor failed: {e:?}")))?;
    data.try_into_vec_as::<i64>()
        .map_err(|e| CoreError::Backend(format!("reading a tensor failed: {e:?}")))
}

/// Predicted labels of `model` (in eval mode) on samples `indices`, once per combination (all
/// samples seen through it): one list per combination, in order. Each batch is loaded and
/// encoded once; only the masking, fusion and the deployment trunk run per combination (the
/// same values as a separate forward pass each).
pub async fn predict_labels(
    model: &MultimodalNet,
    source: &dyn MultimodalSource,
    indices: &[usize],
    combinations: &[ModalitySet],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<usize>>> {
    let mut preds = vec![Vec::with_capacity(indices.len()); combinations.len()];
    // the modalities some combination sees
    let present: Vec<bool> = (0..model.num_modalities())
        .map(|m| combinations.iter().any(|c| c.contains(m)))
        .collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let host = make_batch(source, chunk, None)?;
        let inputs = model.inputs_from_batch(&host, device)?;
        let encoded = model.encode(&inputs, &present);
        for (&combination, preds) in combinations.iter().zip(preds.iter_mut()) {
            let mask = mask_tensor(
                &vec![combination; chunk.len()],
                model.num_modalities(),
                device,
            );
            let logits = model.deployment_logits(&model.fuse(&encoded, mask));
            let p = read_i64(logits.argmax(1).reshape([chunk.len()])).await?;
            preds.extend(p.into_iter().map(|v| v as usize));
        }
    }
    Ok(preds)
}

/// Class probabilities of `model` for the samples `indices` seen through `combination`,
/// one row per sample.
pub async fn predict_proba(
    model: &MultimodalNet,
    source: &dyn MultimodalSource,
    indices: &[usize],
    combination: ModalitySet,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let host = make_batch(source, indices, None)?;
    let inputs = model.inputs_from_batch(&host, device)?;
    let mask = mask_tensor(
        &vec![combination; indices.len()],
        model.num_modalities(),
        device,
    );
    let logits = model.deployment_logits(&model.encode_fuse(&inputs, mask));
    let classes = model.info().classes;
    let p = read_f32(softmax(logits, 1)).await?;
    Ok(p.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// Evaluates `model` on `indices` once per combination. `bona_fide_label` switches on the
/// APCER/BPCER/ACER columns for two-class tasks. `method` names the report.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate(
    model: &MultimodalNet,
    source: &dyn MultimodalSource,
    indices: &[usize],
    combinations: &[ModalitySet],
    batch_size: usize,
    device: &Device,
    bona_fide_label: Option<usize>,
    method: &str,
) -> Result<EvalReport> {
    if indices.is_empty() {
        return Err(CoreError::data(
            source.name(),
            "cannot evaluate on an empty split",
        ));
    }
    let labels: Vec<usize> = indices.iter().map(|&i| source.label(i)).collect();
    let names: Vec<String> = source.modality_names();
    let mut rows = Vec::with_capacity(combinations.len());
    let predictions =
        predict_labels(model, source, indices, combinations, batch_size, device).await?;
    for (&c, preds) in combinations.iter().zip(predictions) {
        let pad = match bona_fide_label {
            Some(b) if source.num_classes() == 2 => Some(pad_rates(&preds, &labels, b)),
            _ => None,
        };
        rows.push(CombinationResult {
            combination: c,
            label: c.long_label(&names),
            samples: indices.len(),
            accuracy: accuracy(&preds, &labels),
            pad,
            seg: None,
        });
    }
    Ok(EvalReport {
        method: method.to_string(),
        modalities: names,
        rows,
    })
}
