//! The classification cross-entropy, per sample (the task loss, and the regularization head's
//! loss on the weak combinations).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Per-sample cross-entropy `−log softmax(z)[y]`, shape `[B]`.
pub fn cross_entropy_per_sample(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1);
    logp.gather(1, labels.reshape([b, 1])).reshape([b]).neg()
}
