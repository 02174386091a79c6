//! MMANet's losses: margin-aware distillation ([`mad`]) and modality-aware regularization
//! ([`mar`]), in plain tensor operations, and the per-sample cross-entropy ([`ce`]).

pub mod ce;
pub mod mad;
pub mod mar;
