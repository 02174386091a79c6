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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
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

/// `forward_present` skips the encoders of modalities no sample sees: the same logits and
/// features as the full forward pass, for vector encoders and image encoders (fused as maps,
/// and pooled to vectors next to a vector modality), and the same gradient for what is used.
#[test]
fn skipping_absent_encoders_changes_no_output() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex().autodiff();
    device.seed(3);
    let image = |name: &str, size| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Image {
            channels: 3,
            height: size,
            width: size,
        },
    };
    let vector = |name: &str, dim| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Vector { dim },
    };
    let nets = [
        vec![vector("a", 5), vector("b", 3), vector("c", 4)],
        vec![image("rgb", 20), image("depth", 20)],
        vec![image("rgb", 18), vector("v", 6)],
    ];
    for mods in nets {
        let n = mods.len();
        let net = MultimodalNet::new(&mods, 3, &ModelConfig::default(), true, &device).unwrap();
        let inputs: Vec<ModalityInput> = mods
            .iter()
            .map(|m| match m.kind {
                ModalityKind::Vector { dim } => ModalityInput::Vector(Tensor::random(
                    [4, dim],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    &device,
                )),
                ModalityKind::Image {
                    channels,
                    height,
                    width,
                } => ModalityInput::Image(Tensor::random(
                    [4, channels, height, width],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    &device,
                )),
            })
            .collect();
        // the first call draws every parameter (an encoder not drawn yet always runs)
        let full = vec![true; n];
        let _ = net.forward_present(
            &inputs,
            mask_tensor(&[ModalitySet::full(n); 4], n, &device),
            &full,
        );
        let only_first = [ModalitySet::single(0); 4];
        let present: Vec<bool> = (0..n).map(|m| m == 0).collect();
        let mask = mask_tensor(&only_first, n, &device);
        let a = net.forward(&inputs, mask.clone());
        let b = net.forward_present(&inputs, mask, &present);
        let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(
            host(a.logits.clone()),
            host(b.logits.clone()),
            "{mods:?}: logits"
        );
        assert_eq!(host(a.features), host(b.features), "{mods:?}: features");
        assert_eq!(
            host(a.reg_logits.unwrap()),
            host(b.reg_logits.unwrap()),
            "{mods:?}: regularization head"
        );
        let ga = a.logits.sum().backward();
        let gb = b.logits.sum().backward();
        let mut grads_a = burn::optim::GradientsParams::from_grads(ga, &net);
        let mut grads_b = burn::optim::GradientsParams::from_grads(gb, &net);
        assert!(
            grads_b.len() < grads_a.len(),
            "{mods:?}: nothing was skipped"
        );
        // every gradient the skipping pass has is the full pass's, bit for bit
        struct SameGrads<'a> {
            a: &'a mut burn::optim::GradientsParams,
            b: &'a mut burn::optim::GradientsParams,
            compared: usize,
        }
        impl burn::module::ModuleVisitor for SameGrads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                if let Some(b) = self.b.remove::<D>(param.id) {
                    let a = self
                        .a
                        .remove::<D>(param.id)
                        .expect("the full pass has it too");
                    assert_eq!(a.into_data(), b.into_data(), "gradient of {:?}", param.id);
                    self.compared += 1;
                }
            }
        }
        let mut same = SameGrads {
            a: &mut grads_a,
            b: &mut grads_b,
            compared: 0,
        };
        net.visit(&mut same);
        assert!(same.compared > 0);
        assert!(
            grads_b.len() < grads_a.len(),
            "{mods:?}: nothing was skipped"
        );
    }
}
