//! A direct 3×3 convolution (stride 1, padding 1: the "same" layers of ResNet and ESANet) on
//! x86-64 with AVX2 and FMA, for [`super::cpu_conv`]'s forward pass and input gradient.
//!
//! im2col + GEMM writes every input value nine times into a `C_in·9 × H·W` matrix, which gemm
//! then packs again before its microkernel reads it. Here each sample's input planes are copied
//! once into planes one pixel wider on every side (`(H + 2) × (W + 2)`, zeros around), and the
//! output is computed on the same padded grid, flattened: output position `p = oy·(W + 2) + ox`
//! reads the padded input at `p + ky·(W + 2) + kx` for tap `(ky, kx)`, so every tap is a fixed
//! offset and eight neighbouring outputs are one unaligned vector load, whatever the row. A
//! tile of 4 output channels × 16 positions stays in eight AVX registers across all input
//! channels and taps (4 broadcast weights and 2 loads per 8 FMAs); the two columns per row
//! that fall outside the output are computed and dropped when the tile is copied out. (4 × 24
//! positions, twelve accumulators, left LLVM too few registers: it spilled to the stack and was
//! slower than gemm; 4 × 16 and 3 × 24 were level, the 4 × 16 tile spills nothing.)
//!
//! Each output is one FMA chain over the input channels, then the taps in row-major order, so
//! results do not depend on the thread count or the tiling; they differ from the im2col path's
//! in the last bits (another order of the same sum).

use super::cpu_gemm::gemm_f32_strided;

/// Output channels in one register tile.
const CO_BLOCK: usize = 4;
/// AVX vectors of output positions in one register tile.
const VECS: usize = 2;
/// Flattened output positions in one register tile.
const POS_BLOCK: usize = 8 * VECS;
/// Floats read past the last padded plane by the last tile (its positions beyond the output):
/// at most `POS_BLOCK` after the last plane's end.
const TAIL: usize = POS_BLOCK + 8;

/// A 3×3 convolution with padding 1 and stride 1 ("same") or 2 of one sample, `[C_in, H, W]` →
/// `[C_out, Ho, Wo]`, with its weights rearranged for the register tile.
///
/// Stride 2 reads the padded input through its four phases (even and odd rows × even and odd
/// columns), each a plane of `⌈(H + 2) / 2⌉ × ⌈(W + 2) / 2⌉`: tap `(ky, kx)` of output `(oy, ox)`
/// reads phase `(ky mod 2, kx mod 2)` at `(oy + ky / 2, ox + kx / 2)`, so on the phases' grid
/// every tap is again one fixed offset, and the padded input is copied once (im2col of a
/// stride-2 layer writes it 9/4 times, gathered).
pub(crate) struct Conv3x3 {
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    stride: usize,
    ho: usize,
    wo: usize,
    /// Columns of a row of the grid the taps read and the outputs are computed on.
    grid_w: usize,
    /// Floats per input channel on that grid (one padded plane, or its four phases).
    channel_len: usize,
    /// Each tap's offset on the grid, in the order of `packed`.
    offsets: [usize; 9],
    /// `[⌈C_out / CO_BLOCK⌉][C_in][9][CO_BLOCK]`: per block of output channels, per input
    /// channel and tap, the block's channels' weights side by side (zeros past `C_out`).
    packed: Vec<f32>,
}

impl Conv3x3 {
    /// The convolution of `c_in` planes of `h × w` into `c_out` with padding 1 and `stride` 1
    /// or 2, with the weight of output channel `o`, input channel `i` and tap `t = ky·3 + kx`
    /// given by `weight(o, i, t)`. `None` where the CPU lacks AVX2 or FMA (the caller keeps
    /// im2col + GEMM).
    pub(crate) fn new(
        c_in: usize,
        c_out: usize,
        [h, w]: [usize; 2],
        stride: usize,
        weight: impl Fn(usize, usize, usize) -> f32,
    ) -> Option<Self> {
        if !has_avx2_fma()
            || c_in == 0
            || c_out == 0
            || h == 0
            || w == 0
            || !(1..=2).contains(&stride)
        {
            return None;
        }
        let blocks = c_out.div_ceil(CO_BLOCK);
        let mut packed = vec![0f32; blocks * c_in * 9 * CO_BLOCK];
        for (blk, block) in packed.chunks_exact_mut(c_in * 9 * CO_BLOCK).enumerate() {
            for (i, channel) in block.chunks_exact_mut(9 * CO_BLOCK).enumerate() {
                for (t, tap) in channel.chunks_exact_mut(CO_BLOCK).enumerate() {
                    for (lane, v) in tap.iter_mut().enumerate() {
                        let o = blk * CO_BLOCK + lane;
                        if o < c_out {
                            *v = weight(o, i, t);
                        }
                    }
                }
            }
        }
        let (ho, wo) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
        let (grid_w, channel_len, offsets) = if stride == 1 {
            let wp = w + 2;
            let offsets = core::array::from_fn(|t| (t / 3) * wp + t % 3);
            (wp, (h + 2) * wp, offsets)
        } else {
            let (hq, wq) = ((h + 3) / 2, (w + 3) / 2);
            let phase = hq * wq;
            let offsets = core::array::from_fn(|t| {
                let (ky, kx) = (t / 3, t % 3);
                ((ky % 2) * 2 + kx % 2) * phase + (ky / 2) * wq + kx / 2
            });
            (wq, 4 * phase, offsets)
        };
        Some(Self {
            c_in,
            c_out,
            h,
            w,
            stride,
            ho,
            wo,
            grid_w,
            channel_len,
            offsets,
            packed,
        })
    }

    /// Flattened output positions computed per channel: `Ho` rows of the grid, rounded up to a
    /// tile.
    fn plane_out(&self) -> usize {
        (self.ho * self.grid_w).div_ceil(POS_BLOCK) * POS_BLOCK
    }

    /// Floats of scratch memory [`Conv3x3::run`] needs.
    pub(crate) fn scratch_len(&self) -> usize {
        self.c_in * self.channel_len
            + TAIL
            + self.c_out.div_ceil(CO_BLOCK) * CO_BLOCK * self.plane_out()
    }

    /// `y = conv(x)` for one sample: `x` is `[C_in, H, W]`, `y` `[C_out, Ho, Wo]`
    /// (overwritten), `scratch` at least [`Conv3x3::scratch_len`] floats of any content.
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        let (h, w, grid_w) = (self.h, self.w, self.grid_w);
        let (ho, wo, plane_out) = (self.ho, self.wo, self.plane_out());
        assert!(x.len() >= self.c_in * h * w && y.len() >= self.c_out * ho * wo);
        let (xp, yp) =
            scratch[..self.scratch_len()].split_at_mut(self.c_in * self.channel_len + TAIL);
        if self.stride == 1 {
            pad_planes(self.c_in, h, w, x, xp);
        } else {
            phase_planes(self.c_in, h, w, x, xp);
        }
        let blocks = self.c_out.div_ceil(CO_BLOCK);
        let block_len = self.c_in * 9 * CO_BLOCK;
        for p0 in (0..plane_out).step_by(POS_BLOCK) {
            for blk in 0..blocks {
                let weights = &self.packed[blk * block_len..(blk + 1) * block_len];
                let out = &mut yp[blk * CO_BLOCK * plane_out..];
                // SAFETY: `has_avx2_fma()` held when `self` was made. The tile reads the grid at
                // `p0 + offset + 0..POS_BLOCK` for each channel: at most `(C_in − 1)·channel_len
                // + max offset + plane_out − 1`. Stride 1: max offset = 2·wp + 2, plane_out <
                // h·wp + POS_BLOCK, channel_len = (h + 2)·wp; stride 2: max offset = 3·phase +
                // wq + 1, plane_out < ho·wq + POS_BLOCK with ho ≤ hq − 1, channel_len =
                // 4·phase. Either way under `C_in·channel_len + POS_BLOCK + 1`, inside `xp`
                // (`TAIL` past the planes). It writes `out[o·plane_out + p0 .. + POS_BLOCK]`
                // for o < CO_BLOCK, inside `yp`.
                unsafe {
                    register_tile(
                        weights.as_ptr(),
                        xp.as_ptr().add(p0),
                        self.channel_len,
                        self.c_in,
                        &self.offsets,
                        out.as_mut_ptr().add(p0),
                        plane_out,
                    );
                }
            }
        }
        // the output's columns of the grid
        for (o, dst) in y[..self.c_out * ho * wo]
            .chunks_exact_mut(ho * wo)
            .enumerate()
        {
            let src = &yp[o * plane_out..];
            for (r, row) in dst.chunks_exact_mut(wo).enumerate() {
                row.copy_from_slice(&src[r * grid_w..r * grid_w + wo]);
            }
        }
    }
}

/// Copies `c` planes of `h × w` from `x` into `dst` as the four phases of their padded planes
/// (`[c][row parity][column parity][⌈(h + 2) / 2⌉][⌈(w + 2) / 2⌉]`, zeros in the padding), and
/// zeroes the rest of `dst`.
fn phase_planes(c: usize, h: usize, w: usize, x: &[f32], dst: &mut [f32]) {
    let (hq, wq) = ((h + 3) / 2, (w + 3) / 2);
    let phase = hq * wq;
    for (ci, phases) in dst[..c * 4 * phase].chunks_exact_mut(4 * phase).enumerate() {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for (ph, out) in phases.chunks_exact_mut(phase).enumerate() {
            let (rp, cp) = (ph / 2, ph % 2);
            for (r, row) in out.chunks_exact_mut(wq).enumerate() {
                // padded row 2r + rp is input row 2r + rp − 1
                let Some(iy) = (2 * r + rp).checked_sub(1).filter(|&iy| iy < h) else {
                    row.fill(0.0);
                    continue;
                };
                let src = &plane[iy * w..(iy + 1) * w];
                // padded column 2c + cp is input column 2c + cp − 1
                for (col, v) in row.iter_mut().enumerate() {
                    *v = (2 * col + cp)
                        .checked_sub(1)
                        .and_then(|ix| src.get(ix))
                        .copied()
                        .unwrap_or(0.0);
                }
            }
        }
    }
    dst[c * 4 * phase..].fill(0.0);
}

/// Copies `c` planes of `h × w` from `x` into `dst` as planes of `(h + 2) × (w + 2)`, zeros
/// around them, and zeroes the rest of `dst` (at least `c·(h + 2)·(w + 2)` floats).
fn pad_planes(c: usize, h: usize, w: usize, x: &[f32], dst: &mut [f32]) {
    let wp = w + 2;
    let plane = (h + 2) * wp;
    for (ci, padded) in dst[..c * plane].chunks_exact_mut(plane).enumerate() {
        padded[..wp + 1].fill(0.0);
        for r in 0..h {
            let row = &mut padded[(r + 1) * wp + 1..(r + 2) * wp + 1];
            row[..w].copy_from_slice(&x[(ci * h + r) * w..(ci * h + r + 1) * w]);
            row[w..].fill(0.0);
        }
        padded[(h + 1) * wp + 1..].fill(0.0);
    }
    dst[c * plane..].fill(0.0);
}

/// Floats of scratch memory [`add_weight_grad`] needs.
pub(crate) fn weight_grad_scratch_len(c_in: usize, c_out: usize, h: usize, w: usize) -> usize {
    c_in * (h + 2) * (w + 2) + 2 + c_out * h * (w + 2)
}

/// Adds one sample's weight gradient of a 3×3 "same" convolution (stride 1, padding 1) to `dw`
/// (`[C_out, C_in, 3, 3]`): `x` is the sample's input `[C_in, H, W]`, `grad` its output
/// gradient `[C_out, H, W]`, `scratch` at least [`weight_grad_scratch_len`] floats of any
/// content. With the input on padded planes and the gradient on the same `H × (W + 2)` grid as
/// [`Conv3x3`]'s output (zeros in the two extra columns), tap `t`'s gradient is one product,
/// `dW[:, :, t] += G · X_tᵀ`, where `X_t` is every padded plane read from the tap's offset —
/// nine products over the whole plane and no im2col matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_weight_grad(
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    x: &[f32],
    grad: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
) {
    let wp = w + 2;
    let (plane_in, positions) = ((h + 2) * wp, h * wp);
    let (xp, gp) =
        scratch[..weight_grad_scratch_len(c_in, c_out, h, w)].split_at_mut(c_in * plane_in + 2);
    pad_planes(c_in, h, w, x, xp);
    for (o, dst) in gp.chunks_exact_mut(positions).enumerate() {
        for (r, row) in dst.chunks_exact_mut(wp).enumerate() {
            row[..w].copy_from_slice(&grad[(o * h + r) * w..(o * h + r + 1) * w]);
            row[w..].fill(0.0);
        }
    }
    for t in 0..9 {
        let offset = (t / 3) * wp + t % 3;
        // G (C_out × positions) · X_tᵀ (positions × C_in, X_t[p][i] = xp[i·plane_in + offset
        // + p]: at most c_in·plane_in + 1, inside xp) into dW[o][i][t]
        gemm_f32_strided(
            c_out,
            c_in,
            positions,
            &mut dw[t..],
            [(c_in * 9) as isize, 9],
            true,
            gp,
            [positions as isize, 1],
            &xp[offset..],
            [1, plane_in as isize],
        );
    }
}

/// Whether this CPU runs the AVX2 + FMA tile.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One register tile: `y[o·y_stride + p] = Σ_i Σ_t w[i][t][o] · x[i·channel_len + offsets[t] +
/// p]` for `o < CO_BLOCK` and `p < POS_BLOCK`.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `w` holds `c_in·9·CO_BLOCK` floats, `x` is readable up to
/// `(c_in − 1)·channel_len + max(offsets) + POS_BLOCK`, and `y` writable at `o·y_stride + p`
/// for `o < CO_BLOCK`, `p < POS_BLOCK`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn register_tile(
    w: *const f32,
    x: *const f32,
    channel_len: usize,
    c_in: usize,
    offsets: &[usize; 9],
    y: *mut f32,
    y_stride: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); VECS]; CO_BLOCK];
        for i in 0..c_in {
            let xi = x.add(i * channel_len);
            let wi = w.add(i * 9 * CO_BLOCK);
            for (t, &off) in offsets.iter().enumerate() {
                let xs = xi.add(off);
                let v: [__m256; VECS] = core::array::from_fn(|j| _mm256_loadu_ps(xs.add(8 * j)));
                let wt = wi.add(t * CO_BLOCK);
                for (o, acc_o) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*wt.add(o));
                    for (a, xv) in acc_o.iter_mut().zip(v) {
                        *a = _mm256_fmadd_ps(wv, xv, *a);
                    }
                }
            }
        }
        for (o, acc_o) in acc.iter().enumerate() {
            let yo = y.add(o * y_stride);
            for (j, a) in acc_o.iter().enumerate() {
                _mm256_storeu_ps(yo.add(8 * j), *a);
            }
        }
    }
}

/// Never called: [`Conv3x3::new`] returns `None` off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn register_tile(
    _w: *const f32,
    _x: *const f32,
    _channel_len: usize,
    _c_in: usize,
    _offsets: &[usize; 9],
    _y: *mut f32,
    _y_stride: usize,
) {
    unreachable!("the AVX2 tile runs on x86-64 only")
}
