//! ImageNet initialisation of ESANet's encoders from a torchvision ResNet state dict (`.pth`,
//! the file users already have, e.g. `resnet50-19c8e357.pth`), read with Burn's own PyTorch
//! reader (burn-store's `PytorchStore`).
//!
//! The encoders keep torchvision's module names, so the keys map one to one (BatchNorm's
//! `weight`/`bias` become Burn's `gamma`/`beta` through `PyTorchToBurnAdapter`); `fc.*` and
//! `*.num_batches_tracked` are not used. The depth encoder's 1-channel stem conv is the RGB
//! stem's weights summed over the input-channel axis, as the official code initialises it.
//! Anything that does not fit — a missing key, a wrong shape, a key the encoder has no place
//! for — is an error naming the first such key.
//!
//! Native targets only: a browser page has no file to read.

use super::esanet::{EsaNet, ResNetEncoder};
use crate::error::{CoreError, Result};
use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore};
use std::path::Path;

/// Whether a state-dict key is one the encoders do not use (the classifier, BN counters).
fn unused_by_encoders(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with("num_batches_tracked")
}

/// The encoder tensors of a torchvision ResNet `.pth`.
fn read_state_dict(path: &Path) -> Result<Vec<PackTensor>> {
    let err = |m: String| CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    if !path.is_file() {
        return Err(err(
            "no such file (download torchvision's ImageNet ResNet weights)".into(),
        ));
    }
    let mut store = PytorchStore::from_file(path);
    let all = store
        .get_all_tensors()
        .map_err(|e| err(format!("cannot read it as a PyTorch state dict: {e}")))?;
    Ok(all
        .iter()
        .filter(|(k, _)| !unused_by_encoders(k))
        .map(|(_, t)| t.clone())
        .collect())
}

/// Turns an [`ApplyResult`] into an error naming the first key that did not fit.
fn check(result: &ApplyResult, path: &Path, which: &str) -> Result<()> {
    let err = |m: String| CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("does not fit the {which} encoder: {m}"),
    };
    if let Some(e) = result.errors.first() {
        return Err(err(format!("{e}")));
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(err(format!(
            "no `{key}` in the file ({} missing; is it a ResNet of the same depth?)",
            result.missing.len()
        )));
    }
    if let Some(key) = result.unused.first() {
        return Err(err(format!(
            "the encoder has no place for `{key}` ({} unused; is it a ResNet of the same depth?)",
            result.unused.len()
        )));
    }
    Ok(())
}

/// `conv1.weight` `[C, 3, k, k]` summed over the input channels, `[C, 1, k, k]`.
fn summed_stem(tensors: &[PackTensor], path: &Path) -> Result<PackTensor> {
    let err = |m: String| CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    let stem = tensors
        .iter()
        .find(|t| t.name == "conv1.weight")
        .ok_or_else(|| err("no `conv1.weight` in the file".into()))?;
    let data = burn::store::bridge::to_data(stem)
        .map_err(|e| err(format!("cannot read `conv1.weight`: {e:?}")))?;
    let shape = data.shape().to_vec();
    let [c, cin, kh, kw] = shape[..] else {
        return Err(err(format!(
            "`conv1.weight` has shape {shape:?}, expected 4 dims"
        )));
    };
    let values: Vec<f32> = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| err(format!("cannot read `conv1.weight`: {e:?}")))?;
    let mut summed = vec![0f32; c * kh * kw];
    for o in 0..c {
        for i in 0..cin {
            for k in 0..kh * kw {
                summed[o * kh * kw + k] += values[(o * cin + i) * kh * kw + k];
            }
        }
    }
    Ok(burn::store::bridge::from_data(
        TensorData::new(summed, [c, 1, kh, kw]),
        "conv1.weight".into(),
        None,
    ))
}

/// Loads a torchvision ResNet `.pth` into `encoder`: as is for a 3-channel encoder, with the
/// stem summed over RGB for a 1-channel (depth) encoder.
pub fn load_resnet_encoder(mut encoder: ResNetEncoder, path: &Path) -> Result<ResNetEncoder> {
    let mut tensors = read_state_dict(path)?;
    let in_channels = encoder.conv1.weight.lazy_shape()[1];
    let which = if in_channels == 1 { "depth" } else { "RGB" };
    if in_channels == 1 {
        let stem = summed_stem(&tensors, path)?;
        tensors.retain(|t| t.name != "conv1.weight");
        tensors.push(stem);
    }
    let result = encoder.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    check(&result, path, which)?;
    Ok(encoder)
}

/// Initialises both encoders of `net` from a torchvision ResNet `.pth` (ImageNet weights).
pub fn load_imagenet_encoders(mut net: EsaNet, path: &Path) -> Result<EsaNet> {
    net.encoder_rgb = load_resnet_encoder(net.encoder_rgb, path)?;
    net.encoder_depth = load_resnet_encoder(net.encoder_depth, path)?;
    Ok(net)
}
