// MAD relation, step 1: the Gram matrices of the student and the teacher features.
//
// Inputs : xt   [2, D, NP] f32 (mad_transpose.wgsl: Sᵀ, Tᵀ, zero-padded to NP columns), read
//               as vec4s of four neighbouring samples
//          info [4] u32 = [N, D, K_SPLIT, NP]: each split sums K_SPLIT of the D terms
// Output : g    [SPLITS, 2, N, N] f32; g[p, 0]_ij = Σ_{k in split p} S_ik·S_jk, g[p, 1] the same
//          for T. With one split this is the Gram pair itself; otherwise mad_gram_reduce.wgsl
//          sums the splits (split-K keeps a small batch with long feature vectors busy).
// Layout : workgroup (x, y, z) computes rows 16y..16y+15 × columns 64x..64x+63 of side z % 2,
//          split z / 2: thread l owns column 64x + l and keeps its 16 row sums in four vec4
//          registers. Per feature k it reads one value (its column) and four vec4s shared by the
//          whole workgroup (the rows): no workgroup memory, no barrier.
//          G is symmetric: tiles entirely below the diagonal return at once, the others write
//          each element and its mirror (both computed in the same order, so bitwise equal).
//          Dispatch: (⌈N/64⌉, ⌈N/16⌉, 2·SPLITS).
// Workgroup size: 64 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> xt: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

const ROWS: u32 = 16u;
const COLS: u32 = 64u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let d = info[1];
    let k_split = info[2];
    let q = info[3] / 4u; // vec4s per padded row
    let i0 = wid.y * ROWS;
    let j0 = wid.x * COLS;
    if (j0 + COLS <= i0) {
        return; // entirely below the diagonal: mirrored by another tile
    }
    let side = wid.z % 2u;
    let split = wid.z / 2u;
    let k_begin = split * k_split;
    let k_end = min(d, k_begin + k_split);
    let j = j0 + lid; // < NP: the padding columns hold zeros
    let jq = j / 4u;
    let jr = j % 4u;
    let iq = i0 / 4u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k = k_begin; k < k_end; k++) {
        let row = (side * d + k) * q;
        let xj = xt[row + jq][jr];
        acc0 += xt[row + iq] * xj;
        acc1 += xt[row + iq + 1u] * xj;
        acc2 += xt[row + iq + 2u] * xj;
        acc3 += xt[row + iq + 3u] * xj;
    }

    if (j < n) {
        let out = wid.z * n * n;
        var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
        for (var r = 0u; r < ROWS; r++) {
            let i = i0 + r;
            if (i < n) {
                let v = acc[r / 4u][r % 4u];
                g[out + i * n + j] = v;
                g[out + j * n + i] = v;
            }
        }
    }
}
