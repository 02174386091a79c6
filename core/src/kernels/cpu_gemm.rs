//! The one f32 matrix product the CPU kernels share: gemm's kernels on one thread (the
//! callers parallelise over samples or row blocks, so results do not depend on the pool).

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, each given with its row and column strides.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: [isize; 2],
    rhs: &[f32],
    rhs_strides: [isize; 2],
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: `dst` is m×n row-major and holds m·n elements; the caller's strides keep every
    // read of `lhs` (m×k) and `rhs` (k×n) inside their slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides[1],
            lhs_strides[0],
            rhs.as_ptr(),
            rhs_strides[1],
            rhs_strides[0],
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
