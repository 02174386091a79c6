// MAD relation (after the Gram matrices, which Burn's matmul computes): row norms, relations,
// squared discrepancy and the weighted row sums, fused in one pass per row.
//
// Inputs : gs    [ROWS, N] f32, rows ROW0.. of the student Gram S·Sᵀ; gt the same of T·Tᵀ
//          w     [N] f32 sample weights (teacher entropy over its batch sum)
//          info  [6] u32 = [N, D, H, MODE, ROW0, ROWS]; columns j < H form block 0, j ≥ H block 1 (H = N for
//                the classification relation: one block; H = ⌊N/2⌋ for the dense variant); each
//                row is normalised on each block separately. MODE 0: weight w[j] (official column
//                weighting), MODE 1: weight w[i] (paper / dense row weighting). The Gram inputs
//                hold batch rows ROW0..ROW0+ROWS (all N columns): large batches go in blocks.
// Output : row_loss [N] f32, rows ROW0..ROW0+ROWS written: Σ_j (Aˢ_ij − Aᵗ_ij)²·weight, with A = G_ij / max(‖G_i,block(j)‖, 1e-12)
// Layout : one workgroup per block row wid.x + wid.y·65535 (rows past ROWS return at once);
//          its 256 threads stride over the columns and tree-reduce in workgroup memory.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> gs: array<f32>;
@group(0) @binding(1) var<storage, read_write> gt: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

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

    let sums = block_sums_of_squares(row, n, h, lid);
    let norms = sqrt(max(sums, vec4<f32>(EPS_SQ)));

    var loss = 0.0;
    for (var j = lid; j < n; j += WG) {
        let second = j >= h;
        let ns = select(norms.x, norms.y, second);
        let nt = select(norms.z, norms.w, second);
        let diff = gs[row + j] / ns - gt[row + j] / nt;
        let weight = select(w[j], w[i], mode == 1u);
        loss += diff * diff * weight;
    }
    partial[lid] = vec4<f32>(loss, 0.0, 0.0, 0.0);
    workgroupBarrier();
    reduce(lid);
    if (lid == 0u) {
        row_loss[i] = partial[0].x;
    }
}
