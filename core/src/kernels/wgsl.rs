//! The `CubeBackend` implementation of [`MadKernelOps`]: buffers, launches and dispatch sizes
//! for the WGSL sources in `shaders/`. Each launch is one compiled pipeline, cached by cubecl
//! under the shader's name.

use super::MadKernelOps;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::{Handle, KernelArguments};
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::{DType, Shape};
use core::sync::atomic::Ordering;

/// A WGSL source from `shaders/`, named for the compilation cache.
struct Shader {
    name: &'static str,
    text: &'static str,
}

impl KernelSource for Shader {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(self.text)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.name)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

macro_rules! shader {
    ($name:literal) => {
        Shader {
            name: $name,
            text: include_str!(concat!("../../../shaders/", $name, ".wgsl")),
        }
    };
}

/// Workgroup size of the per-row and per-element kernels; it must equal their `@workgroup_size`.
const ROW_1D: u32 = 256;
/// WebGPU's smallest guaranteed `maxComputeWorkgroupsPerDimension`.
const MAX_GROUPS: usize = 65535;

fn f32_input(tensor: CubeTensor, what: &str) -> CubeTensor {
    assert_eq!(
        tensor.dtype,
        DType::F32,
        "the MAD WGSL kernels take f32 {what}, got {:?}",
        tensor.dtype
    );
    into_contiguous(tensor)
}

fn info(like: &CubeTensor, values: &[usize]) -> Handle {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| {
            u32::try_from(v)
                .expect("MAD kernel sizes fit in u32")
                .to_le_bytes()
        })
        .collect();
    like.client.create_from_slice(&bytes)
}

/// A new f32 output or scratch tensor; filled with NaN when [`super::poison_outputs`] is on.
fn empty(like: &CubeTensor, shape: Shape) -> CubeTensor {
    let len = shape.num_elements();
    let handle = if super::POISON_OUTPUTS.load(Ordering::Relaxed) {
        let nan: Vec<u8> = (0..len).flat_map(|_| f32::NAN.to_le_bytes()).collect();
        like.client.create_from_slice(&nan)
    } else {
        like.client.empty(len * core::mem::size_of::<f32>())
    };
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        DType::F32,
    )
}

fn launch(like: &CubeTensor, shader: Shader, dim: CubeDim, count: CubeCount, buffers: Vec<Handle>) {
    let bindings = buffers.into_iter().map(Handle::binding).collect();
    like.client.launch(
        Box::new(SourceKernel::new(shader, dim)),
        count,
        KernelArguments::new().with_buffers(bindings),
    );
}

/// Output tile of the Gram and gradient-matmul kernels: 16 rows × 64 columns (64 threads).
const TILE_ROWS: usize = 16;
const TILE_COLS: usize = 64;
/// Split-K aims for at least this many Gram workgroups, and gives each split at least
/// `MIN_SPLIT_LEN` terms of the dot products.
const TARGET_GROUPS: usize = 64;
const MIN_SPLIT_LEN: usize = 256;

/// `n` rounded up to the 64-column tile: the padded width of the transposed features and of
/// the symmetrised gradient.
fn padded(n: usize) -> usize {
    n.div_ceil(TILE_COLS) * TILE_COLS
}

/// The dispatch of a 16 × 64 tiled kernel over a `rows × cols` output.
fn tiled(rows: usize, cols: usize, z: usize) -> CubeCount {
    CubeCount::Static(
        cols.div_ceil(TILE_COLS) as u32,
        rows.div_ceil(TILE_ROWS) as u32,
        z as u32,
    )
}

/// One workgroup per row, spread over (x, y) to stay under the per-dimension limit.
fn per_row(rows: usize) -> CubeCount {
    let x = rows.min(MAX_GROUPS) as u32;
    let y = rows.div_ceil(MAX_GROUPS) as u32;
    CubeCount::Static(x.max(1), y.max(1), 1)
}

/// One 256-thread workgroup per 256 elements, spread over (x, y).
fn per_element(len: usize) -> CubeCount {
    per_row(len.div_ceil(ROW_1D as usize))
}

fn tile_dim() -> CubeDim {
    CubeDim::new_1d(TILE_COLS as u32)
}

/// How many splits of D the Gram kernel uses and how long each is.
fn split_k(n: usize, d: usize) -> (usize, usize) {
    let tiles = n.div_ceil(TILE_COLS) * n.div_ceil(TILE_ROWS);
    let wanted = TARGET_GROUPS.div_ceil(2 * tiles);
    let splits = wanted.min(d.div_ceil(MIN_SPLIT_LEN)).max(1);
    let len = d.div_ceil(splits).max(1);
    (d.div_ceil(len).max(1), len)
}

/// The Gram pair `[2, N, N]` of the student and the teacher.
fn gram_pair(student: &CubeTensor, teacher: &CubeTensor) -> CubeTensor {
    let [n, d] = student.meta.shape().dims::<2>();
    let (splits, split_len) = split_k(n, d);
    let np = padded(n);
    let transposed = empty(student, Shape::new([2, d, np]));
    launch(
        student,
        shader!("mad_transpose"),
        CubeDim::new_1d(ROW_1D),
        per_element(2 * np * d),
        vec![
            student.handle.clone(),
            teacher.handle.clone(),
            transposed.handle.clone(),
            info(student, &[n, d, np]),
        ],
    );
    let parts = empty(student, Shape::new([splits * 2, n, n]));
    launch(
        student,
        shader!("mad_gram"),
        tile_dim(),
        tiled(n, n, 2 * splits),
        vec![
            transposed.handle.clone(),
            parts.handle.clone(),
            info(student, &[n, d, split_len, np]),
        ],
    );
    if splits == 1 {
        return parts;
    }
    let len = 2 * n * n;
    let gram = empty(student, Shape::new([2, n, n]));
    launch(
        student,
        shader!("mad_gram_reduce"),
        CubeDim::new_1d(ROW_1D),
        per_element(len),
        vec![
            parts.handle.clone(),
            gram.handle.clone(),
            info(student, &[len, splits]),
        ],
    );
    gram
}

fn rows_info(like: &CubeTensor, half: usize, row_weighting: bool) -> Handle {
    let [n, d] = like.meta.shape().dims::<2>();
    info(like, &[n, d, half.min(n), usize::from(row_weighting)])
}

impl MadKernelOps for CubeBackend {
    fn mad_entropy_weights(logits: CubeTensor) -> CubeTensor {
        let logits = f32_input(logits, "logits");
        let [n, k] = logits.meta.shape().dims::<2>();
        let out = empty(&logits, Shape::new([n]));
        launch(
            &logits,
            shader!("mad_entropy"),
            CubeDim::new_1d(ROW_1D),
            CubeCount::Static(1, 1, 1),
            vec![
                logits.handle.clone(),
                out.handle.clone(),
                info(&logits, &[n, k]),
            ],
        );
        out
    }

    fn mad_relation_forward(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        half: usize,
        row_weighting: bool,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let student = f32_input(student, "student features");
        let teacher = f32_input(teacher, "teacher features");
        let weights = f32_input(weights, "weights");
        let [n, d] = student.meta.shape().dims::<2>();
        assert_eq!(teacher.meta.shape().dims::<2>(), [n, d], "teacher shape");
        assert_eq!(weights.meta.shape().dims::<1>(), [n], "weights shape");
        let gram = gram_pair(&student, &teacher);
        let row_loss = empty(&student, Shape::new([n]));
        let sumsq = empty(&student, Shape::new([n, 4]));
        launch(
            &student,
            shader!("mad_rows"),
            CubeDim::new_1d(ROW_1D),
            per_row(n),
            vec![
                gram.handle.clone(),
                weights.handle.clone(),
                row_loss.handle.clone(),
                sumsq.handle.clone(),
                rows_info(&student, half, row_weighting),
            ],
        );
        let loss = empty(&student, Shape::new([1]));
        launch(
            &student,
            shader!("mad_sum"),
            CubeDim::new_1d(ROW_1D),
            CubeCount::Static(1, 1, 1),
            vec![
                row_loss.handle.clone(),
                loss.handle.clone(),
                info(&student, &[n]),
            ],
        );
        (loss, gram, sumsq)
    }

    fn mad_relation_grad(
        student: CubeTensor,
        gram: CubeTensor,
        sumsq: CubeTensor,
        weights: CubeTensor,
        grad: CubeTensor,
        half: usize,
        row_weighting: bool,
    ) -> CubeTensor {
        let student = f32_input(student, "student features");
        let gram = f32_input(gram, "Gram pair");
        let sumsq = f32_input(sumsq, "sums of squares");
        let weights = f32_input(weights, "weights");
        let grad = f32_input(grad, "upstream gradient");
        let [n, d] = student.meta.shape().dims::<2>();
        let gram_grad = empty(&student, Shape::new([n, n]));
        launch(
            &student,
            shader!("mad_grad_rows"),
            CubeDim::new_1d(ROW_1D),
            per_row(n),
            vec![
                gram.handle.clone(),
                weights.handle.clone(),
                sumsq.handle.clone(),
                grad.handle.clone(),
                gram_grad.handle.clone(),
                rows_info(&student, half, row_weighting),
            ],
        );
        let np = padded(n);
        let sym = empty(&student, Shape::new([n, np]));
        launch(
            &student,
            shader!("mad_grad_sym"),
            CubeDim::new_1d(ROW_1D),
            per_element(n * np),
            vec![
                gram_grad.handle.clone(),
                sym.handle.clone(),
                info(&student, &[n, np]),
            ],
        );
        let ds = empty(&student, Shape::new([n, d]));
        launch(
            &student,
            shader!("mad_grad_matmul"),
            tile_dim(),
            tiled(n, d, 1),
            vec![
                sym.handle.clone(),
                student.handle.clone(),
                ds.handle.clone(),
                info(&student, &[n, d, np]),
            ],
        );
        ds
    }
}
