//! The WGSL sources of MAD's kernels (this folder's `README.md` describes each), embedded as
//! strings. `mmanet-core` compiles them on the wgpu backend (`core/src/kernels/wgsl.rs`); each
//! file's header comment gives its inputs, outputs, layout and workgroup size.

/// `mad_entropy.wgsl`: the teacher's softmax entropy per row over its batch sum (the weights).
pub const MAD_ENTROPY: &str = include_str!("mad_entropy.wgsl");
/// `mad_rows.wgsl`: the relation loss of each row of a Gram block.
pub const MAD_ROWS: &str = include_str!("mad_rows.wgsl");
/// `mad_rows_common.wgsl`: the block norms shared by the two row kernels (appended to them).
pub const MAD_ROWS_COMMON: &str = include_str!("mad_rows_common.wgsl");
/// `mad_sum.wgsl`: the loss, the sum of the row losses.
pub const MAD_SUM: &str = include_str!("mad_sum.wgsl");
/// `mad_grad_rows.wgsl`: `Ĝ = ∂L/∂Gˢ` of each row of a Gram block.
pub const MAD_GRAD_ROWS: &str = include_str!("mad_grad_rows.wgsl");
/// `mad_grad_sym.wgsl`: `Ĝ + Ĝᵀ`.
pub const MAD_GRAD_SYM: &str = include_str!("mad_grad_sym.wgsl");
