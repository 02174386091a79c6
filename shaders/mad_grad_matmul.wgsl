// MAD backward, step 3: the student gradient dS = M·S with M = Ĝ + Ĝᵀ.
//
// Inputs : m    [N, NP] f32 (mad_grad_sym.wgsl: m[j][i] = M_ij, zero-padded), read as vec4s
//          s    [N, D] f32 student features
//          info [3] u32 = [N, D, NP]
// Output : ds   [N, D] f32 (every element written)
// Layout : workgroup (x, y) computes rows 16y..16y+15 × columns 64x..64x+63 of dS: thread l
//          owns column 64x + l and keeps its 16 row sums in four vec4 registers. Per sample j it
//          reads one value S[j][k] and four vec4s of M shared by the workgroup; no workgroup
//          memory, no barrier. Dispatch: (⌈D/64⌉, ⌈N/16⌉, 1).
// Workgroup size: 64 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> ds: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const ROWS: u32 = 16u;
const COLS: u32 = 64u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let d = info[1];
    let q = info[2] / 4u;
    let i0 = wid.y * ROWS;
    let iq = i0 / 4u;
    let k = wid.x * COLS + lid;
    let kc = min(k, d - 1u); // out-of-range lanes compute a duplicate column and write nothing

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var j = 0u; j < n; j++) {
        let v = s[j * d + kc];
        let row = j * q + iq;
        acc0 += m[row] * v;
        acc1 += m[row + 1u] * v;
        acc2 += m[row + 2u] * v;
        acc3 += m[row + 3u] * v;
    }

    if (k < d) {
        var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
        for (var r = 0u; r < ROWS; r++) {
            let i = i0 + r;
            if (i < n) {
                ds[i * d + k] = acc[r / 4u][r % 4u];
            }
        }
    }
}
