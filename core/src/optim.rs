//! A stage's optimiser: SGD (Nesterov, momentum, no dampening, L2 weight decay, as PyTorch's
//! `SGD(nesterov=True)`) or Adam (ε = 1e-8 as PyTorch), and the same two with a momentum (Adam's
//! β₁) that a schedule changes between epochs while the optimiser keeps its state (PyTorch's
//! `OneCycleLR(cycle_momentum=True)`).
//!
//! SGD is [`Sgd`]: Burn's `Sgd` update with the same f32 operations, in one pass per parameter on
//! the CPU backend ([`crate::kernels`]) and as Burn's tensor-op composition elsewhere; its state
//! is recorded under the names Burn's `SgdState` uses, so checkpoints load either way. Adam is
//! Burn's. The cycled optimisers read their momentum from a shared [`MomentumHandle`] at every
//! step (Adam delegating to Burn's `Adam` built with it), so changing the momentum never moves
//! the state through a serialised record (which Burn materialises on its default device, a GPU a
//! browser page or a GPU-less machine may not have). A checkpoint's optimiser state is read back
//! with [`optimizer_from_bytes`], onto the training device.

use crate::config::{OptimizerKind, StageConfig};
use crate::kernels::SgdHyper;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    AdamConfig, AdamState, LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink,
    StateSource, join_path,
};
use burn::prelude::*;
use burn::store::RecordError;
use burn::tensor::Bytes;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The momentum (SGD) or β₁ (Adam) a cycled optimiser uses at its next step.
#[derive(Clone, Debug)]
pub struct MomentumHandle(Arc<AtomicU64>);

impl MomentumHandle {
    /// A handle holding `momentum`.
    pub fn new(momentum: f64) -> Self {
        MomentumHandle(Arc::new(AtomicU64::new(momentum.to_bits())))
    }

    /// Sets the momentum of the following steps.
    pub fn set(&self, momentum: f64) {
        self.0.store(momentum.to_bits(), Ordering::Relaxed);
    }

    /// The current momentum.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn weight_decay(cfg: &StageConfig) -> Option<WeightDecayConfig> {
    (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32))
}

fn adam_config(cfg: &StageConfig, beta_1: f64) -> AdamConfig {
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_beta_1(beta_1 as f32)
        .with_weight_decay(weight_decay(cfg))
}

/// The optimiser of a stage with its configured, fixed momentum (Adam: β₁ = 0.9).
pub fn make_optimizer(cfg: &StageConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Sgd => {
            ModuleOptimizer::from(Sgd::new(cfg, SgdMomentum::Fixed(cfg.momentum)))
        }
        OptimizerKind::Adam => ModuleOptimizer::from(CycledAdam {
            cfg: cfg.clone(),
            momentum: MomentumHandle::new(0.9),
        }),
    }
}

/// The optimiser of a stage whose momentum (Adam's β₁) is read from `momentum` at every step.
pub fn make_cycled_optimizer(cfg: &StageConfig, momentum: MomentumHandle) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Sgd => ModuleOptimizer::from(Sgd::new(cfg, SgdMomentum::Cycled(momentum))),
        OptimizerKind::Adam => ModuleOptimizer::from(CycledAdam {
            cfg: cfg.clone(),
            momentum,
        }),
    }
}

thread_local! {
    /// The device [`optimizer_from_bytes`] restores states onto; set only while it runs.
    static RESTORE_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The device a state is restored onto: the one [`optimizer_from_bytes`] set, else `fallback`.
fn restore_device(fallback: &Device) -> Device {
    RESTORE_DEVICE.with(|d| d.borrow().clone().unwrap_or_else(|| fallback.clone()))
}

/// `optim` with the state recorded in `bytes` (by `ModuleOptimizer::into_bytes`), its tensors
/// on `device`.
///
/// Burn's `ModuleOptimizer::from_bytes` alone materialises a record on Burn's default device —
/// the first GPU backend compiled in — and moves each state to its parameter's device at the
/// next step: resuming a CPU run would start the GPU runtime (slow, a panic on a machine
/// without a GPU driver, and a wgpu runtime the app can no longer set up itself). The
/// optimisers of this module read their states onto the device given here instead.
pub fn optimizer_from_bytes(
    optim: ModuleOptimizer,
    bytes: Bytes,
    device: &Device,
) -> Result<ModuleOptimizer, RecordError> {
    with_restore_device(device, || optim.from_bytes(bytes))
}

/// Runs `f` with the states of this module's optimisers restored onto `device` (its inner,
/// non-autodiff device).
fn with_restore_device<R>(device: &Device, f: impl FnOnce() -> R) -> R {
    /// Puts the previous restore device back, also when `f` panics.
    struct Reset(Option<Device>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            RESTORE_DEVICE.with(|d| *d.borrow_mut() = previous);
        }
    }
    let inner = device.clone().without_autodiff();
    let _reset = Reset(RESTORE_DEVICE.with(|d| d.replace(Some(inner))));
    f()
}

/// Where [`Sgd`] takes its momentum from.
#[derive(Clone, Debug)]
enum SgdMomentum {
    Fixed(f64),
    Cycled(MomentumHandle),
}

/// SGD with momentum, Nesterov's update and L2 weight decay, no dampening: Burn's `Sgd` (as the
/// stage's config builds it) computed in one pass per parameter on the CPU.
#[derive(Clone, Debug)]
struct Sgd {
    weight_decay: Option<f32>,
    nesterov: bool,
    momentum: SgdMomentum,
    /// Use the one-pass CPU update where it applies (off only to test the op composition; the
    /// page has no CPU kernels).
    #[cfg_attr(target_family = "wasm", allow(dead_code))]
    host_update: bool,
}

impl Sgd {
    fn new(cfg: &StageConfig, momentum: SgdMomentum) -> Self {
        Sgd {
            weight_decay: weight_decay(cfg).map(|w| w.penalty),
            nesterov: cfg.nesterov,
            momentum,
            host_update: true,
        }
    }
}

/// The state [`Sgd`] keeps per parameter: the velocity (none without momentum).
#[derive(Clone, Debug)]
pub struct SgdVelocity<const D: usize> {
    velocity: Option<Tensor<D>>,
}

/// Recorded as Burn's `SgdState { momentum: Some(MomentumState { velocity }) }` is
/// (`<param>.momentum.velocity`), so a checkpoint written with either optimiser resumes.
impl<const D: usize> RecordState for SgdVelocity<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            out.push_tensor(
                &join_path(prefix, "momentum"),
                "velocity",
                velocity.clone().into_data(),
            );
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let path = join_path(prefix, "momentum");
        let velocity = if src.has_under(&path) {
            Some(Tensor::from_data(
                src.take_tensor(&path, "velocity")?,
                &restore_device(device),
            ))
        } else {
            None
        };
        Some(SgdVelocity { velocity })
    }
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdVelocity<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let momentum = match &self.momentum {
            SgdMomentum::Fixed(m) => *m,
            SgdMomentum::Cycled(handle) => handle.get(),
        };
        let velocity = state.and_then(|s| s.velocity);
        // weight decay, as Burn's `WeightDecay`: p·λ + g
        let decayed = |tensor: &Tensor<D>, grad: Tensor<D>| match self.weight_decay {
            Some(penalty) => tensor.clone().mul_scalar(penalty).add(grad),
            None => grad,
        };
        if momentum <= 0.0 {
            // no momentum (Burn keeps an earlier velocity untouched)
            let grad = decayed(&tensor, grad);
            return (tensor - grad.mul_scalar(lr), Some(SgdVelocity { velocity }));
        }
        let hyper = SgdHyper {
            weight_decay: self.weight_decay,
            momentum: momentum as f32,
            nesterov: self.nesterov,
            lr: lr as f32,
        };
        #[cfg(not(target_family = "wasm"))]
        if self.host_update && crate::kernels::cpu_sgd::handles(&tensor, &grad) {
            let (tensor, velocity) =
                crate::kernels::cpu_sgd::momentum_step(tensor, grad, velocity, hyper);
            let velocity = Some(velocity);
            return (tensor, Some(SgdVelocity { velocity }));
        }
        // Burn's `Momentum` (dampening 0) and `Sgd`, op for op
        let grad = decayed(&tensor, grad);
        let velocity = match velocity {
            Some(v) => grad.clone().add(v.mul_scalar(hyper.momentum)),
            None => grad.clone(),
        };
        let grad = if hyper.nesterov {
            velocity.clone().mul_scalar(hyper.momentum).add(grad)
        } else {
            velocity.clone()
        };
        let velocity = Some(velocity);
        (tensor - grad.mul_scalar(lr), Some(SgdVelocity { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdVelocity {
            velocity: state.velocity.map(|v| v.to_device(device)),
        }
    }
}

/// Adam whose β₁ comes from a [`MomentumHandle`] (a fixed one for [`make_optimizer`]): Burn's
/// `Adam`, built with the handle's β₁ at every step.
#[derive(Clone)]
struct CycledAdam {
    cfg: StageConfig,
    momentum: MomentumHandle,
}

/// Burn's `AdamState`, recorded under the same names, restored onto the device
/// [`optimizer_from_bytes`] gives.
#[derive(Clone)]
pub struct RestorableAdamState<const D: usize>(AdamState<D>);

impl<const D: usize> RecordState for RestorableAdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        self.0.state_flatten(prefix, out);
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        AdamState::state_unflatten(prefix, src, &restore_device(device)).map(Self)
    }
}

impl Optimizer for CycledAdam {
    type State<const D: usize> = RestorableAdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (tensor, state) = adam_config(&self.cfg, self.momentum.get()).build().step(
            lr,
            tensor,
            grad,
            state.map(|s| s.0),
        );
        (tensor, state.map(RestorableAdamState))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        RestorableAdamState(<burn::optim::Adam as Optimizer>::to_device(state.0, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::GradientsParams;

    #[derive(Module, Debug)]
    struct Weights {
        w: Param<Tensor<1>>,
    }

    const C: [f32; 3] = [0.5, -1.0, 2.0];

    /// One step on `loss = Σ w·C` (gradient C) with learning rate `lr`.
    fn step(optim: &mut ModuleOptimizer, model: Weights, lr: f64) -> Weights {
        let device = model.w.val().device();
        let c = Tensor::<1>::from_floats(C, &device);
        let loss = (model.w.val() * c).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(lr, model, grads)
    }

    fn weights(model: &Weights) -> Vec<f32> {
        model.w.val().into_data().try_to_vec::<f32>().unwrap()
    }

    fn stage(optimizer: OptimizerKind) -> StageConfig {
        let text = format!(
            "epochs = 2\nlr = 0.1\noptimizer = \"{}\"\nweight_decay = 0.0\nnesterov = true\ndropout = {{ mode = \"uniform\" }}\n",
            match optimizer {
                OptimizerKind::Sgd => "sgd",
                OptimizerKind::Adam => "adam",
            }
        );
        toml::from_str(&text).unwrap()
    }

    fn start() -> Weights {
        let device = crate::device::cpu_device().device.autodiff();
        Weights {
            w: Param::from_tensor(Tensor::<1>::zeros([3], &device)),
        }
    }

    /// Flattens `state` and reads it back as a restore does, with Burn's default device (its
    /// first GPU backend in this build: named here, never used) as the device Burn passes.
    fn restore_on<T: RecordState>(state: &T, device: &Device) -> T {
        let mut sink = StateSink::default();
        state.state_flatten("p", &mut sink);
        let mut source = StateSource::new(sink.scalars.into_iter().collect());
        for (name, data) in sink.tensors {
            source.insert_tensor(name, data);
        }
        with_restore_device(device, || {
            T::state_unflatten("p", &mut source, &Device::default()).expect("a recorded state")
        })
    }

    #[test]
    fn restored_states_live_on_the_training_device() {
        let cpu = crate::device::cpu_device().device;
        let grad = Tensor::<1>::from_floats(C, &cpu);
        let sgd = SgdVelocity {
            velocity: Some(grad.clone()),
        };
        let velocity = restore_on(&sgd, &cpu.clone().autodiff()).velocity.unwrap();
        assert_eq!(velocity.device(), cpu);
        assert_eq!(velocity.into_data(), grad.clone().into_data());
        let adam = CycledAdam {
            cfg: stage(OptimizerKind::Adam),
            momentum: MomentumHandle::new(0.9),
        };
        let (_, state) = adam.step(0.01, grad.clone(), grad.clone(), None);
        let state = state.unwrap();
        let restored = restore_on(&state, &cpu);
        for (got, want) in [
            (&restored.0.momentum.moment_1, &state.0.momentum.moment_1),
            (&restored.0.momentum.moment_2, &state.0.momentum.moment_2),
        ] {
            assert_eq!(got.device(), cpu);
            assert_eq!(got.clone().into_data(), want.clone().into_data());
        }
        assert_eq!(restored.0.momentum.time, state.0.momentum.time);
        // the restore device is set only while a restore runs
        assert!(RESTORE_DEVICE.with(|d| d.borrow().is_none()));
    }

    #[test]
    fn a_restored_optimiser_continues_as_the_original() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let cfg = StageConfig {
                momentum: 0.9,
                ..stage(kind)
            };
            let mut original = make_optimizer(&cfg);
            let model = step(&mut original, start(), 0.05);
            let bytes = original.into_bytes().unwrap();
            let cpu = crate::device::cpu_device().device.autodiff();
            let mut restored = optimizer_from_bytes(make_optimizer(&cfg), bytes, &cpu).unwrap();
            let twin = model.clone();
            let a = step(&mut original, model, 0.05);
            let b = step(&mut restored, twin, 0.05);
            assert_eq!(weights(&a), weights(&b), "{kind:?}");
        }
    }

    #[test]
    fn sgd_keeps_its_velocity_when_the_momentum_changes() {
        let handle = MomentumHandle::new(0.95);
        let mut optim = make_cycled_optimizer(&stage(OptimizerKind::Sgd), handle.clone());
        let lr = 0.1;
        let model = step(&mut optim, start(), lr);
        handle.set(0.85);
        let model = step(&mut optim, model, lr);
        // Nesterov, no dampening: v₁ = g, update g + μ₁v₁; v₂ = μ₂v₁ + g, update g + μ₂v₂
        let (m1, m2) = (0.95f64, 0.85f64);
        let factor = (1.0 + m1) + (1.0 + m2 + m2 * m2);
        for (w, c) in weights(&model).iter().zip(C) {
            let want = -lr * f64::from(c) * factor;
            assert!((f64::from(*w) - want).abs() < 1e-6, "{w} vs {want}");
        }
    }

    #[test]
    fn adam_keeps_its_moments_when_beta_1_changes() {
        let handle = MomentumHandle::new(0.95);
        let mut optim = make_cycled_optimizer(&stage(OptimizerKind::Adam), handle.clone());
        let lr = 0.01;
        let model = step(&mut optim, start(), lr);
        handle.set(0.85);
        let model = step(&mut optim, model, lr);
        // constant gradient: v̂ = g² both steps; m̂₁ = g, m̂₂ = g·(β₂'(1−β₁) + 1 − β₂')/(1 − β₂'²)
        let (a, b) = (0.95f64, 0.85f64);
        let second = (b * (1.0 - a) + 1.0 - b) / (1.0 - b * b);
        for (w, c) in weights(&model).iter().zip(C) {
            let c = f64::from(c);
            let unit = c / (c.abs() + 1e-8);
            let want = -lr * unit * (1.0 + second);
            assert!((f64::from(*w) - want).abs() < 1e-6, "{w} vs {want}");
        }
    }

    #[test]
    fn the_fixed_optimisers_are_burns() {
        // a fixed SGD with momentum 0.9 takes the same two steps as a cycled one held at 0.9
        let cfg = stage(OptimizerKind::Sgd);
        let mut fixed = make_optimizer(&StageConfig {
            momentum: 0.9,
            ..cfg.clone()
        });
        let mut cycled = make_cycled_optimizer(&cfg, MomentumHandle::new(0.9));
        let (mut a, mut b) = (start(), start());
        for _ in 0..2 {
            a = step(&mut fixed, a, 0.05);
            b = step(&mut cycled, b, 0.05);
        }
        assert_eq!(weights(&a), weights(&b));
    }

    #[derive(Module, Debug)]
    struct Layers {
        small: Param<Tensor<2>>,
        large: Param<Tensor<1>>,
    }

    fn layer_values(model: &Layers) -> (Vec<f32>, Vec<f32>) {
        let host2 = model.small.val().into_data().try_to_vec::<f32>().unwrap();
        let host1 = model.large.val().into_data().try_to_vec::<f32>().unwrap();
        (host2, host1)
    }

    #[test]
    fn sgd_gives_the_bits_of_burns_sgd() {
        use burn::optim::SgdConfig;
        use burn::optim::momentum::MomentumConfig;
        use burn::tensor::Distribution;
        let device = crate::device::cpu_device().device.autodiff();
        device.seed(9);
        // a matrix, and a vector over several of the host update's parallel chunks
        let start = Layers {
            small: Param::from_tensor(Tensor::random([7, 5], Distribution::Default, &device)),
            large: Param::from_tensor(Tensor::random([70_001], Distribution::Default, &device)),
        };
        let targets = (
            Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device),
            Tensor::<1>::random([70_001], Distribution::Normal(0.0, 1.0), &device),
        );
        let run = |optim: &mut ModuleOptimizer| {
            let mut model = start.clone();
            for (i, lr) in [0.05, 0.05, 0.01, 0.003].into_iter().enumerate() {
                // a gradient that changes from step to step: d/dw of Σ (w − t)²·(i + 1)
                let loss = (model.small.val() - targets.0.clone()).powi_scalar(2).sum()
                    + (model.large.val() - targets.1.clone()).powi_scalar(2).sum()
                        * (i as f32 + 1.0);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
            layer_values(&model)
        };
        for nesterov in [true, false] {
            for decay in [0.0, 5e-4] {
                let cfg = StageConfig {
                    momentum: 0.9,
                    nesterov,
                    weight_decay: decay,
                    ..stage(OptimizerKind::Sgd)
                };
                let burns = run(&mut SgdConfig::new()
                    .with_momentum(Some(
                        MomentumConfig::new()
                            .with_momentum(0.9)
                            .with_dampening(0.0)
                            .with_nesterov(nesterov),
                    ))
                    .with_weight_decay(weight_decay(&cfg))
                    .init());
                let host = run(&mut make_optimizer(&cfg));
                let ops = run(&mut ModuleOptimizer::from(Sgd {
                    host_update: false,
                    ..Sgd::new(&cfg, SgdMomentum::Fixed(0.9))
                }));
                let what = format!("nesterov {nesterov}, weight decay {decay}");
                assert!(
                    host == burns,
                    "the host update differs from Burn's Sgd ({what})"
                );
                assert!(
                    ops == burns,
                    "the op composition differs from Burn's Sgd ({what})"
                );
            }
        }
    }

    #[test]
    fn sgd_velocity_is_recorded_under_burns_names() {
        use burn::optim::SgdState;
        use burn::optim::momentum::MomentumState;
        let device = crate::device::cpu_device().device;
        let velocity = Tensor::<1>::from_floats([1.0, -2.0], &device);
        let ours = SgdVelocity {
            velocity: Some(velocity.clone()),
        };
        let burns = SgdState::new(Some(MomentumState::new(velocity)));
        let names = |state: &dyn Fn(&mut StateSink)| {
            let mut sink = StateSink::default();
            state(&mut sink);
            sink.tensors
                .iter()
                .map(|(name, data)| (name.clone(), data.clone().try_to_vec::<f32>().unwrap()))
                .collect::<Vec<_>>()
        };
        let a = names(&|sink| ours.state_flatten("p1", sink));
        let b = names(&|sink| burns.state_flatten("p1", sink));
        assert_eq!(a, b);
        assert_eq!(a[0].0, "p1.momentum.velocity");
        // and back
        let mut source = StateSource::default();
        for (name, values) in a {
            source.insert_tensor(name, TensorData::new(values, [2]));
        }
        let back = SgdVelocity::<1>::state_unflatten("p1", &mut source, &device).unwrap();
        let host = back
            .velocity
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(host, vec![1.0, -2.0]);
        // no momentum: nothing recorded, nothing read back
        let none = SgdVelocity::<1> { velocity: None };
        assert!(names(&|sink| none.state_flatten("p1", sink)).is_empty());
    }
}
