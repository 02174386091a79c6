// MAD sample weights: the softmax entropy of each row of the teacher's logits (or of its
// per-pixel map), divided by the batch sum.
//
// Inputs : z    [N, K] f32 logits, row-major
//          info [2] u32 = [N, K]
// Output : w    [N] f32, w_i = H_i / max(Σ_n H_n, 1e-12) with H_i = −Σ_k p_ik·log p_ik
// Numerics: H_i = Σ_k p_ik·(lse_i − z_ik) with lse_i = m_i + log Σ_k exp(z_ik − m_i), m_i = max_k z_ik,
//          so no log(0) is ever taken: an underflowed p contributes 0·(finite) = 0.
// Layout : a single workgroup; thread l handles rows l, l+256, … in both passes, so the division
//          reads only what the same thread wrote.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

const WG: u32 = 256u;
const SUM_EPS: f32 = 1e-12;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let k = info[1];
    var total = 0.0;
    for (var i = lid; i < n; i += WG) {
        let row = i * k;
        var m = z[row];
        for (var c = 1u; c < k; c++) {
            m = max(m, z[row + c]);
        }
        var se = 0.0;
        for (var c = 0u; c < k; c++) {
            se += exp(z[row + c] - m);
        }
        let lse = m + log(se);
        var h = 0.0;
        for (var c = 0u; c < k; c++) {
            let logp = z[row + c] - lse;
            h -= exp(logp) * logp;
        }
        w[i] = h;
        total += h;
    }
    partial[lid] = total;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let denom = max(partial[0], SUM_EPS);
    for (var i = lid; i < n; i += WG) {
        w[i] = w[i] / denom;
    }
}
