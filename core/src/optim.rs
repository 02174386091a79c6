//! A stage's optimiser: SGD (Nesterov, momentum, no dampening, L2 weight decay, as PyTorch's
//! `SGD(nesterov=True)`) or Adam (ε = 1e-8 as PyTorch), and the same two with a momentum (Adam's
//! β₁) that a schedule changes between epochs while the optimiser keeps its state (PyTorch's
//! `OneCycleLR(cycle_momentum=True)`).
//!
//! The cycled optimisers read their momentum from a shared [`MomentumHandle`] at every step and
//! delegate the update to Burn's own `Sgd` / `Adam` built with it. Their state is Burn's
//! `SgdState` / `AdamState`, so checkpoints are the same as the fixed optimisers', and changing
//! the momentum never moves the state through a serialised record (which Burn materialises on
//! its default device, a GPU a browser page or a GPU-less machine may not have).

use crate::config::{OptimizerKind, StageConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamState, LearningRate, ModuleOptimizer, Optimizer, SgdConfig, SgdState,
};
use burn::prelude::*;
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

fn sgd_config(cfg: &StageConfig, momentum: f64) -> SgdConfig {
    let m = (momentum > 0.0).then(|| {
        MomentumConfig::new()
            .with_momentum(momentum)
            .with_dampening(0.0)
            .with_nesterov(cfg.nesterov)
    });
    SgdConfig::new()
        .with_momentum(m)
        .with_weight_decay(weight_decay(cfg))
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
        OptimizerKind::Sgd => sgd_config(cfg, cfg.momentum).init(),
        OptimizerKind::Adam => adam_config(cfg, 0.9).init(),
    }
}

/// The optimiser of a stage whose momentum (Adam's β₁) is read from `momentum` at every step.
pub fn make_cycled_optimizer(cfg: &StageConfig, momentum: MomentumHandle) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Sgd => ModuleOptimizer::from(CycledSgd {
            cfg: cfg.clone(),
            momentum,
        }),
        OptimizerKind::Adam => ModuleOptimizer::from(CycledAdam {
            cfg: cfg.clone(),
            momentum,
        }),
    }
}

/// SGD whose momentum comes from a [`MomentumHandle`].
#[derive(Clone)]
struct CycledSgd {
    cfg: StageConfig,
    momentum: MomentumHandle,
}

impl Optimizer for CycledSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        sgd_config(&self.cfg, self.momentum.get())
            .build()
            .step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <burn::optim::Sgd as Optimizer>::to_device(state, device)
    }
}

/// Adam whose β₁ comes from a [`MomentumHandle`].
#[derive(Clone)]
struct CycledAdam {
    cfg: StageConfig,
    momentum: MomentumHandle,
}

impl Optimizer for CycledAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        adam_config(&self.cfg, self.momentum.get())
            .build()
            .step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <burn::optim::Adam as Optimizer>::to_device(state, device)
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
}
