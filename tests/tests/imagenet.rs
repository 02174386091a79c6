//! ImageNet initialisation of the segmentation encoders from torchvision `.pth` state dicts:
//! the key layout of torchvision's `resnet50` / `resnet18`, a PyTorch-saved reduced-width
//! ResNet-50 whose features the import must reproduce (1e-4), the depth stem summed over RGB,
//! and clear errors for files that do not fit.

use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use mmanet_core::model::esanet::{BlockKind, ContextKind, EsaNetArch, ResNetEncoder};
use mmanet_core::model::imagenet::load_resnet_encoder;
use mmanet_tests::{assert_close_matrix, flat_f64, golden, golden_dir};
use std::path::PathBuf;

fn arch(block: BlockKind, layers: [usize; 4], planes: [usize; 4]) -> EsaNetArch {
    EsaNetArch {
        block,
        layers,
        planes,
        decoder: [64, 32, 16],
        decoder_blocks: 1,
        context: ContextKind::Ppm,
    }
}

fn w8() -> EsaNetArch {
    arch(BlockKind::Bottleneck, [3, 4, 6, 3], [8, 16, 32, 64])
}

fn pth() -> PathBuf {
    golden_dir().join("torchvision/resnet50_w8.pth")
}

/// `key<TAB>[shape]` lines of a torchvision key list, without `fc.*` and the BN counters.
fn torchvision_keys(file: &str) -> Vec<(String, Vec<usize>)> {
    let text = std::fs::read_to_string(golden_dir().join("torchvision").join(file)).unwrap();
    let mut keys: Vec<(String, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, s) = l.split_once('\t').unwrap();
            let dims = s
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .map(|d| d.trim().parse().unwrap())
                .collect();
            (k.to_string(), dims)
        })
        .filter(|(k, _)| !k.starts_with("fc.") && !k.ends_with("num_batches_tracked"))
        .collect();
    keys.sort();
    keys
}

/// The encoder's tensors named as PyTorch names them.
fn encoder_keys(enc: &ResNetEncoder) -> Vec<(String, Vec<usize>)> {
    let mut keys: Vec<(String, Vec<usize>)> = enc
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn encoders_have_torchvision_keys_and_shapes() {
    let device = Device::flex();
    let r50 = ResNetEncoder::new(
        3,
        &arch(BlockKind::Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512]),
        &device,
    );
    assert_eq!(encoder_keys(&r50), torchvision_keys("resnet50_keys.txt"));
    let r18 = ResNetEncoder::new(
        3,
        &arch(BlockKind::Basic, [2, 2, 2, 2], [64, 128, 256, 512]),
        &device,
    );
    assert_eq!(encoder_keys(&r18), torchvision_keys("resnet18_keys.txt"));
}

fn tensor4(v: &serde_json::Value, device: &Device) -> Tensor<4> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = flat_f64(&v["data"]).into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn host(t: Tensor<4>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn imported_resnet50_gives_pytorchs_features() {
    let g = golden("torchvision/resnet50_w8.json");
    let device = Device::flex();
    let enc = load_resnet_encoder(ResNetEncoder::new(3, &w8(), &device), &pth()).unwrap();
    let shape = vec![1, 3, 64, 64];
    let data: Vec<f32> = flat_f64(&g["input"])
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(data, shape), &device);
    // on the plain device BatchNorm uses the imported running statistics (eval mode)
    let features = enc.features(x.clone());
    for (name, got) in ["stem", "layer1", "layer2", "layer3", "layer4"]
        .iter()
        .zip(features)
    {
        let want = tensor4(&g["outputs"][name], &device);
        assert_eq!(got.dims(), want.dims(), "{name}");
        assert_close_matrix(name, &host(got), &host(want), 1e-4);
    }
    // the depth encoder: the stem conv summed over RGB, applied to one channel
    let depth = load_resnet_encoder(ResNetEncoder::new(1, &w8(), &device), &pth()).unwrap();
    let channel0 = x.slice([0..1, 0..1, 0..64, 0..64]);
    let got = depth.conv1.forward(channel0);
    let want = tensor4(&g["depth_conv1_on_channel0"], &device);
    assert_close_matrix("depth conv1", &host(got), &host(want), 1e-4);
}

#[test]
fn files_that_do_not_fit_are_errors_naming_the_key() {
    let device = Device::flex();
    // a ResNet-50 file into a BasicBlock encoder
    let basic = ResNetEncoder::new(
        3,
        &arch(BlockKind::Basic, [3, 4, 6, 3], [8, 16, 32, 64]),
        &device,
    );
    let err = load_resnet_encoder(basic, &pth()).unwrap_err().to_string();
    assert!(
        err.contains("resnet50_w8.pth") && err.contains("layer1.0.conv1.weight"),
        "{err}"
    );
    // the right layout at the wrong width: a shape mismatch names the key
    let wide = ResNetEncoder::new(
        3,
        &arch(BlockKind::Bottleneck, [3, 4, 6, 3], [16, 32, 64, 128]),
        &device,
    );
    let err = load_resnet_encoder(wide, &pth()).unwrap_err().to_string();
    assert!(
        err.contains("resnet50_w8.pth") && err.contains(".weight") && err.contains("[8, 3, 7, 7]"),
        "{err}"
    );
    // no file, and a file that is not a state dict
    let err = load_resnet_encoder(
        ResNetEncoder::new(3, &w8(), &device),
        &golden_dir().join("nope.pth"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope.pth"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a pickle").unwrap();
    let err = load_resnet_encoder(ResNetEncoder::new(3, &w8(), &device), &junk)
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.pth"), "{err}");
}
