// MAD relation, step 1: the Gram matrices of the student and the teacher features, together.
//
// Inputs : s    [N, D] f32, row-major (student features, one sample or pixel per row)
//          t    [N, D] f32, row-major (teacher features)
//          info [2] u32 = [N, D]
// Output : g    [2, N, N] f32, g[0] = S·Sᵀ, g[1] = T·Tᵀ (every element written)
// Layout : workgroup (x, y) computes the 16×16 tile rows 16y.., columns 16x..; D is walked in
//          chunks of 16 through workgroup memory. G is symmetric, so only tiles with x ≥ y run
//          and each writes its mirror too. Dispatch: (⌈N/16⌉, ⌈N/16⌉, 1).
// Workgroup size: 16 × 16 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<storage, read_write> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const TILE: u32 = 16u;

var<workgroup> s_rows_i: array<f32, 256>;
var<workgroup> s_rows_j: array<f32, 256>;
var<workgroup> t_rows_i: array<f32, 256>;
var<workgroup> t_rows_j: array<f32, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    if (wid.x < wid.y) {
        return; // the mirror tile writes this one
    }
    let n = info[0];
    let d = info[1];
    let i0 = wid.y * TILE;
    let j0 = wid.x * TILE;
    let load_i = i0 + lid.y;
    let load_j = j0 + lid.y;
    var gs = 0.0;
    var gt = 0.0;
    for (var k0 = 0u; k0 < d; k0 += TILE) {
        let k = k0 + lid.x;
        var si = 0.0;
        var ti = 0.0;
        var sj = 0.0;
        var tj = 0.0;
        if (k < d && load_i < n) {
            si = s[load_i * d + k];
            ti = t[load_i * d + k];
        }
        if (k < d && load_j < n) {
            sj = s[load_j * d + k];
            tj = t[load_j * d + k];
        }
        let slot = lid.y * TILE + lid.x;
        s_rows_i[slot] = si;
        t_rows_i[slot] = ti;
        s_rows_j[slot] = sj;
        t_rows_j[slot] = tj;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk++) {
            gs += s_rows_i[lid.y * TILE + kk] * s_rows_j[lid.x * TILE + kk];
            gt += t_rows_i[lid.y * TILE + kk] * t_rows_j[lid.x * TILE + kk];
        }
        workgroupBarrier();
    }
    let i = i0 + lid.y;
    let j = j0 + lid.x;
    if (i < n && j < n) {
        let nn = n * n;
        g[i * n + j] = gs;
        g[nn + i * n + j] = gt;
        g[j * n + i] = gs;
        g[nn + j * n + i] = gt;
    }
}
