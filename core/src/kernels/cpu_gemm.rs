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
    gemm_f32_strided(
        m,
        n,
        k,
        dst,
        [n as isize, 1],
        accumulate,
        lhs,
        lhs_strides,
        rhs,
        rhs_strides,
    );
}

/// [`gemm_f32`] into a `dst` with its own row and column strides (non-negative).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_strides: [isize; 2],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: [isize; 2],
    rhs: &[f32],
    rhs_strides: [isize; 2],
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = (m - 1) * dst_strides[0] as usize + (n - 1) * dst_strides[1] as usize;
    assert!(dst.len() > last, "gemm_f32: the destination is too short");
    // SAFETY: every element of dst (m×n at the given strides) lies inside `dst` (checked
    // above); the caller's strides keep every read of `lhs` (m×k) and `rhs` (k×n) inside their
    // slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides[1],
            dst_strides[0],
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
