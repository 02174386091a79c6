//! The same forward pass on the CPU backend and on wgpu (a software Vulkan adapter in CI:
//! Debian's `mesa-vulkan-drivers`) agrees within 1e-4, and the MAD/MAR golden cases pass on wgpu.

use burn::prelude::*;
use mmanet_core::data::{ModalityKind, ModalitySpec};
use mmanet_core::device::{DeviceChoice, select_device};
use mmanet_core::experiment::block_on;
use mmanet_core::modality::{ModalitySet, all_combinations};
use mmanet_core::model::{ImagePreset, ModalityInput, ModelConfig, MultimodalNet, mask_tensor};
use mmanet_core::train::{module_from_bytes, module_to_bytes, module_to_bytes_async};

fn inputs(specs: &[ModalitySpec], b: usize, device: &Device) -> Vec<ModalityInput> {
    specs
        .iter()
        .enumerate()
        .map(|(m, s)| {
            let n = b * s.kind.numel();
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * 31 + m * 7) as f32 * 0.013).sin())
                .collect();
            let mut shape = vec![b];
            shape.extend(s.kind.shape());
            let data = TensorData::new(v, shape);
            match s.kind {
                ModalityKind::Vector { .. } => {
                    ModalityInput::Vector(Tensor::from_data(data, device))
                }
                ModalityKind::Image { .. } => ModalityInput::Image(Tensor::from_data(data, device)),
            }
        })
        .collect()
}

fn compare(specs: Vec<ModalitySpec>, cfg: ModelConfig, wgpu: &Device) {
    let cpu = Device::flex();
    // seeded, built and its weights drawn (serialising draws them) under the generator's lock
    let (net_cpu, bytes) = {
        let _rng = mmanet_core::rng::burn_rng();
        cpu.seed(11);
        let net = MultimodalNet::new(&specs, 3, &cfg, false, &cpu).unwrap();
        let bytes = module_to_bytes(&net).unwrap();
        (net, bytes)
    };
    let net_gpu = module_from_bytes(
        MultimodalNet::new(&specs, 3, &cfg, false, wgpu).unwrap(),
        bytes,
    )
    .unwrap();
    // the browser's asynchronous serialisation writes the same bytes as the blocking one, for
    // a model on the CPU, on wgpu, and on wgpu with autodiff (as in training)
    let net_gpu_training = module_from_bytes(
        MultimodalNet::new(&specs, 3, &cfg, false, &wgpu.clone().autodiff()).unwrap(),
        module_to_bytes(&net_cpu).unwrap(),
    )
    .unwrap();
    for net in [&net_cpu, &net_gpu, &net_gpu_training] {
        let sync = module_to_bytes(net).unwrap();
        let read_async = block_on(module_to_bytes_async(net)).unwrap();
        assert!(sync == read_async, "module_to_bytes_async differs");
    }
    let b = 5;
    let n = specs.len();
    // one sample per combination (cycling), so masking is exercised too
    let sets: Vec<ModalitySet> = all_combinations(n).into_iter().cycle().take(b).collect();
    let a = net_cpu
        .valid()
        .forward(&inputs(&specs, b, &cpu), mask_tensor(&sets, n, &cpu));
    let g = net_gpu
        .valid()
        .forward(&inputs(&specs, b, wgpu), mask_tensor(&sets, n, wgpu));
    for (what, x, y) in [
        ("logits", a.logits, g.logits),
        ("features", a.features, g.features),
    ] {
        let x: Vec<f32> = x.into_data().try_into_vec_as().unwrap();
        let y: Vec<f32> = y.into_data().try_into_vec_as().unwrap();
        assert_eq!(x.len(), y.len());
        for (i, (p, q)) in x.iter().zip(&y).enumerate() {
            assert!(p.is_finite() && q.is_finite(), "{what}[{i}] not finite");
            assert!(
                (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                "{what}[{i}]: cpu {p} vs wgpu {q}"
            );
        }
    }
}

#[test]
fn cpu_and_wgpu_forward_agree() {
    // (shaders are autotuned at the minimal level: tests/cubecl.toml)
    let selected = select_device(DeviceChoice::Wgpu).expect(
        "a wgpu adapter is required (install Debian's mesa-vulkan-drivers for a software one)",
    );
    eprintln!("wgpu device: {}", selected.description);
    // wgpu is initialised once per process: asking again (the app probes the adapter before
    // training on it) gives the same device, not an error
    let again = select_device(DeviceChoice::Wgpu).expect("a second selection");
    assert_eq!(again.description, selected.description);
    assert_eq!(again.device, selected.device);
    let auto = select_device(DeviceChoice::Auto).expect("auto after wgpu");
    assert!(
        !auto.description.contains("no GPU adapter"),
        "{}",
        auto.description
    );
    let vec_specs = vec![
        ModalitySpec {
            name: "a".into(),
            kind: ModalityKind::Vector { dim: 9 },
        },
        ModalitySpec {
            name: "b".into(),
            kind: ModalityKind::Vector { dim: 4 },
        },
        ModalitySpec {
            name: "c".into(),
            kind: ModalityKind::Vector { dim: 6 },
        },
    ];
    compare(vec_specs, ModelConfig::default(), &selected.device);
    let img_specs = vec![
        ModalitySpec {
            name: "rgb".into(),
            kind: ModalityKind::Image {
                channels: 3,
                height: 16,
                width: 16,
            },
        },
        ModalitySpec {
            name: "depth".into(),
            kind: ModalityKind::Image {
                channels: 1,
                height: 16,
                width: 16,
            },
        },
    ];
    let cfg = ModelConfig {
        image_preset: ImagePreset::Tiny,
        ..ModelConfig::default()
    };
    compare(img_specs, cfg, &selected.device);
    // MAD and MAR golden cases on the wgpu device too.
    let n = mmanet_tests::golden_checks::check_all(&selected.device);
    assert!(n >= 8, "ran {n} golden cases on wgpu");
}
