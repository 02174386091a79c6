// MAD backward, step 2: M = Ĝ + Ĝᵀ, padded, for the gradient matmul (G = S·Sᵀ is symmetric,
// so ∂L/∂S = (Ĝ + Ĝᵀ)·S).
//
// Inputs : gg   [N, N] f32 (mad_grad_rows.wgsl)
//          info [2] u32 = [N, NP] with NP = N rounded up to a multiple of 64
// Output : m    [N, NP] f32; m[j][i] = Ĝ[i][j] + Ĝ[j][i] for i < N, 0 in the padding
//          (every element written)
// Layout : one thread per output element e = (wid.x + wid.y·65535)·256 + local index.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> gg: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let np = info[1];
    let e = (wid.x + wid.y * 65535u) * 256u + lid;
    if (e >= n * np) {
        return;
    }
    let j = e / np;
    let i = e % np;
    var v = 0.0;
    if (i < n) {
        v = gg[i * n + j] + gg[j * n + i];
    }
    m[e] = v;
}
