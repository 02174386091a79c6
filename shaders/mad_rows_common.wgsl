// Shared by mad_rows.wgsl and mad_grad_rows.wgsl (appended to each when it is compiled), so
// the forward and backward passes compute the row norms in the same order, hence the same
// values. The including shader declares `gs` and `gt` (rows of the student and teacher Grams)
// and runs with 256 invocations per workgroup.

const WG: u32 = 256u;
// Square of the norm guard 1e-12: max(sqrt(x), 1e-12) = sqrt(max(x, 1e-24)).
const EPS_SQ: f32 = 1e-24;

var<workgroup> partial: array<vec4<f32>, 256>;
var<workgroup> block_rows: u32;

// The rows of this block (info[5]) as a workgroup-uniform value. Workgroups past it return at
// once, before any barrier; browsers' shader compilers (Tint) reject a barrier after a return
// that depends on a storage-buffer read, so the value goes through workgroupUniformLoad.
// Every invocation must call it.
fn rows_in_block(lid: u32) -> u32 {
    if (lid == 0u) {
        block_rows = info[5];
    }
    return workgroupUniformLoad(&block_rows);
}

// Tree-reduces `partial` into partial[0]; every invocation of the workgroup must call it.
fn reduce(lid: u32) {
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
}

// Σ G² over the Gram row starting at `row` (n columns, block 0 = columns < h):
// (student block 0, student block 1, teacher block 0, teacher block 1). Every invocation of
// the workgroup must call it; all get the same result.
fn block_sums_of_squares(row: u32, n: u32, h: u32, lid: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    for (var j = lid; j < n; j += WG) {
        let a = gs[row + j];
        let b = gt[row + j];
        if (j < h) {
            acc.x += a * a;
            acc.z += b * b;
        } else {
            acc.y += a * a;
            acc.w += b * b;
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    reduce(lid);
    let sums = partial[0];
    workgroupBarrier();
    return sums;
}
