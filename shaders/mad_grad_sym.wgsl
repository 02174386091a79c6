// MAD backward, step 2: M = Ĝ + Ĝᵀ. The student Gram G = S·Sᵀ uses S on both sides, so the
// student gradient is ∂L/∂S = M·S (that product is Burn's matmul).
//
// Inputs : gg   [N, N] f32 (mad_grad_rows.wgsl)
//          info [1] u32 = [N]
// Output : m    [N, N] f32, m[i][j] = Ĝ[i][j] + Ĝ[j][i] (every element written)
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
    let e = (wid.x + wid.y * 65535u) * 256u + lid;
    if (e >= n * n) {
        return;
    }
    let i = e / n;
    let j = e % n;
    m[e] = gg[e] + gg[j * n + i];
}
