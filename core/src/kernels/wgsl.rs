//! The `CubeBackend` implementation of [`MadKernelOps`]: buffers, launches and dispatch sizes
//! for the WGSL sources in `shaders/`. Each launch is one compiled pipeline, cached by cubecl
//! under the shader's name.
//!
//! The two Gram matrices and the gradient product `(Ĝ + Ĝᵀ)·S` are matrix products, and
//! they go to Burn's own matmul (autotuned per adapter): a hand-written WGSL Gram kernel was
//! measured at a quarter of its throughput on the software adapter. Everything between those
//! products — norms, relations, discrepancy, weighting, the reductions, the entropy weights and
//! the Gram gradient — is WGSL, one pass per row.

use super::{MadKernelOps, RelationOutputs};
use burn::backend::ops::FloatTensorOps;
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

/// Workgroup size of every shader; it must equal their `@workgroup_size`.
const WORKGROUP: u32 = 256;
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

fn launch(like: &CubeTensor, shader: Shader, count: CubeCount, buffers: Vec<Handle>) {
    let bindings = buffers.into_iter().map(Handle::binding).collect();
    like.client.launch(
        Box::new(SourceKernel::new(shader, CubeDim::new_1d(WORKGROUP))),
        count,
        KernelArguments::new().with_buffers(bindings),
    );
}

/// One workgroup per row, spread over (x, y) to stay under the per-dimension limit.
fn per_row(rows: usize) -> CubeCount {
    let x = rows.min(MAX_GROUPS) as u32;
    let y = rows.div_ceil(MAX_GROUPS) as u32;
    CubeCount::Static(x.max(1), y.max(1), 1)
}

/// One thread per element.
fn per_element(len: usize) -> CubeCount {
    per_row(len.div_ceil(WORKGROUP as usize))
}

/// `X·Xᵀ` by Burn's matmul, made contiguous for the row kernels.
fn gram(x: &CubeTensor) -> CubeTensor {
    let xt = CubeBackend::float_transpose(x.clone());
    into_contiguous(CubeBackend::float_matmul(x.clone(), xt))
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
    ) -> RelationOutputs<Self> {
        let student = f32_input(student, "student features");
        let teacher = f32_input(teacher, "teacher features");
        let weights = f32_input(weights, "weights");
        let [n, d] = student.meta.shape().dims::<2>();
        assert_eq!(teacher.meta.shape().dims::<2>(), [n, d], "teacher shape");
        assert_eq!(weights.meta.shape().dims::<1>(), [n], "weights shape");
        let gram_s = gram(&student);
        let gram_t = gram(&teacher);
        let row_loss = empty(&student, Shape::new([n]));
        launch(
            &student,
            shader!("mad_rows"),
            per_row(n),
            vec![
                gram_s.handle.clone(),
                gram_t.handle.clone(),
                weights.handle.clone(),
                row_loss.handle.clone(),
                rows_info(&student, half, row_weighting),
            ],
        );
        let loss = empty(&student, Shape::new([1]));
        launch(
            &student,
            shader!("mad_sum"),
            CubeCount::Static(1, 1, 1),
            vec![
                row_loss.handle.clone(),
                loss.handle.clone(),
                info(&student, &[n]),
            ],
        );
        (loss, gram_s, gram_t)
    }

    fn mad_relation_grad(
        student: CubeTensor,
        gram_s: CubeTensor,
        gram_t: CubeTensor,
        weights: CubeTensor,
        grad: CubeTensor,
        half: usize,
        row_weighting: bool,
    ) -> CubeTensor {
        let student = f32_input(student, "student features");
        let gram_s = f32_input(gram_s, "student Gram");
        let gram_t = f32_input(gram_t, "teacher Gram");
        let weights = f32_input(weights, "weights");
        let grad = f32_input(grad, "upstream gradient");
        let n = student.meta.shape()[0];
        let gram_grad = empty(&student, Shape::new([n, n]));
        launch(
            &student,
            shader!("mad_grad_rows"),
            per_row(n),
            vec![
                gram_s.handle.clone(),
                gram_t.handle.clone(),
                weights.handle.clone(),
                grad.handle.clone(),
                gram_grad.handle.clone(),
                rows_info(&student, half, row_weighting),
            ],
        );
        let sym = empty(&student, Shape::new([n, n]));
        launch(
            &student,
            shader!("mad_grad_sym"),
            per_element(n * n),
            vec![
                gram_grad.handle.clone(),
                sym.handle.clone(),
                info(&student, &[n]),
            ],
        );
        CubeBackend::float_matmul(sym, student)
    }
}
