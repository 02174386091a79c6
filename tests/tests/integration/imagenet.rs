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
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
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

/// The shipped real-data configs start from torchvision's ImageNet ResNet-50, as the official
/// code does; `--set seg_model.imagenet=""` trains from scratch on purpose.
#[test]
fn real_data_configs_ship_imagenet_initialisation() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::config::ExperimentConfig;
    let configs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for name in ["nyuv2.toml", "cityscapes.toml"] {
        let cfg = ExperimentConfig::load(&configs.join(name)).unwrap();
        let w = cfg.seg_model.imagenet.as_ref().expect(name);
        assert_eq!(
            w.file_name().unwrap(),
            "resnet50-19c8e357.pth",
            "{name}: the weights of the `paper` preset's ResNet-50"
        );
        assert!(w.starts_with(&configs), "{name}: next to the config first");
        let scratch = ExperimentConfig::load_with_overrides(
            &configs.join(name),
            &["seg_model.imagenet=\"\"".into()],
        )
        .unwrap();
        assert_eq!(scratch.seg_model.imagenet, None, "{name}: from scratch");
    }
}

/// Weights are found at the configured path, else by name in `$MMANET_WEIGHTS`, else in
/// PyTorch's hub cache; when nowhere, the error names every place, the download address and
/// the way to train without them.
#[test]
fn imagenet_weights_are_looked_for_in_the_documented_places() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::model::imagenet::WeightsSearch;
    let dir = tempfile::tempdir().unwrap();
    let (cfg_dir, weights, hub) = (
        dir.path().join("configs"),
        dir.path().join("weights"),
        dir.path().join("hub"),
    );
    for d in [&cfg_dir, &weights, &hub] {
        std::fs::create_dir_all(d).unwrap();
    }
    let search = WeightsSearch {
        weights_dir: Some(weights.clone()),
        torch_hub: Some(hub.clone()),
    };
    let configured = cfg_dir.join("resnet50-19c8e357.pth");
    let err = search.locate(&configured).unwrap_err().to_string();
    for needle in [
        "seg_model.imagenet",
        &configured.display().to_string(),
        &weights.join("resnet50-19c8e357.pth").display().to_string(),
        &hub.join("resnet50-19c8e357.pth").display().to_string(),
        "https://download.pytorch.org/models/resnet50-19c8e357.pth",
        "begins with 19c8e357",
        "MMANET_WEIGHTS",
        "seg_model.imagenet=\"\"",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    // the hub cache, then $MMANET_WEIGHTS before it, then the configured path before both
    std::fs::write(hub.join("resnet50-19c8e357.pth"), b"h").unwrap();
    assert_eq!(
        search.locate(&configured).unwrap(),
        hub.join("resnet50-19c8e357.pth")
    );
    std::fs::write(weights.join("resnet50-19c8e357.pth"), b"w").unwrap();
    assert_eq!(
        search.locate(&configured).unwrap(),
        weights.join("resnet50-19c8e357.pth")
    );
    std::fs::write(&configured, b"c").unwrap();
    assert_eq!(search.locate(&configured).unwrap(), configured);
    // a file found by name loads as the configured one would
    let by_name = WeightsSearch {
        weights_dir: Some(pth().parent().unwrap().to_path_buf()),
        torch_hub: None,
    };
    let found = by_name.locate(&dir.path().join("resnet50_w8.pth")).unwrap();
    let device = Device::flex();
    load_resnet_encoder(ResNetEncoder::new(3, &w8(), &device), &found).unwrap();
}

/// A segmentation experiment whose ImageNet weights are missing stops before anything trains,
/// with the error that says where they were looked for.
#[test]
fn missing_imagenet_weights_stop_the_experiment_before_training() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::experiment::{RunMode, SilentProgress, prepare_seg_data, run_experiment};
    let dir = tempfile::tempdir().unwrap();
    let cfg = mmanet_tests::scenes_demo_config(
        dir.path(),
        &[
            "data.scenes.scenes=12",
            "data.scenes.height=32",
            "data.scenes.width=64",
            "seg_model.preset=\"tiny\"",
            "seg_model.imagenet=\"no-such-weights-0123abcd.pth\"",
        ],
    );
    let data = prepare_seg_data(&cfg).unwrap();
    let err = run_experiment(
        &cfg,
        &data,
        &Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("no-such-weights-0123abcd.pth") && err.contains("looked in"),
        "{err}"
    );
    let run = dir.path().join(&cfg.name);
    assert!(
        !run.join("teacher").exists(),
        "nothing trained: {:?}",
        std::fs::read_dir(&run).map(|d| d.count())
    );
}
