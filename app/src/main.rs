//! `mmanet`: train and evaluate incomplete-multimodal models from the command line.

mod bench;
mod predict;
mod progress;

/// The allocator: mimalloc keeps freed memory for the next tensor buffer, where glibc's
/// returns every large one to the OS and the next op faults in fresh zeroed pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v2 and v3 alike: the 16th option). The
/// bindings name the stable options only.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process instead of purging it to the OS: mimalloc (v3) by default
/// returns a freed range about a second later, and a training step on the CPU frees and
/// reallocates its large buffers at longer intervals than that, so every step faulted in and
/// cleared fresh pages again (a sixth of the `paper` training step on the CPU). The process keeps its peak memory
/// until it exits, as it would reach that peak again on the next step anyway.
fn keep_freed_memory() {
    // SAFETY: sets one integer option of the allocator; called before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use mmanet_app::gui;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use mmanet_core::config::ExperimentConfig;
use mmanet_core::data::manifest::read_manifest;
use mmanet_core::data::rgbd::{SegSource, scan_split};
use mmanet_core::data::rgbd_trees::RgbdTree;
use mmanet_core::data::split::Split;
use mmanet_core::device::{DeviceChoice, SelectedDevice, select_device};
use mmanet_core::experiment::{
    LoadedData, RunMode, prepare_manifest, run_ablation, run_experiment,
};
use mmanet_core::losses::mad::MadImpl;
use mmanet_core::mining::MiningRecord;
use std::path::PathBuf;

/// The bundled demo config (mfeat: teacher, SF, SF-MD, MMANet).
const DEMO_CONFIG: &str = mmanet_core::configs::MFEAT_DEMO;
/// The bundled segmentation demo config (synthetic RGB-D scenes: teacher, SF-MD, MMANet).
const DEMO_SEG_CONFIG: &str = mmanet_core::configs::SCENES_DEMO;

/// The demo's task.
#[derive(Clone, Copy, ValueEnum)]
enum DemoTask {
    /// classification on the bundled mfeat digits (three views)
    Cls,
    /// RGB-D semantic segmentation on synthetic scenes
    Seg,
}

/// The GUI demo script's data.
#[derive(Clone, Copy, ValueEnum)]
enum ScriptTask {
    /// classification on the bundled mfeat digits (three views)
    Cls,
    /// synthetic face anti-spoofing (RGB, depth and IR images)
    Antispoof,
    /// RGB-D semantic segmentation on synthetic scenes
    Seg,
}

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
    /// Threads of the CPU backend [default: every core, or RAYON_NUM_THREADS when set].
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// wgpu on a hardware GPU, else the CPU backend
    Auto,
    /// Burn's flex CPU backend
    Cpu,
    /// wgpu on the best adapter, even a software one
    Wgpu,
    /// Burn's CUDA backend on GPU 0 (built with `--features cuda`)
    #[cfg(feature = "cuda")]
    Cuda,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Wgpu => DeviceChoice::Wgpu,
            #[cfg(feature = "cuda")]
            DeviceArg::Cuda => DeviceChoice::Cuda,
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
    /// on wgpu, the host kernel on the CPU, tensor ops elsewhere].
    #[arg(long, value_enum)]
    mad_impl: Option<MadImplArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MadImplArg {
    /// WGSL kernels on a wgpu device, the host kernel on the CPU, tensor ops elsewhere (CUDA)
    Auto,
    /// the kernels (an error on CUDA, which has none)
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
    /// The main job: on the bundled mfeat data (or, with `--task seg`, synthetic RGB-D scenes),
    /// train the teacher and the methods and print the per-combination comparison table.
    Demo(DemoArgs),
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
    /// Write a trained network as a deployment bundle (`.mmanet`): the deployment network
    /// alone with its modalities, class names, preprocessing, config and test table.
    Export {
        /// The run folder (`runs/<name>`).
        #[arg(long)]
        run: PathBuf,
        /// Which method's network: `mmanet`, `sf-md`, `mad`, … (a stage of the run).
        #[arg(long, default_value = "mmanet")]
        method: String,
        /// The bundle file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Predict with a deployment bundle on new samples, with any subset of modalities: CSV files
    /// per modality (`fou=rows.csv`), one sample's images (`rgb=a.png depth=b.png`), or a
    /// dataset's split (`--data`); a table, `--out` CSV / JSON, label-map PNGs.
    Predict(predict::PredictArgs),
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
    Gui(GuiArgs),
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
    Mad(BenchMadArgs),
    /// Complete training steps (SF-MD, MMANet) and the deployment forward pass of a preset,
    /// on synthetic inputs: median ms per step, samples/s, device memory.
    Train(BenchTrainArgs),
    /// Samples per second of deployment networks (the mfeat MLP, ResNet-18-SE `small` and
    /// `paper`, or a bundle's) at each batch size, inputs uploaded and probabilities read back.
    Predict(BenchPredictArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Load a dataset manifest, report problems, and print modalities and split counts (for an
    /// RGB-D segmentation manifest: scenes and class pixel counts per split).
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
    },
}

/// The `demo` command's arguments.
#[derive(clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Which task's demo.
    #[arg(long, value_enum, default_value = "cls")]
    task: DemoTask,
    /// Override the number of epochs of every stage (quick look).
    #[arg(long)]
    epochs: Option<usize>,
}

/// The `gui` command's arguments.
#[derive(clap::Args)]
struct GuiArgs {
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
    /// The demo script's data: mfeat classification, synthetic anti-spoofing images or
    /// synthetic RGB-D segmentation.
    #[arg(long, value_enum, default_value = "cls")]
    script_task: ScriptTask,
    /// Render the window on Burn's wgpu device, so display and training share one GPU
    /// device (`auto`: when a hardware GPU is found; `on`: even a software adapter).
    #[arg(long, value_enum, default_value = "auto")]
    gpu_sharing: gui::GpuSharing,
}

/// `bench mad`'s arguments.
#[derive(clap::Args)]
struct BenchMadArgs {
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
}

/// `bench train`'s arguments.
#[derive(clap::Args)]
struct BenchTrainArgs {
    /// Compute device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Network.
    #[arg(long, value_enum, default_value = "paper")]
    preset: bench::TrainPreset,
    /// Steps to time, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [bench::TrainMethod::SfMd, bench::TrainMethod::Mmanet])]
    method: Vec<bench::TrainMethod>,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Image side in pixels (convnet presets).
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Scene height in pixels (seg-… presets; a multiple of 32).
    #[arg(long, default_value_t = 192)]
    height: usize,
    /// Scene width in pixels (seg-… presets; a multiple of 32).
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Untimed steps per case first (compilation, autotuning).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps per case.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `bench predict`'s arguments.
#[derive(clap::Args)]
struct BenchPredictArgs {
    /// Compute device.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Which networks.
    #[arg(long, value_enum, default_value = "all")]
    nets: bench::PredictNets,
    /// Time this bundle's network instead.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64])]
    batch: Vec<usize>,
    /// Untimed iterations per case first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed iterations per case.
    #[arg(long, default_value_t = 10)]
    iters: usize,
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
    keep_freed_memory();
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
    // before any tensor work: the pool is sized once per process
    mmanet_core::device::set_cpu_threads(cli.threads).context("--threads")?;
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
        Command::Demo(args) => args.run(),
        Command::Train { config, run } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            train(cfg, run, RunMode::Train)
        }
        Command::Eval { config, run } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            train(cfg, run, RunMode::EvalOnly)
        }
        Command::Export { run, method, out } => export(&run, &method, &out),
        Command::Predict(args) => predict::predict(args),
        Command::Experiment {
            command: ExperimentCommand::Ablation { config, seeds, run },
        } => {
            let cfg = ExperimentConfig::load_with_overrides(&config, &run.overrides)?;
            ablation(cfg, seeds, run)
        }
        Command::Bench {
            command: BenchCommand::Mad(args),
        } => args.run(),
        Command::Bench {
            command: BenchCommand::Predict(args),
        } => args.run(),
        Command::Bench {
            command: BenchCommand::Train(args),
        } => args.run(),
        Command::Data {
            command: DataCommand::Check { manifest },
        } => data_check(manifest),
        Command::Gui(args) => args.run(),
    }
}

/// Applies the run options to the config and picks the device, printing it.
impl DemoArgs {
    /// `mmanet demo`: the bundled config of the task, `--epochs` applied, trained and tabled.
    fn run(self) -> Result<()> {
        let DemoArgs { run, task, epochs } = self;
        let (text, file) = match task {
            DemoTask::Cls => (DEMO_CONFIG, "configs/mfeat-demo.toml"),
            DemoTask::Seg => (DEMO_SEG_CONFIG, "configs/scenes-demo.toml"),
        };
        let mut cfg = ExperimentConfig::from_toml_with_overrides(text, file, &run.overrides)?;
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
        if matches!(task, DemoTask::Cls) {
            println!(
                "{}",
                mmanet_core::data::mfeat::ATTRIBUTION
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        train(cfg, run, RunMode::Train)
    }
}

impl BenchMadArgs {
    /// `mmanet bench mad`.
    fn run(self) -> Result<()> {
        let BenchMadArgs {
            device,
            shape,
            warmup,
            iters,
        } = self;
        if iters == 0 {
            bail!("--iters must be at least 1");
        }
        let selected = select_device(device.into())?;
        println!("device: {}", selected.description);
        bench::bench_mad(&selected.device, shape, warmup, iters)
    }
}

impl BenchPredictArgs {
    /// `mmanet bench predict`.
    fn run(self) -> Result<()> {
        let BenchPredictArgs {
            device,
            nets,
            model,
            batch,
            warmup,
            iters,
        } = self;
        if iters == 0 {
            bail!("--iters must be at least 1");
        }
        if batch.is_empty() || batch.contains(&0) {
            bail!("--batch: give batch sizes of at least 1, e.g. 1,64");
        }
        let bundle = model
            .map(|path| -> Result<_> {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                Ok(mmanet_core::bundle::Bundle::from_bytes(
                    &bytes,
                    &path.display().to_string(),
                )?)
            })
            .transpose()?;
        let selected = select_device(device.into())?;
        println!("device: {}", selected.description);
        bench::bench_predict(
            &selected.device,
            nets,
            bundle.as_ref(),
            &batch,
            warmup,
            iters,
        )
    }
}

impl BenchTrainArgs {
    /// `mmanet bench train`.
    fn run(self) -> Result<()> {
        let BenchTrainArgs {
            device,
            preset,
            method,
            batch,
            size,
            height,
            width,
            warmup,
            iters,
            json,
        } = self;
        if iters == 0 {
            bail!("--iters must be at least 1");
        }
        if batch == 0 || batch > mmanet_core::config::MAX_BATCH {
            bail!(
                "--batch must be 1..={}, got {batch}",
                mmanet_core::config::MAX_BATCH
            );
        }
        if !(32..=mmanet_core::data::MAX_IMAGE_SIDE).contains(&size) {
            bail!(
                "--size must be 32..={} px, got {size}",
                mmanet_core::data::MAX_IMAGE_SIDE
            );
        }
        for (name, side) in [("--height", height), ("--width", width)] {
            if side % 32 != 0 || !(32..=mmanet_core::data::MAX_IMAGE_SIDE).contains(&side) {
                bail!(
                    "{name} must be a multiple of 32 in 32..={} px (the segmentation network halves it five times), got {side}",
                    mmanet_core::data::MAX_IMAGE_SIDE
                );
            }
        }
        if method.is_empty() {
            bail!("--method: name at least one of sf-md, mmanet");
        }
        let selected = select_device(device.into())?;
        println!("device: {}", selected.description);
        let rows = bench::bench_train(
            &selected.device,
            preset,
            &method,
            batch,
            size,
            [height, width],
            warmup,
            iters,
        )?;
        if let Some(path) = json {
            let text = serde_json::to_string_pretty(&serde_json::json!({
                "device": selected.description,
                "cpu_threads": mmanet_core::device::cpu_threads(),
                "rows": rows,
            }))?;
            mmanet_core::fsutil::write_atomic(&path, text.as_bytes())?;
            println!("rows written to {}", path.display());
        }
        Ok(())
    }
}

impl GuiArgs {
    /// `mmanet gui`: the desktop app, or its demo script.
    fn run(self) -> Result<()> {
        let GuiArgs {
            demo_script,
            screenshot_dir,
            script_epochs,
            script_output,
            gpu_sharing,
            script_device,
            script_task,
        } = self;
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
            preset: match script_task {
                ScriptTask::Cls => gui::settings::Preset::MfeatDemo,
                ScriptTask::Antispoof => gui::settings::Preset::SyntheticAntispoof,
                ScriptTask::Seg => gui::settings::Preset::ScenesDemo,
            },
        });
        gui::run(script, gpu_sharing)
    }
}

fn setup_device(cfg: &mut ExperimentConfig, run: &RunArgs) -> Result<SelectedDevice> {
    if let Some(out) = &run.output {
        cfg.output_dir = out.clone();
    }
    if let Some(imp) = run.mad_impl {
        cfg.mmanet.mad_impl = imp.into();
    }
    let selected = select_device(run.device.into())?;
    println!("device: {}", selected.description);
    Ok(selected)
}

/// Loads the data of `cfg` for its task, printing one line about it.
fn load_data(cfg: &ExperimentConfig) -> Result<LoadedData> {
    let data = LoadedData::load(cfg).context("loading the data")?;
    println!("data: {}", data.describe());
    Ok(data)
}

fn print_weak_sets(mining: &[MiningRecord], names: &[String]) {
    for m in mining {
        if let Some(w) = m.trace.weak_set_labels(names) {
            println!("{}: mined weak set {}", m.method, w.join(", "));
        }
    }
}

fn train(mut cfg: ExperimentConfig, run: RunArgs, mode: RunMode) -> Result<()> {
    let selected = setup_device(&mut cfg, &run)?;
    let mut sink = progress::BarProgress::new();
    let data = load_data(&cfg)?;
    let outcome = run_experiment(&cfg, &data, &selected.device, run.resume, mode, &mut sink)?;
    drop(sink);
    println!();
    let names = outcome
        .reports
        .first()
        .map(|r| r.modalities.clone())
        .unwrap_or_default();
    print_weak_sets(&outcome.mining, &names);
    for table in &outcome.tables {
        println!("\nTest split, {} per combination:\n", table.metric.name());
        println!("{}", table.to_markdown());
    }
    println!(
        "results written to {} (results*.md / .csv / .json, reports.json)",
        outcome.run_dir.display()
    );
    Ok(())
}

fn ablation(mut cfg: ExperimentConfig, seeds: usize, run: RunArgs) -> Result<()> {
    let selected = setup_device(&mut cfg, &run)?;
    let mut sink = progress::BarProgress::new();
    let device = &selected.device;
    let data = load_data(&cfg)?;
    let outcome = run_ablation(&cfg, &data, device, seeds, run.resume, &mut sink)?;
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
    for table in &outcome.paired {
        println!(
            "\nPaired: each method minus SF-MD on the same seed (same initialisation, batch order and modality draws), {} per combination, mean ± std over {seeds} seeds:\n",
            table.metric.name()
        );
        println!("{}", table.to_markdown());
    }
    println!(
        "results written to {} (ablation*.md / .csv / .json, ablation-paired*, ablation-mining.json, seed-*/)",
        outcome.run_dir.display()
    );
    Ok(())
}

/// `mmanet export`: the run's `method` network as a bundle at `out`.
fn export(run: &std::path::Path, method: &str, out: &std::path::Path) -> Result<()> {
    let method: mmanet_core::config::Method =
        serde_json::from_value(serde_json::Value::String(method.to_string())).map_err(|_| {
            anyhow::anyhow!(
                "--method `{method}` is not a method; use mmanet, sf-md, mad, sp, sr or sf"
            )
        })?;
    if !run.join(mmanet_core::experiment::RUN_CONFIG_FILE).is_file() {
        bail!(
            "{} is not a run folder (it has no {})",
            run.display(),
            mmanet_core::experiment::RUN_CONFIG_FILE
        );
    }
    let store = mmanet_core::store::FolderStore::new(run);
    let bundle = mmanet_core::bundle::Bundle::from_run(&store, method)
        .with_context(|| format!("exporting from {}", run.display()))?;
    let bytes = bundle.to_bytes()?;
    mmanet_core::fsutil::write_atomic(out, &bytes)?;
    let h = &bundle.header;
    println!(
        "wrote {} ({:.1} MB): {} on {} ({}), modalities {}, {} classes",
        out.display(),
        bytes.len() as f64 / 1e6,
        h.method,
        h.dataset,
        h.task.name(),
        h.modalities
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        h.class_names.len()
    );
    if let Some(r) = &h.test_report {
        println!(
            "its test score in the run: {:.2}% averaged over {} combinations",
            r.selection_score() * 100.0,
            r.rows.len()
        );
    }
    Ok(())
}

fn data_check(path: PathBuf) -> Result<()> {
    let manifest = read_manifest(&path)?;
    if let (Some(layout), Some(rgbd)) = (manifest.format.rgbd_layout(), &manifest.rgbd) {
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let (tree, split) = RgbdTree::open(&manifest.name, layout, rgbd, base)?;
        return seg_data_check(&tree, &split);
    }
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

/// `data check` for a segmentation dataset: scenes, class pixel counts and the depth's range
/// and missing share per split, every scene decoded.
fn seg_data_check(src: &dyn SegSource, split: &Split) -> Result<()> {
    println!(
        "{}: {} scenes, {} classes, rgb + depth; training crops {:?}, evaluation inputs {:?}",
        src.name(),
        src.len(),
        src.num_classes(),
        src.train_size(),
        src.eval_size()
    );
    let names = src.class_names();
    for (name, idx) in [
        ("train", &split.train),
        ("val", &split.val),
        ("test", &split.test),
    ] {
        if name == "test" && split.test == split.val {
            println!("  test: the validation split (the final table is computed on it)");
            continue;
        }
        let scan = scan_split(src, idx).with_context(|| format!("reading the {name} split"))?;
        let counts = &scan.classes;
        let labelled: u64 = counts.pixels[1..].iter().sum();
        println!(
            "  {name}: {} scenes, {labelled} labelled pixels, {} void{}",
            idx.len(),
            counts.pixels[0],
            if labelled == 0 && !idx.is_empty() {
                " — no labelled pixel: no mIoU can be computed on this split"
            } else {
                ""
            }
        );
        let d = &scan.depth;
        match (d.min, d.max) {
            (Some(lo), Some(hi)) => println!(
                "    depth {lo}..{hi} (the dataset's unit), {:.1} % of pixels missing (0)",
                100.0 * d.missing_share()
            ),
            _ => println!("    depth: no reading at all (every pixel 0)"),
        }
        let per_class = names
            .iter()
            .zip(&counts.pixels[1..])
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("    {per_class}");
    }
    println!("ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: mimalloc v3's default (1000 ms, `options.c`) before, none
    /// after.
    #[test]
    fn the_allocator_keeps_freed_memory() {
        // SAFETY: reads and sets one integer option of the allocator.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            before, 1000,
            "mimalloc's purge delay is no longer option 15"
        );
        keep_freed_memory();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, -1);
    }
}
