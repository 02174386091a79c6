// MAD relation, step 1b (only with split-K): sums the Gram splits of mad_gram.wgsl.
//
// Inputs : parts [SPLITS, 2·N·N] f32
//          info  [2] u32 = [2·N·N, SPLITS]
// Output : g     [2·N·N] f32, g[e] = Σ_p parts[p, e]
// Layout : one thread per element e = (wid.x + wid.y·65535)·256 + local index.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let len = info[0];
    let splits = info[1];
    let e = (wid.x + wid.y * 65535u) * 256u + lid;
    if (e >= len) {
        return;
    }
    var acc = 0.0;
    for (var p = 0u; p < splits; p++) {
        acc += parts[p * len + e];
    }
    g[e] = acc;
}
