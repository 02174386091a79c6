// MAD backward, step 2: the student gradient dS = (Ĝ + Ĝᵀ)·S (G = S·Sᵀ).
//
// Inputs : gg   [N, N] f32 (mad_grad_rows.wgsl), s [N, D] f32 student features
//          info [2] u32 = [N, D]
// Output : ds   [N, D] f32 (every element written)
// Layout : workgroup (x, y) computes the 16×16 output tile rows 16y.., columns 16x..; the rows
//          of Ĝ + Ĝᵀ and of S are walked in chunks of 16 through workgroup memory.
//          Dispatch: (⌈D/16⌉, ⌈N/16⌉, 1).
// Workgroup size: 16 × 16 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> gg: array<f32>;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> ds: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const TILE: u32 = 16u;

var<workgroup> m_tile: array<f32, 256>;
var<workgroup> s_tile: array<f32, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = info[0];
    let d = info[1];
    let i = wid.y * TILE + lid.y;
    let k = wid.x * TILE + lid.x;
    var acc = 0.0;
    for (var j0 = 0u; j0 < n; j0 += TILE) {
        // m_tile[y][x] = Ĝ[i][j0+x] + Ĝ[j0+x][i];  s_tile[y][x] = S[j0+y][k]
        let jm = j0 + lid.x;
        var m = 0.0;
        if (i < n && jm < n) {
            m = gg[i * n + jm] + gg[jm * n + i];
        }
        let js = j0 + lid.y;
        var v = 0.0;
        if (js < n && k < d) {
            v = s[js * d + k];
        }
        m_tile[lid.y * TILE + lid.x] = m;
        s_tile[lid.y * TILE + lid.x] = v;
        workgroupBarrier();
        for (var jj = 0u; jj < TILE; jj++) {
            acc += m_tile[lid.y * TILE + jj] * s_tile[jj * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (i < n && k < d) {
        ds[i * d + k] = acc;
    }
}
