//! `mmanet`: train and evaluate incomplete-multimodal models from the command line.

mod bench;
mod progress;

use mmanet_app::gui;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use mmanet_core::config::ExperimentConfig;
use mmanet_core::device::{DeviceChoice, SelectedDevice, select_device};
use mmanet_core::losses::mad::MadImpl;
use mmanet_core::pipeline::{
    PreparedData, RunMode, prepare_data, prepare_manifest, run_ablation, run_experiment,
    weak_set_labels,
};
use std::path::PathBuf;

/// The bundled demo config (mfeat: teacher, SF-MD).
const DEMO_CONFIG: &str = include_str!("../../configs/mfeat-demo.toml");

#[derive(Parser)]
#[command(
    name = "mmanet",
    version,
    about = "MMANet incomplete multimodal learning (CVPR 2023) on Burn"
)]
struct Cli {
    /// What to do; with none, the desktop app opens (when there is a display).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// wgpu on a hardware GPU, else the CPU backend
    Auto,
    /// Burn's flex CPU backend
    Cpu,
    /// wgpu on the best adapter, even a software one
    Wgpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Wgpu => DeviceChoice::Wgpu,
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    /// Compute device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Continue an interrupted run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override the output folder of the config.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Override a config value, e.g. `--set mmanet.beta=2.0` (repeatable; TOML values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// How MAD is computed [default: the config's `mmanet.mad_impl`, `auto`: the WGSL kernels
    /// on wgpu, tensor ops elsewhere].
    #[arg(long, value_enum)]
    mad_impl: Option<MadImplArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MadImplArg {
    /// WGSL kernels on a wgpu device, tensor ops elsewhere
    Auto,
    /// the WGSL kernels (needs --device wgpu or a GPU)
    Kernel,
    /// plain tensor ops
    Ops,
}

impl From<MadImplArg> for MadImpl {
    fn from(m: MadImplArg) -> Self {
        match m {
            MadImplArg::Auto => MadImpl::Auto,
            MadImplArg::Kernel => MadImpl::Kernel,
            MadImplArg::Ops => MadImpl::Ops,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// The main job: on the bundled mfeat data, train the teacher and SF-MD and print the
    /// per-combination comparison table.
    Demo {
        #[command(flatten)]
        run: RunArgs,
        /// Override the number of epochs of every stage (quick look).
        #[arg(long)]
        epochs: Option<usize>,
    },
    /// Train the teacher and every method of a config, then evaluate and write the tables.
    Train {
        /// Experiment config (TOML).
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Evaluate the trained models of a config on every combination (no training).
    Eval {
        /// Experiment config (TOML) the models were trained with.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Multi-seed experiments.
    Experiment {
        #[command(subcommand)]
        command: ExperimentCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Dataset utilities.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// The desktop app: choose data, train, watch the mining, toggle modalities.
    Gui {
        /// Click through a tiny run (mfeat, SF-MD and MMANet), save a screenshot of every
        /// panel and exit; non-zero exit status when a step fails (used by the tests).
        #[arg(long)]
        demo_script: bool,
        /// Folder for the demo script's screenshots.
        #[arg(long, default_value = "screenshots")]
        screenshot_dir: PathBuf,
        /// Epochs of each stage in the demo script.
        #[arg(long, default_value_t = 4)]
        script_epochs: usize,
        /// Output folder of the demo script's run.
        #[arg(long, default_value = "runs")]
        script_output: PathBuf,
        /// The demo script's training device.
        #[arg(long, value_enum, default_value = "auto")]
        script_device: DeviceArg,
        /// Render the window on Burn's wgpu device, so display and training share one GPU
        /// device (`auto`: when a hardware GPU is found; `on`: even a software adapter).
        #[arg(long, value_enum, default_value = "auto")]
        gpu_sharing: gui::GpuSharing,
    },
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// The paper's Table 6 ablation: SF, SF-MD, +SP, +MAD, +SR, MMANet (the config's `methods`)
    /// on the same split with several seeds; writes the mean ± std table.
    Ablation {
        /// Experiment config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Number of seeds.
        #[arg(long, default_value_t = 3)]
        seeds: usize,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// MAD forward + backward at the classification and segmentation shapes (median per step).
    Mad {
        /// Compute device.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Shapes to time.
        #[arg(long, value_enum, default_value = "cls")]
        shape: bench::BenchShape,
        /// Untimed iterations per case first (shader compilation, autotuning).
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Timed iterations per case.
        #[arg(long, default_value_t = 10)]
        iters: usize,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Load a dataset manifest, report problems, and print modalities and split counts.
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
}

fn main() {
    // The Vulkan loader complains on every probe when XDG_RUNTIME_DIR is missing (containers,
    // CI); give it a private folder instead.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("mmanet-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            // SAFETY: single-threaded at this point; nothing else reads the environment yet.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Whether a window can be opened (a display server on Linux and the BSDs; always elsewhere).
fn has_display() -> bool {
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        if has_display() {
            return gui::run(None, gui::GpuSharing::Auto);
        }
        use clap::CommandFactory;
        Cli::command().print_help()?;
        println!("\n(no display found: `mmanet gui` needs one; the other commands work without)");
        return Ok(());
    };
    match command {
        Command::Demo { run, epochs } => {
            let mut cfg = ExperimentConfig::from_toml_with_overrides(
                DEMO_CONFIG,
                "configs/mfeat-demo.toml",
                &run.overrides,
            )?;
            if let Some(e) = epochs {
                let distils = cfg.methods.iter().any(|m| m.uses_teacher());
                if distils && cfg.mmanet.fit_warmup(e) {
                    println!(
                        "--epochs {e}: MMANet's warm-up is now {} epochs (mining after epochs {:?})",
                        cfg.mmanet.warmup_epochs, cfg.mmanet.mining_epochs
                    );
                }
                cfg.set_epochs(e).context("--epochs")?;
            }
            println!(
                "{}",
                mmanet_core::data::mfeat::ATTRIBUTION
                    .lines()
                    .next()
                    .unwrap_or("")
            );
            train(cfg, run, RunMode::Train)
        }
        Command::Train { config, run } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            train(cfg, run, RunMode::Train)
        }
        Command::Eval { config, run } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            train(cfg, run, RunMode::EvalOnly)
        }
        Command::Experiment {
            command: ExperimentCommand::Ablation { config, seeds, run },
        } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            ablation(cfg, seeds, run)
        }
        Command::Bench {
            command:
                BenchCommand::Mad {
                    device,
                    shape,
                    warmup,
                    iters,
                },
        } => {
            if iters == 0 {
                bail!("--iters must be at least 1");
            }
            let selected = select_device(device.into())?;
            println!("device: {}", selected.description);
            bench::bench_mad(&selected.device, shape, warmup, iters)
        }
        Command::Data {
            command: DataCommand::Check { manifest },
        } => data_check(manifest),
        Command::Gui {
            demo_script,
            screenshot_dir,
            script_epochs,
            script_output,
            gpu_sharing,
            script_device,
        } => {
            if !has_display() {
                bail!("no display: set DISPLAY (X11) or WAYLAND_DISPLAY, or run under xvfb-run");
            }
            if demo_script && script_epochs < 3 {
                bail!(
                    "--script-epochs must be at least 3 (MMANet mines during a warm-up epoch and then trains with MAD and MAR)"
                );
            }
            let script = demo_script.then(|| gui::ScriptOptions {
                screenshot_dir,
                output_dir: script_output,
                epochs: script_epochs,
                timeout: std::time::Duration::from_secs(900),
                device: script_device.into(),
            });
            gui::run(script, gpu_sharing)
        }
    }
}

/// Picks the device and loads the data, printing one line about each.
fn setup(cfg: &mut ExperimentConfig, run: &RunArgs) -> Result<(SelectedDevice, PreparedData)> {
    if let Some(out) = &run.output {
        cfg.output_dir = out.clone();
    }
    if let Some(imp) = run.mad_impl {
        cfg.mmanet.mad_impl = imp.into();
    }
    let selected = select_device(run.device.into())?;
    println!("device: {}", selected.description);
    let data = prepare_data(cfg).context("loading the data")?;
    println!(
        "data: {} — {} samples, {} classes, modalities {}; split train {} / val {} / test {}",
        data.source.name(),
        data.source.len(),
        data.source.num_classes(),
        data.source
            .modalities()
            .iter()
            .map(|m| format!("{} {:?}", m.name, m.kind.shape()))
            .collect::<Vec<_>>()
            .join(", "),
        data.split.train.len(),
        data.split.val.len(),
        data.split.test.len()
    );
    Ok((selected, data))
}

fn print_weak_sets(mining: &[serde_json::Value], names: &[String]) {
    for m in mining {
        let method = m.get("method").and_then(|v| v.as_str()).unwrap_or("?");
        if let Some(w) = weak_set_labels(m, names) {
            println!("{method}: mined weak set {}", w.join(", "));
        }
    }
}

fn train(mut cfg: ExperimentConfig, run: RunArgs, mode: RunMode) -> Result<()> {
    let (selected, data) = setup(&mut cfg, &run)?;
    let mut sink = progress::BarProgress::new();
    let outcome = run_experiment(&cfg, &data, &selected.device, run.resume, mode, &mut sink)?;
    drop(sink);
    println!();
    let names = data.source.modality_names();
    print_weak_sets(&outcome.mining, &names);
    for table in &outcome.tables {
        println!("\nTest split, {} per combination:\n", table.metric.name());
        println!("{}", table.to_markdown());
    }
    println!(
        "results written to {} (results.md / .csv / .json, reports.json)",
        outcome.run_dir.display()
    );
    Ok(())
}

fn ablation(mut cfg: ExperimentConfig, seeds: usize, run: RunArgs) -> Result<()> {
    let (selected, data) = setup(&mut cfg, &run)?;
    let mut sink = progress::BarProgress::new();
    let outcome = run_ablation(&cfg, &data, &selected.device, seeds, run.resume, &mut sink)?;
    drop(sink);
    println!();
    for (k, seed) in outcome.weak_sets.iter().enumerate() {
        for (method, w) in seed {
            println!("seed {k}: {method} mined weak set {}", w.join(", "));
        }
    }
    for table in &outcome.tables {
        println!(
            "\nTest split, {} per combination, mean ± std over {seeds} seeds:\n",
            table.metric.name()
        );
        println!("{}", table.to_markdown());
    }
    println!(
        "results written to {} (ablation.md / .csv / .json, ablation-mining.json, seed-*/)",
        outcome.run_dir.display()
    );
    Ok(())
}

fn data_check(path: PathBuf) -> Result<()> {
    let data = prepare_manifest(&path, false)?;
    let src = data.source.as_ref();
    println!(
        "{}: {} samples, {} classes",
        src.name(),
        src.len(),
        src.num_classes()
    );
    for (i, m) in src.modalities().iter().enumerate() {
        println!("  modality {i}: {} {:?}", m.name, m.kind);
    }
    let names = src.class_names();
    for (split, idx) in [
        ("train", &data.split.train),
        ("val", &data.split.val),
        ("test", &data.split.test),
    ] {
        let mut counts = vec![0usize; src.num_classes()];
        for &i in idx.iter() {
            counts[src.label(i)] += 1;
        }
        let per_class = names
            .iter()
            .zip(&counts)
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("  {split}: {} samples ({per_class})", idx.len());
    }
    // Decode the first sample of every split, so broken files show up now.
    let mut scratch: Vec<Vec<f32>> = vec![Vec::new(); src.modalities().len()];
    for idx in [&data.split.train, &data.split.val, &data.split.test] {
        if let Some(&i) = idx.first() {
            src.load_sample(i, None, &mut scratch)
                .with_context(|| format!("reading sample {i}"))?;
        }
    }
    println!("ok");
    Ok(())
}
