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

/// Workgroup shapes; they must equal each shader's `@workgroup_size`.
const TILE_2D: (u32, u32) = (16, 16);
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

fn tiles(len: usize) -> u32 {
    len.div_ceil(TILE_2D.0 as usize) as u32
}

/// One workgroup per row, spread over (x, y) to stay under the per-dimension limit.
fn per_row(rows: usize) -> CubeCount {
    let x = rows.min(MAX_GROUPS) as u32;
    let y = rows.div_ceil(MAX_GROUPS) as u32;
    CubeCount::Static(x.max(1), y.max(1), 1)
}

fn tile_dim() -> CubeDim {
    CubeDim::new_2d(TILE_2D.0, TILE_2D.1)
}

/// The forward passes shared by the loss and its gradient: Gram matrices `[2, N, N]`, per-row
/// losses `[N]` and per-row block sums of squares `[N, 4]`.
struct Relation {
    gram: CubeTensor,
    row_loss: CubeTensor,
    sumsq: CubeTensor,
    rows_info: Handle,
}

fn relation(
    student: &CubeTensor,
    teacher: &CubeTensor,
    weights: &CubeTensor,
    half: usize,
    row_weighting: bool,
) -> Relation {
    let [n, d] = student.meta.shape().dims::<2>();
    assert_eq!(teacher.meta.shape().dims::<2>(), [n, d], "teacher shape");
    assert_eq!(weights.meta.shape().dims::<1>(), [n], "weights shape");
    let gram = empty(student, Shape::new([2, n, n]));
    launch(
        student,
        shader!("mad_gram"),
        tile_dim(),
        CubeCount::Static(tiles(n), tiles(n), 1),
        vec![
            student.handle.clone(),
            teacher.handle.clone(),
            gram.handle.clone(),
            info(student, &[n, d]),
        ],
    );
    let row_loss = empty(student, Shape::new([n]));
    let sumsq = empty(student, Shape::new([n, 4]));
    let rows_info = info(student, &[n, d, half.min(n), usize::from(row_weighting)]);
    launch(
        student,
        shader!("mad_rows"),
        CubeDim::new_1d(ROW_1D),
        per_row(n),
        vec![
            gram.handle.clone(),
            weights.handle.clone(),
            row_loss.handle.clone(),
            sumsq.handle.clone(),
            rows_info.clone(),
        ],
    );
    Relation {
        gram,
        row_loss,
        sumsq,
        rows_info,
    }
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

    fn mad_relation_loss(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        half: usize,
        row_weighting: bool,
    ) -> CubeTensor {
        let student = f32_input(student, "student features");
        let teacher = f32_input(teacher, "teacher features");
        let weights = f32_input(weights, "weights");
        let n = student.meta.shape()[0];
        let parts = relation(&student, &teacher, &weights, half, row_weighting);
        let loss = empty(&student, Shape::new([1]));
        launch(
            &student,
            shader!("mad_sum"),
            CubeDim::new_1d(ROW_1D),
            CubeCount::Static(1, 1, 1),
            vec![
                parts.row_loss.handle.clone(),
                loss.handle.clone(),
                info(&student, &[n]),
            ],
        );
        loss
    }

    fn mad_relation_grad(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        grad: CubeTensor,
        half: usize,
        row_weighting: bool,
    ) -> CubeTensor {
        let student = f32_input(student, "student features");
        let teacher = f32_input(teacher, "teacher features");
        let weights = f32_input(weights, "weights");
        let grad = f32_input(grad, "upstream gradient");
        let [n, d] = student.meta.shape().dims::<2>();
        let parts = relation(&student, &teacher, &weights, half, row_weighting);
        let gram_grad = empty(&student, Shape::new([n, n]));
        launch(
            &student,
            shader!("mad_grad_rows"),
            CubeDim::new_1d(ROW_1D),
            per_row(n),
            vec![
                parts.gram.handle.clone(),
                weights.handle.clone(),
                parts.sumsq.handle.clone(),
                grad.handle.clone(),
                gram_grad.handle.clone(),
                parts.rows_info.clone(),
            ],
        );
        let ds = empty(&student, Shape::new([n, d]));
        launch(
            &student,
            shader!("mad_grad_matmul"),
            tile_dim(),
            CubeCount::Static(tiles(d), tiles(n), 1),
            vec![
                gram_grad.handle.clone(),
                student.handle.clone(),
                ds.handle.clone(),
                info(&student, &[n, d]),
            ],
        );
        ds
    }
}
