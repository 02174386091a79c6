//! The `CubeBackend` implementation of [`MadKernelOps`]: buffers, launches and dispatch sizes
//! for the WGSL sources in `shaders/`. Each launch is one compiled pipeline, cached by cubecl
//! under the shader's name.
//!
//! The two Gram matrices and the gradient product `(Ĝ + Ĝᵀ)·S` are matrix products, and
//! they go to Burn's own matmul (autotuned per adapter): a hand-written WGSL Gram kernel was
//! measured at a quarter of its throughput on the software adapter. Everything between those
//! products — norms, relations, discrepancy, weighting, the reductions, the entropy weights and
//! the Gram gradient — is WGSL, one pass per row.

use super::{MadKernelOps, RelationLayout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::{Handle, KernelArguments};
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::Slice;
use burn::tensor::{DType, Shape};
use core::ops::Range;
use core::sync::atomic::Ordering;

/// A WGSL source from `shaders/` (plus an optional shared part appended to it), named for the
/// compilation cache.
struct Shader {
    name: &'static str,
    text: &'static str,
    common: Option<&'static str>,
}

impl KernelSource for Shader {
    fn source(&self) -> SourceTemplate {
        let source = SourceTemplate::new(self.text);
        match self.common {
            Some(common) => source.add_template(common),
            None => source,
        }
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.name)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// A shader by its name and its source in `mmanet-shaders` (the `shaders/` folder), with the
/// shared source appended when compiled (`+`).
macro_rules! shader {
    ($name:literal, $text:ident) => {
        Shader {
            name: $name,
            text: mmanet_shaders::$text,
            common: None,
        }
    };
    ($name:literal, $text:ident + $common:ident) => {
        Shader {
            name: $name,
            text: mmanet_shaders::$text,
            common: Some(mmanet_shaders::$common),
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

fn info_of(like: &CubeTensor, values: &[usize]) -> Handle {
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

/// Rows `rows` of `X·Xᵀ` (`[rows, N]`) by Burn's matmul, contiguous for the row kernels.
fn gram_rows(x: &CubeTensor, rows: &Range<usize>) -> CubeTensor {
    let block = rows_of(x, rows);
    let xt = CubeBackend::float_transpose(x.clone());
    into_contiguous(CubeBackend::float_matmul(block, xt))
}

/// Rows `rows` of a `[N, D]` tensor.
fn rows_of(x: &CubeTensor, rows: &Range<usize>) -> CubeTensor {
    if rows.start == 0 && rows.end == x.meta.shape()[0] {
        return x.clone();
    }
    CubeBackend::float_slice(x.clone(), &[Slice::from(rows.clone()), Slice::from(..)])
}

/// The row blocks the Grams are computed in (see [`super::gram_block_rows`]).
fn blocks(n: usize) -> Vec<Range<usize>> {
    let step = super::gram_block_rows(n);
    (0..n).step_by(step).map(|r| r..(r + step).min(n)).collect()
}

fn rows_info(like: &CubeTensor, layout: RelationLayout, rows: &Range<usize>) -> Handle {
    let [n, d] = like.meta.shape().dims::<2>();
    info_of(
        like,
        &[
            n,
            d,
            layout.half.min(n),
            usize::from(layout.row_weighting),
            rows.start,
            rows.len(),
        ],
    )
}

/// The tensors every relation pass reads, contiguous f32.
struct RelationInputs {
    student: CubeTensor,
    teacher: CubeTensor,
    weights: CubeTensor,
    layout: RelationLayout,
}

impl RelationInputs {
    fn new(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        layout: RelationLayout,
    ) -> Self {
        let student = f32_input(student, "student features");
        let teacher = f32_input(teacher, "teacher features");
        let weights = f32_input(weights, "weights");
        let [n, d] = student.meta.shape().dims::<2>();
        assert_eq!(teacher.meta.shape().dims::<2>(), [n, d], "teacher shape");
        assert_eq!(weights.meta.shape().dims::<1>(), [n], "weights shape");
        RelationInputs {
            student,
            teacher,
            weights,
            layout,
        }
    }

    /// The loss `[1]`, and with `with_grad` the student gradient `[N, D]` for an upstream
    /// gradient of 1. The Grams are computed (and dropped) one row block at a time.
    fn run(&self, with_grad: bool) -> (CubeTensor, Option<CubeTensor>) {
        let student = &self.student;
        let n = student.meta.shape()[0];
        let blocks = blocks(n);
        let row_loss = empty(student, Shape::new([n]));
        let unit = with_grad.then(|| {
            let one = 1f32.to_le_bytes();
            CubeTensor::new_contiguous(
                student.client.clone(),
                student.device.clone(),
                Shape::new([1]),
                student.client.create_from_slice(&one),
                DType::F32,
            )
        });
        let mut direct = Vec::new();
        let mut mirrored: Option<CubeTensor> = None;
        for rows in &blocks {
            let gram_s = gram_rows(student, rows);
            let gram_t = gram_rows(&self.teacher, rows);
            let info = rows_info(student, self.layout, rows);
            launch(
                student,
                shader!("mad_rows", MAD_ROWS + MAD_ROWS_COMMON),
                per_row(rows.len()),
                vec![
                    gram_s.handle.clone(),
                    gram_t.handle.clone(),
                    self.weights.handle.clone(),
                    row_loss.handle.clone(),
                    info.clone(),
                ],
            );
            let Some(unit) = &unit else { continue };
            let gg = empty(student, Shape::new([rows.len(), n]));
            launch(
                student,
                shader!("mad_grad_rows", MAD_GRAD_ROWS + MAD_ROWS_COMMON),
                per_row(rows.len()),
                vec![
                    gram_s.handle.clone(),
                    gram_t.handle.clone(),
                    self.weights.handle.clone(),
                    unit.handle.clone(),
                    gg.handle.clone(),
                    info,
                ],
            );
            if blocks.len() == 1 {
                // ∂L/∂S = (Ĝ + Ĝᵀ)·S
                let sym = empty(student, Shape::new([n, n]));
                launch(
                    student,
                    shader!("mad_grad_sym", MAD_GRAD_SYM),
                    per_element(n * n),
                    vec![
                        gg.handle.clone(),
                        sym.handle.clone(),
                        info_of(student, &[n]),
                    ],
                );
                direct.push(CubeBackend::float_matmul(sym, student.clone()));
            } else {
                // ∂L/∂S = Ĝ·S + Ĝᵀ·S = cat_b(Ĝ_b·S) + Σ_b Ĝ_bᵀ·S_b
                direct.push(CubeBackend::float_matmul(gg.clone(), student.clone()));
                let part = CubeBackend::float_matmul(
                    CubeBackend::float_transpose(gg),
                    rows_of(student, rows),
                );
                mirrored = Some(match mirrored {
                    None => part,
                    Some(sum) => CubeBackend::float_add(sum, part),
                });
            }
        }
        let loss = empty(student, Shape::new([1]));
        launch(
            student,
            shader!("mad_sum", MAD_SUM),
            CubeCount::Static(1, 1, 1),
            vec![
                row_loss.handle.clone(),
                loss.handle.clone(),
                info_of(student, &[n]),
            ],
        );
        let grad = with_grad.then(|| {
            let direct = if direct.len() == 1 {
                direct.remove(0)
            } else {
                CubeBackend::float_cat(direct, 0)
            };
            match mirrored {
                Some(m) => CubeBackend::float_add(direct, m),
                None => direct,
            }
        });
        (loss, grad)
    }
}

impl MadKernelOps for CubeBackend {
    fn mad_entropy_weights(logits: CubeTensor) -> CubeTensor {
        let logits = f32_input(logits, "logits");
        let [n, k] = logits.meta.shape().dims::<2>();
        let out = empty(&logits, Shape::new([n]));
        launch(
            &logits,
            shader!("mad_entropy", MAD_ENTROPY),
            CubeCount::Static(1, 1, 1),
            vec![
                logits.handle.clone(),
                out.handle.clone(),
                info_of(&logits, &[n, k]),
            ],
        );
        out
    }

    fn mad_relation_loss(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        layout: RelationLayout,
    ) -> CubeTensor {
        RelationInputs::new(student, teacher, weights, layout)
            .run(false)
            .0
    }

    fn mad_relation_loss_and_grad(
        student: CubeTensor,
        teacher: CubeTensor,
        weights: CubeTensor,
        layout: RelationLayout,
    ) -> (CubeTensor, CubeTensor) {
        let (loss, grad) = RelationInputs::new(student, teacher, weights, layout).run(true);
        let grad = grad.expect("run(true) returns the gradient");
        (loss, grad)
    }
}
