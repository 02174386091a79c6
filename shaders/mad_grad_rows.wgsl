// MAD backward, step 1: the gradient of the loss with respect to the student Gram matrix, Ĝ.
//
// Inputs : gs    [ROWS, N] f32 rows ROW0.. of the student Gram, gt the same of the teacher
//          Gram, w [N] f32 weights,
//          grad  [1] f32 upstream gradient of the loss,
//          info  [6] u32 = [N, D, H, MODE, ROW0, ROWS] (as mad_rows.wgsl)
// Output : gg    [ROWS, N] f32, Ĝ_ij = ∂L/∂Gˢ_ij for the block's rows (every element written)
// Math   : with n = ‖Gˢ_i,block(j)‖ guarded by 1e-12, Aˢ = Gˢ/n, P_ij = 2·grad·weight_ij·(Aˢ_ij − Aᵗ_ij)
//          and c_i,b = Σ_{j∈b} P_ij·Aˢ_ij:  Ĝ_ij = (P_ij − c_i,b·Aˢ_ij) / n when the norm is not
//          clamped, P_ij / 1e-12 when it is (the guard then passes no gradient to the norm).
//          The teacher side and the weights are constants. The norms are recomputed exactly as
//          mad_rows.wgsl computes them (same reduction order, so the same values).
// Layout : one workgroup per block row wid.x + wid.y·65535; 256 threads stride over columns:
//          pass 1 the block norms, pass 2 the c_i,b, pass 3 writes the row of Ĝ.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> gs: array<f32>;
@group(0) @binding(1) var<storage, read_write> gt: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> gg: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

// WG, EPS_SQ, `partial`, reduce() and block_sums_of_squares() come from mad_rows_common.wgsl.

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let h = info[2];
    let mode = info[3];
    let local = wid.x + wid.y * 65535u;
    if (local >= rows_in_block(lid)) {
        return;
    }
    let i = info[4] + local; // the sample's row in the batch
    let row = local * n;     // its row in this block of the Grams

    let sq = block_sums_of_squares(row, n, h, lid);
    let norms = sqrt(max(sq, vec4<f32>(EPS_SQ)));
    let scale = 2.0 * grad[0];

    var c = vec2<f32>(0.0);
    for (var j = lid; j < n; j += WG) {
        let second = j >= h;
        let ns = select(norms.x, norms.y, second);
        let nt = select(norms.z, norms.w, second);
        let a = gs[row + j] / ns;
        let p = scale * select(w[j], w[i], mode == 1u) * (a - gt[row + j] / nt);
        if (second) {
            c.y += p * a;
        } else {
            c.x += p * a;
        }
    }
    partial[lid] = vec4<f32>(c, 0.0, 0.0);
    workgroupBarrier();
    reduce(lid);
    let c_blocks = partial[0].xy;

    for (var j = lid; j < n; j += WG) {
        let second = j >= h;
        let ns = select(norms.x, norms.y, second);
        let nt = select(norms.z, norms.w, second);
        let clamped = select(sq.x, sq.y, second) < EPS_SQ;
        let a = gs[row + j] / ns;
        let p = scale * select(w[j], w[i], mode == 1u) * (a - gt[row + j] / nt);
        let cb = select(c_blocks.x, c_blocks.y, second);
        gg[row + j] = select((p - cb * a) / ns, p / ns, clamped);
    }
}
