//! The network: the `paper` preset matches the official parameter counts and shapes; masking
//! zeroes encoder outputs; checkpoints round-trip.

use burn::prelude::*;
use mmanet_core::data::{ModalityKind, ModalitySpec};
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::{ImagePreset, ModalityInput, ModelConfig, MultimodalNet, mask_tensor};
use mmanet_core::train::{module_from_bytes, module_to_bytes};
use mmanet_tests::golden;

fn surf_modalities(size: usize) -> Vec<ModalitySpec> {
    ["rgb", "depth", "ir"]
        .iter()
        .map(|n| ModalitySpec {
            name: n.to_string(),
            kind: ModalityKind::Image {
                channels: 3,
                height: size,
                width: size,
            },
        })
        .collect()
}

fn paper() -> ModelConfig {
    ModelConfig {
        image_preset: ImagePreset::Paper,
        ..ModelConfig::default()
    }
}

#[test]
fn paper_preset_parameter_counts_match_the_official_networks() {
    let probe = golden("arch_probe_cls.json");
    let device = Device::flex();
    let teacher = MultimodalNet::new(&surf_modalities(112), 2, &paper(), false, &device).unwrap();
    assert_eq!(
        teacher.num_trainable_params() as u64,
        probe["teacher"]["n_params"].as_u64().unwrap(),
        "teacher (SURF_Multi)"
    );
    let student = MultimodalNet::new(&surf_modalities(112), 2, &paper(), true, &device).unwrap();
    assert_eq!(
        student.num_trainable_params() as u64,
        probe["student"]["n_params"].as_u64().unwrap(),
        "student (SURF_MMANet)"
    );
    assert_eq!(
        student.num_reg_head_params() as u64,
        probe["student"]["n_params_reg_head"].as_u64().unwrap(),
        "regularization head"
    );
}

#[test]
fn paper_preset_output_shapes_match_the_spec() {
    let probe = golden("arch_probe_cls.json");
    let device = Device::flex();
    device.seed(0);
    let net = MultimodalNet::new(&surf_modalities(112), 2, &paper(), true, &device)
        .unwrap()
        .valid();
    let b = 2;
    let inputs: Vec<ModalityInput> = (0..3)
        .map(|_| {
            ModalityInput::Image(Tensor::random(
                [b, 3, 112, 112],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            ))
        })
        .collect();
    let mask = mask_tensor(&[ModalitySet::full(3); 2], 3, &device);
    let out = net.forward(&inputs, mask);
    let l4: Vec<usize> = probe["student"]["layer4"].as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(out.logits.dims(), [b, 2]);
    assert_eq!(
        out.features.dims(),
        [b, l4.iter().product::<usize>()],
        "layer4 512×4×4 flattened"
    );
    assert_eq!(out.reg_logits.unwrap().dims(), [b, 2]);
    match net.encode_fuse(&inputs, mask_tensor(&[ModalitySet::full(3); 2], 3, &device)) {
        mmanet_core::model::Fused::Map(x) => assert_eq!(x.dims(), [b, 384, 14, 14]),
        other => panic!("expected a fused map, got {other:?}"),
    }
}

fn vector_net(device: &Device) -> MultimodalNet {
    let mods = vec![
        ModalitySpec {
            name: "a".into(),
            kind: ModalityKind::Vector { dim: 5 },
        },
        ModalitySpec {
            name: "b".into(),
            kind: ModalityKind::Vector { dim: 3 },
        },
    ];
    MultimodalNet::new(&mods, 4, &ModelConfig::default(), false, device).unwrap()
}

fn vector_inputs(device: &Device, scale_b: f32) -> Vec<ModalityInput> {
    let a: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..12).map(|i| scale_b * (i as f32 * 0.91).cos()).collect();
    vec![
        ModalityInput::Vector(Tensor::from_data(TensorData::new(a, [4, 5]), device)),
        ModalityInput::Vector(Tensor::from_data(TensorData::new(b, [4, 3]), device)),
    ]
}

#[test]
fn masking_zeroes_encoder_outputs_not_inputs() {
    let device = Device::flex();
    device.seed(1);
    let net = vector_net(&device).valid();
    let only_a = mask_tensor(&[ModalitySet::single(0); 4], 2, &device);
    // With modality b masked, its input values cannot change the output.
    let x1 = net
        .forward(&vector_inputs(&device, 1.0), only_a.clone())
        .logits;
    let x2 = net.forward(&vector_inputs(&device, 50.0), only_a).logits;
    let d = (x1 - x2).abs().max().into_scalar::<f32>();
    assert_eq!(d, 0.0, "masked modality leaked into the output");
    // With both present it does.
    let both = mask_tensor(&[ModalitySet::full(2); 4], 2, &device);
    let y1 = net
        .forward(&vector_inputs(&device, 1.0), both.clone())
        .logits;
    let y2 = net.forward(&vector_inputs(&device, 50.0), both).logits;
    assert!((y1 - y2).abs().max().into_scalar::<f32>() > 1e-3);
}

#[test]
fn model_bytes_round_trip() {
    let device = Device::flex();
    device.seed(2);
    let net = vector_net(&device);
    let bytes = module_to_bytes(&net).unwrap();
    device.seed(99);
    let other = module_from_bytes(vector_net(&device), bytes).unwrap();
    let mask = mask_tensor(&[ModalitySet::full(2); 4], 2, &device);
    let a = net
        .valid()
        .forward(&vector_inputs(&device, 1.0), mask.clone())
        .logits;
    let b = other
        .valid()
        .forward(&vector_inputs(&device, 1.0), mask)
        .logits;
    assert_eq!(a.into_data(), b.into_data());
}
