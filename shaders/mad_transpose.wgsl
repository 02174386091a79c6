// MAD relation, step 0: the student and teacher features transposed and padded, so the Gram
// kernel reads four neighbouring samples of one feature as one vec4.
//
// Inputs : s    [N, D] f32, t [N, D] f32 (row-major)
//          info [3] u32 = [N, D, NP] with NP = N rounded up to a multiple of 64
// Output : xt   [2, D, NP] f32; xt[0] = Sᵀ, xt[1] = Tᵀ, zero in the padding columns N..NP
//          (every element written)
// Layout : one thread per output element e = (wid.x + wid.y·65535)·256 + local index.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<storage, read_write> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> xt: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = info[0];
    let d = info[1];
    let np = info[2];
    let e = (wid.x + wid.y * 65535u) * 256u + lid;
    let per_side = np * d;
    if (e >= 2u * per_side) {
        return;
    }
    let side = e / per_side;
    let r = e % per_side;
    let k = r / np;
    let i = r % np;
    var v = 0.0;
    if (i < n) {
        if (side == 0u) {
            v = s[i * d + k];
        } else {
            v = t[i * d + k];
        }
    }
    xt[e] = v;
}
