//! MMANet's losses: margin-aware distillation ([`mad`]) and modality-aware regularization
//! ([`mar`]), in plain tensor operations.

pub mod mad;
pub mod mar;
