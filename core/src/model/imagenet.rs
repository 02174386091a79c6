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
//! Where the file is found ([`WeightsSearch`]): the path the config gives (relative to the
//! config file), then its file name in the folder `$MMANET_WEIGHTS` names, then in PyTorch's
//! hub cache (`$TORCH_HOME/hub/checkpoints`, by default `~/.cache/torch/hub/checkpoints`),
//! where torchvision itself puts the file it downloads. The program never downloads.
//!
//! Native targets only: a browser page has no file to read.

use super::esanet::{EsaNet, ResNetEncoder};
use crate::error::{CoreError, Result};
use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore};
use std::path::{Path, PathBuf};

/// Where torchvision's ImageNet weights are downloaded from (append the file name).
pub const TORCHVISION_MODELS_URL: &str = "https://download.pytorch.org/models/";

/// The folders searched, by file name, for weights the config's path does not reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightsSearch {
    /// `$MMANET_WEIGHTS`.
    pub weights_dir: Option<PathBuf>,
    /// PyTorch's hub checkpoints folder.
    pub torch_hub: Option<PathBuf>,
}

impl WeightsSearch {
    /// The folders this process's environment names: `$MMANET_WEIGHTS`, and PyTorch's hub
    /// cache (`$TORCH_HOME/hub/checkpoints`, else `$XDG_CACHE_HOME/torch/hub/checkpoints`,
    /// else `$HOME/.cache/torch/hub/checkpoints`).
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let torch_home = var("TORCH_HOME").or_else(|| {
            var("XDG_CACHE_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".cache")))
                .map(|c| c.join("torch"))
        });
        WeightsSearch {
            weights_dir: var("MMANET_WEIGHTS"),
            torch_hub: torch_home.map(|t| t.join("hub").join("checkpoints")),
        }
    }

    /// The places `configured` is looked for, in order: the path itself, then its file name in
    /// each folder of the search.
    pub fn candidates(&self, configured: &Path) -> Vec<PathBuf> {
        let mut out = vec![configured.to_path_buf()];
        if let Some(name) = configured.file_name() {
            for dir in [&self.weights_dir, &self.torch_hub].into_iter().flatten() {
                let p = dir.join(name);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// The first candidate that is a file, or an error (under `seg_model.imagenet`) that names
    /// every place looked in, where to download the file and how to train without it.
    pub fn locate(&self, configured: &Path) -> Result<PathBuf> {
        let candidates = self.candidates(configured);
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        let name = configured
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let looked = candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let hash = name
            .strip_suffix(".pth")
            .and_then(|stem| stem.rsplit_once('-'))
            .map(|(_, h)| h)
            .filter(|h| h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()));
        let check = hash.map_or(String::new(), |h| {
            format!(" (torchvision names files by their hash: its SHA-256 begins with {h})")
        });
        Err(CoreError::config(
            "seg_model.imagenet",
            format!(
                "the ImageNet weights `{name}` are not there; looked in {looked}. The official \
                 recipe starts both encoders from them: download {TORCHVISION_MODELS_URL}{name}{check} \
                 into one of those places, or set MMANET_WEIGHTS to the folder that holds it; \
                 `--set seg_model.imagenet=\"\"` trains from scratch on purpose"
            ),
        ))
    }
}

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
