//! `mmanet bench predict`: samples per second of deployment networks by batch size.

use super::time_forward;
use anyhow::Result;
use burn::prelude::*;

/// Which deployment networks `bench predict` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictNets {
    /// the mfeat MLP (views 240, 76, 6; 10 classes)
    Mlp,
    /// ResNet-18-SE `small` (three 3×112×112 images, 2 classes)
    Small,
    /// ResNet-18-SE `paper` (three 3×112×112 images, 2 classes)
    Paper,
    /// all three
    All,
}

/// `mmanet bench predict`: samples per second of deployment networks (no regularization head)
/// at each batch size — host inputs uploaded, the forward pass, the softmax read back, as
/// `mmanet predict` does — with the throughput relative to batch 1 of the same network. With
/// `bundle`, its network alone.
pub fn bench_predict(
    device: &Device,
    nets: PredictNets,
    bundle: Option<&mmanet_core::bundle::Bundle>,
    batches: &[usize],
    warmup: usize,
    iters: usize,
) -> Result<()> {
    use mmanet_core::data::{ModalityKind, ModalitySpec};
    use mmanet_core::model::{ImagePreset, ModelConfig, MultimodalNet};
    let vector = |name: &str, dim| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Vector { dim },
    };
    let image = |name: &str| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Image {
            channels: 3,
            height: 112,
            width: 112,
        },
    };
    let faces = || vec![image("rgb"), image("depth"), image("ir")];
    let preset = |p| ModelConfig {
        image_preset: p,
        ..ModelConfig::default()
    };
    let mut cases: Vec<(String, Vec<ModalitySpec>, usize, ModelConfig)> = Vec::new();
    if let Some(b) = bundle {
        let h = &b.header;
        anyhow::ensure!(
            h.task == mmanet_core::config::TaskKind::Classification,
            "bench predict times classifiers; this bundle segments"
        );
        cases.push((
            format!("{} on {}", h.method, h.dataset),
            h.modalities.clone(),
            h.class_names.len(),
            h.config.model.clone(),
        ));
    } else {
        if matches!(nets, PredictNets::Mlp | PredictNets::All) {
            let mlp = vec![vector("pix", 240), vector("fou", 76), vector("mor", 6)];
            cases.push(("mfeat MLP".into(), mlp, 10, ModelConfig::default()));
        }
        if matches!(nets, PredictNets::Small | PredictNets::All) {
            cases.push((
                "ResNet-18-SE small".into(),
                faces(),
                2,
                preset(ImagePreset::Small),
            ));
        }
        if matches!(nets, PredictNets::Paper | PredictNets::All) {
            cases.push((
                "ResNet-18-SE paper".into(),
                faces(),
                2,
                preset(ImagePreset::Paper),
            ));
        }
    }
    device.seed(0);
    println!(
        "| network | parameters | batch | median ms per batch | samples/s | throughput vs batch 1 |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, modalities, classes, model) in cases {
        let net = match bundle {
            Some(b) => b.classifier(device)?,
            None => MultimodalNet::new(&modalities, classes, &model, false, device)?,
        };
        let params = net.num_trainable_params();
        let mut per_sample_at_1 = None;
        for &batch in batches {
            let result = time_forward(&net, &modalities, classes, batch, device, warmup, iters);
            match result {
                Ok(secs) => {
                    let per_sample = secs / batch as f64;
                    if batch == 1 {
                        per_sample_at_1 = Some(per_sample);
                    }
                    let ratio = per_sample_at_1
                        .map_or("—".to_string(), |b1| format!("{:.1}×", b1 / per_sample));
                    println!(
                        "| {name} | {params} | {batch} | {:.3} | {:.0} | {ratio} |",
                        secs * 1e3,
                        1.0 / per_sample
                    );
                }
                Err(e) => println!("| {name} | {params} | {batch} | failed: {e} | — | — |"),
            }
        }
    }
    Ok(())
}
