// MAD backward, step 1: the gradient of the loss with respect to the student Gram matrix, Ĝ.
//
// Inputs : g     [2, N, N] f32 (mad_gram.wgsl), w [N] f32 weights,
//          sumsq [N, 4] f32 (mad_rows.wgsl), grad [1] f32 upstream gradient of the loss,
//          info  [4] u32 = [N, D, H, MODE] (as mad_rows.wgsl)
// Output : gg    [N, N] f32, Ĝ_ij = ∂L/∂Gˢ_ij (every element written)
// Math   : with n = ‖Gˢ_i,block(j)‖ guarded by 1e-12, Aˢ = Gˢ/n, P_ij = 2·grad·weight_ij·(Aˢ_ij − Aᵗ_ij)
//          and c_i,b = Σ_{j∈b} P_ij·Aˢ_ij:  Ĝ_ij = (P_ij − c_i,b·Aˢ_ij) / n when the norm is not
//          clamped, P_ij / 1e-12 when it is (the guard then passes no gradient to the norm).
//          The teacher side and the weights are constants.
// Layout : one workgroup per row i = wid.x + wid.y·65535; 256 threads stride over columns.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> sumsq: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> gg: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const WG: u32 = 256u;
const EPS_SQ: f32 = 1e-24;

var<workgroup> partial: array<vec2<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let h = info[2];
    let mode = info[3];
    let i = wid.x + wid.y * 65535u;
    if (i >= n) {
        return;
    }
    let row = i * n;
    let teacher = n * n + row;
    let sq = vec4<f32>(sumsq[i * 4u], sumsq[i * 4u + 1u], sumsq[i * 4u + 2u], sumsq[i * 4u + 3u]);
    let norms = sqrt(max(sq, vec4<f32>(EPS_SQ)));
    let scale = 2.0 * grad[0];

    var acc = vec2<f32>(0.0);
    for (var j = lid; j < n; j += WG) {
        let second = j >= h;
        let ns = select(norms.x, norms.y, second);
        let nt = select(norms.z, norms.w, second);
        let a = g[row + j] / ns;
        let p = scale * select(w[j], w[i], mode == 1u) * (a - g[teacher + j] / nt);
        if (second) {
            acc.y += p * a;
        } else {
            acc.x += p * a;
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let c = partial[0];

    for (var j = lid; j < n; j += WG) {
        let second = j >= h;
        let ns = select(norms.x, norms.y, second);
        let nt = select(norms.z, norms.w, second);
        let clamped = select(sq.x, sq.y, second) < EPS_SQ;
        let a = g[row + j] / ns;
        let p = scale * select(w[j], w[i], mode == 1u) * (a - g[teacher + j] / nt);
        let cb = select(c.x, c.y, second);
        gg[row + j] = select((p - cb * a) / ns, p / ns, clamped);
    }
}
