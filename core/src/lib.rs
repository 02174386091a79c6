//! # mmanet-core
//!
//! MMANet (Wei, Luo, Luo — CVPR 2023) for incomplete multimodal learning, on Burn 0.22:
//! one deployment network that serves every non-empty combination of modalities.
//!
//! Module map (one job each):
//! * [`modality`] — modality sets and the ordered list of combinations;
//! * [`dropout`] — per-sample modality dropout (which combination each sample sees);
//! * [`data`] — datasets (multi-view CSV, manifests, mfeat, image lists, synthetic), splits, batches;
//! * [`model`] — encoders, masked fusion, trunks ([`model::MultimodalNet`]); ESANet for
//!   segmentation ([`model::esanet::EsaNet`]);
//! * [`train`] — the step-wise training loop; the loss terms plug in through [`task::terms`];
//!   [`diagnostics`] — what each loss term does to the deployment network (`gradient_diagnostics`);
//! * [`losses`] — MAD, MAR and the cross-entropy in tensor ops; [`mmanet`] — MAD and MAR as
//!   training terms (and SP, SR); [`mmanet_settings`] — their settings (the `[mmanet]` table);
//! * [`kernels`] — MAD's WGSL kernels, and the CPU convolution, batch norm and MAD;
//! * [`mining`] — MAR's mining rounds, weak-set choice and trace, typed for both tasks;
//! * [`eval`], [`metrics`], [`report`] — per-combination evaluation, metrics, tables;
//! * [`schedule`] — learning-rate schedules; [`config`] — TOML experiment configs; [`configs`] —
//!   the shipped ones, embedded; [`prepare`] — a config's data and split for either task;
//! * [`checkpoint`], [`fsutil`] — atomic checkpoint and result files;
//! * [`experiment`] — the whole experiment (teacher, students, tables, ablation), async over a
//!   [`store`], and running one stage of it (reuse, resume, checkpoints, progress);
//! * [`store`] — where a run's files live: a folder on disk, or memory (the browser);
//! * [`runs`] — reading a trained run back (config, reports, histories, models, mining);
//! * [`bundle`] — the deployment bundle (`.mmanet`): a trained network and what using it needs;
//! * [`predict`] — a bundle on new samples (CSV rows, datasets, image files, RGB-D scenes);
//! * [`task`] — the seam between the experiment and the two tasks (classification, RGB-D
//!   segmentation);
//! * [`device`] — choosing wgpu or the CPU backend at run time;
//! * [`limits`] — whether an experiment fits a browser tab (WebGPU limits, wasm memory).
//!
//! The layers, and what may import what: `docs/notes/architecture.md`.
//!
//! The library builds for `wasm32-unknown-unknown`; every device read in the training and
//! evaluation paths is asynchronous.

/// The shipped configs (the workspace's `configs/` folder), embedded.
pub use mmanet_configs as configs;

pub mod bundle;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod diagnostics;
pub mod dropout;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod fsutil;
pub mod kernels;
pub mod limits;
pub mod losses;
pub mod metrics;
pub mod mining;
pub mod mmanet;
pub mod mmanet_settings;
pub mod modality;
pub mod model;
pub mod optim;
pub mod predict;
pub mod prepare;
pub mod report;
pub mod rng;
pub mod runs;
pub mod schedule;
pub mod store;
pub mod task;
pub mod train;

pub use error::{CoreError, Result};
