// MAD relation, last step: the loss, the sum of the per-row losses.
//
// Inputs : x    [L] f32 (mad_rows.wgsl's row_loss)
//          info [1] u32 = [L]
// Output : out  [1] f32 = Σ x
// Layout : a single workgroup strides over x and tree-reduces in workgroup memory.
// Workgroup size: 256 × 1 × 1.
// Every binding is declared read_write: cubecl may place small buffers in one shared page, and
// wgpu rejects a dispatch that binds one buffer both read-only and read-write.
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;

const WG: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32) {
    let len = info[0];
    var acc = 0.0;
    for (var k = lid; k < len; k += WG) {
        acc += x[k];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[0] = partial[0];
    }
}
