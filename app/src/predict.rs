//! `mmanet predict`: a deployment bundle on new samples — CSV files per modality, one sample's
//! image files, or a dataset's split — with any subset of modalities; a table on the terminal,
//! predictions as CSV / JSON, label-map PNGs for segmentation.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mmanet_app::gui::seg_view::class_color;
use mmanet_core::bundle::Bundle;
use mmanet_core::config::{ExperimentConfig, TaskKind};
use mmanet_core::data::rgbd::RgbdScene;
use mmanet_core::data::rgbd_trees::read_rgbd_parts;
use mmanet_core::device::select_device;
use mmanet_core::experiment::block_on;
use mmanet_core::fsutil::write_atomic;
use mmanet_core::metrics::iou;
use mmanet_core::modality::ModalitySet;
use mmanet_core::predict::inputs::{
    CsvInput, DatasetSamples, HeaderRule, ImageFiles, LabelAt, SampleReader, modality_index,
    read_csv_rows,
};
use mmanet_core::predict::output::{predictions_csv, predictions_json};
use mmanet_core::predict::{
    Classifier, SamplePrediction, Segmenter, data_config_for, load_data_for,
    modality_set_from_names, tally,
};
use mmanet_core::prepare::LoadedData;
use mmanet_core::task::segmentation::LabelMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which split of a dataset to predict.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SplitArg {
    /// the training split
    Train,
    /// the validation split
    Val,
    /// the test split
    Test,
    /// every sample
    All,
}

/// Whether CSV files start with a header line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum HeaderArg {
    /// a first line with no number, or the column numbers 0, 1, 2, … (mfeat's), is a header
    Auto,
    /// the first line is a header
    Yes,
    /// the first line is data
    No,
}

/// Where a CSV row's label is, when it has one column more than the features.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LabelArg {
    /// the last column
    Last,
    /// the first column
    First,
}

/// `mmanet predict`'s arguments.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The deployment bundle (`mmanet export`).
    #[arg(long)]
    model: PathBuf,
    /// `MODALITY=FILE`: a CSV file per modality (rows aligned; a modality not given, or an
    /// empty row, is absent), or one image per modality for one sample (`rgb=a.png
    /// depth=b.png`). With none, `--data` (or the model's own dataset) is predicted.
    #[arg(value_name = "MODALITY=FILE")]
    inputs: Vec<String>,
    /// The RGB image of one sample (the same as `rgb=FILE`).
    #[arg(long, value_name = "FILE")]
    rgb: Option<PathBuf>,
    /// The depth image of one sample (the same as `depth=FILE`).
    #[arg(long, value_name = "FILE")]
    depth: Option<PathBuf>,
    /// The IR image of one sample (the same as `ir=FILE`).
    #[arg(long, value_name = "FILE")]
    ir: Option<PathBuf>,
    /// Predict a dataset's samples: an experiment config or a dataset manifest (TOML) [default:
    /// the dataset the model was trained on].
    #[arg(long, conflicts_with = "inputs")]
    data: Option<PathBuf>,
    /// The dataset's split to predict.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Use only these modalities, e.g. `fou,mor` (the others count as absent).
    #[arg(long, value_name = "NAMES")]
    modalities: Option<String>,
    /// Write the predictions: a `.csv` or `.json` file; for segmentation, a folder for the
    /// label maps (`<id>.png`: class indices, `<id>-color.png`: PASCAL VOC colours).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Whether the CSV files start with a header line.
    #[arg(long, value_enum, default_value = "auto")]
    header: HeaderArg,
    /// Where a CSV row's label is, when it has one column more than the features.
    #[arg(long, value_enum, default_value = "last")]
    label_column: LabelArg,
    /// Samples per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value = "auto")]
    device: crate::DeviceArg,
    /// Rows shown on the terminal (every row goes to `--out`).
    #[arg(long, default_value_t = 20)]
    show: usize,
}

/// Runs `mmanet predict`.
pub fn predict(args: PredictArgs) -> Result<()> {
    let origin = args.model.display().to_string();
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {origin}"))?;
    let bundle = Bundle::from_bytes(&bytes, &origin)?;
    let h = &bundle.header;
    let names: Vec<String> = h.modalities.iter().map(|m| m.name.clone()).collect();
    eprintln!(
        "model: {} on {} ({}), modalities {}, {} classes",
        h.method,
        h.dataset,
        h.task.name(),
        names.join(", "),
        h.class_names.len()
    );
    let only = args
        .modalities
        .as_deref()
        .map(|m| modality_set_from_names(&h.modalities, m))
        .transpose()?;
    let mut raw_inputs = args.inputs.clone();
    for (name, path) in [("rgb", &args.rgb), ("depth", &args.depth), ("ir", &args.ir)] {
        if let Some(p) = path {
            raw_inputs.push(format!("{name}={}", p.display()));
        }
    }
    if !raw_inputs.is_empty() && args.data.is_some() {
        bail!("give either files or --data, not both");
    }
    let inputs = parse_inputs(&raw_inputs, &bundle)?;
    if let Some(out) = &args.out
        && h.task == TaskKind::Classification
        && out_format(out).is_none()
    {
        bail!("--out {}: name a .csv or a .json file", out.display());
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let selected = select_device(args.device.into())?;
    eprintln!("device: {}", selected.description);
    match h.task {
        TaskKind::Classification => classify(&args, &bundle, &inputs, only, &selected.device),
        TaskKind::Segmentation => segment(&args, &bundle, &inputs, only, &selected.device),
    }
}

/// `MODALITY=FILE` arguments, checked against the model's modalities.
fn parse_inputs(raw: &[String], bundle: &Bundle) -> Result<Vec<(usize, PathBuf)>> {
    let mut out: Vec<(usize, PathBuf)> = Vec::new();
    for arg in raw {
        let Some((name, file)) = arg.split_once('=') else {
            bail!(
                "`{arg}` is not MODALITY=FILE (the model's modalities: {})",
                modality_names(bundle).join(", ")
            );
        };
        let m = modality_index(&bundle.header.modalities, name.trim())?;
        if out.iter().any(|(k, _)| *k == m) {
            bail!("modality `{name}` is given twice");
        }
        let path = PathBuf::from(file);
        if !path.is_file() {
            bail!("{}: no such file (for modality `{name}`)", path.display());
        }
        out.push((m, path));
    }
    Ok(out)
}

fn modality_names(bundle: &Bundle) -> Vec<String> {
    bundle
        .header
        .modalities
        .iter()
        .map(|m| m.name.clone())
        .collect()
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("txt"))
}

/// The dataset the samples come from when no files are given: `--data`, or the model's own.
fn dataset(args: &PredictArgs, bundle: &Bundle) -> Result<(LoadedData, Vec<usize>)> {
    let h = &bundle.header;
    let cfg: ExperimentConfig = match &args.data {
        Some(path) => data_config_for(h, path)?,
        None => h.config.clone(),
    };
    let data = load_data_for(h, &cfg).with_context(|| match &args.data {
        Some(p) => format!("loading {}", p.display()),
        None => format!(
            "loading the model's own dataset ({}); name another with --data",
            h.dataset
        ),
    })?;
    let split = data.split();
    let indices = match args.split {
        SplitArg::Train => split.train.clone(),
        SplitArg::Val => split.val.clone(),
        SplitArg::Test => split.test.clone(),
        SplitArg::All => {
            let mut all = [split.train.clone(), split.val.clone(), split.test.clone()].concat();
            all.sort_unstable();
            all
        }
    };
    if indices.is_empty() {
        bail!(
            "the {} split of {} is empty",
            split_name(args.split),
            data.name()
        );
    }
    eprintln!(
        "data: {}, {} split, {} samples",
        data.name(),
        split_name(args.split),
        indices.len()
    );
    Ok((data, indices))
}

fn split_name(s: SplitArg) -> &'static str {
    match s {
        SplitArg::Train => "train",
        SplitArg::Val => "val",
        SplitArg::Test => "test",
        SplitArg::All => "whole",
    }
}

fn bar(total: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "predict [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed_precise}} eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn classify(
    args: &PredictArgs,
    bundle: &Bundle,
    inputs: &[(usize, PathBuf)],
    only: Option<ModalitySet>,
    device: &burn::prelude::Device,
) -> Result<()> {
    let h = &bundle.header;
    let classifier = Classifier::new(bundle, device)?;
    let texts: Vec<(usize, PathBuf, String)>;
    let reader: Box<dyn SampleReader> = if inputs.is_empty() {
        let (data, indices) = dataset(args, bundle)?;
        let LoadedData::Classification(d) = data else {
            bail!("the data is not classification data");
        };
        Box::new(DatasetSamples {
            source: d.source.clone(),
            indices,
        })
    } else if inputs.iter().all(|(_, p)| is_csv(p)) {
        texts = inputs
            .iter()
            .map(|(m, p)| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))
                    .map(|t| (*m, p.clone(), t))
            })
            .collect::<Result<_>>()?;
        let csv: Vec<CsvInput<'_>> = texts
            .iter()
            .map(|(m, p, t)| CsvInput {
                modality: h.modalities[*m].name.clone(),
                file: p.display().to_string(),
                text: t,
            })
            .collect();
        let header = match args.header {
            HeaderArg::Auto => HeaderRule::Auto,
            HeaderArg::Yes => HeaderRule::Present,
            HeaderArg::No => HeaderRule::Absent,
        };
        let label_at = match args.label_column {
            LabelArg::Last => LabelAt::Last,
            LabelArg::First => LabelAt::First,
        };
        Box::new(read_csv_rows(
            &h.modalities,
            h.class_names.len(),
            &csv,
            header,
            label_at,
        )?)
    } else if inputs.iter().any(|(_, p)| is_csv(p)) {
        bail!("give either CSV files (many samples) or image files (one sample), not both");
    } else {
        let Some(prep) = h.images.clone() else {
            bail!(
                "this model reads feature rows ({}), not image files: give CSV files, one per modality",
                modality_names(bundle).join(", ")
            );
        };
        let mut paths = vec![None; h.modalities.len()];
        for (m, p) in inputs {
            paths[*m] = Some(p.clone());
        }
        Box::new(ImageFiles { paths, prep })
    };
    let n = reader.len();
    let progress = (n > args.batch_size).then(|| bar(n, "samples"));
    let predictions =
        block_on(
            classifier.predict(reader.as_ref(), only, args.batch_size, &mut |done, _| {
                if let Some(b) = &progress {
                    b.set_position(done as u64);
                }
            }),
        )?;
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    print_predictions(bundle, &predictions, args.show);
    if let Some(out) = &args.out {
        let bytes = match out_format(out) {
            Some(OutFormat::Csv) => predictions_csv(h, &predictions)?,
            Some(OutFormat::Json) => predictions_json(h, &predictions)?,
            None => bail!("--out {}: name a .csv or a .json file", out.display()),
        };
        write_atomic(out, &bytes)?;
        println!(
            "wrote {} ({} predictions)",
            out.display(),
            predictions.len()
        );
    }
    Ok(())
}

enum OutFormat {
    Csv,
    Json,
}

fn out_format(path: &Path) -> Option<OutFormat> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("csv") => Some(OutFormat::Csv),
        Some("json") => Some(OutFormat::Json),
        _ => None,
    }
}

fn print_predictions(bundle: &Bundle, predictions: &[SamplePrediction], show: usize) {
    let h = &bundle.header;
    let names = modality_names(bundle);
    let labelled = predictions.iter().any(|p| p.label.is_some());
    let class = |k: usize| {
        h.class_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| k.to_string())
    };
    println!(
        "{:<12} {:<16} {:<14} {:>6}{}",
        "sample",
        "seen",
        "predicted",
        "p",
        if labelled { "  label" } else { "" }
    );
    for p in predictions.iter().take(show) {
        let label = match (labelled, p.label) {
            (false, _) => String::new(),
            (true, None) => "  ?".into(),
            (true, Some(l)) => format!("  {}{}", class(l), if l == p.class { "" } else { "  ✗" }),
        };
        println!(
            "{:<12} {:<16} {:<14} {:>6.3}{label}",
            p.id,
            p.seen.long_label(&names),
            class(p.class),
            p.probabilities.get(p.class).copied().unwrap_or(0.0)
        );
    }
    if predictions.len() > show {
        println!(
            "… {} more (--out writes every row)",
            predictions.len() - show
        );
    }
    println!();
    println!(
        "{:<24} {:>8} {:>10}",
        "combination seen", "samples", "accuracy"
    );
    for t in tally(predictions) {
        println!(
            "{:<24} {:>8} {:>10}",
            t.seen.long_label(&names),
            t.samples,
            t.accuracy()
                .map(|a| format!("{:.2}%", a * 100.0))
                .unwrap_or_else(|| "—".into())
        );
    }
}

/// One scene to segment: its name, the scene, and the modalities it has.
struct SceneInput {
    id: String,
    scene: RgbdScene,
    has: ModalitySet,
}

fn segment(
    args: &PredictArgs,
    bundle: &Bundle,
    inputs: &[(usize, PathBuf)],
    only: Option<ModalitySet>,
    device: &burn::prelude::Device,
) -> Result<()> {
    let h = &bundle.header;
    let names = modality_names(bundle);
    let segmenter = Segmenter::new(bundle, device)?;
    let scenes: Box<dyn Fn(usize) -> Result<SceneInput>>;
    let count: usize;
    if inputs.is_empty() {
        let (data, indices) = dataset(args, bundle)?;
        let LoadedData::Segmentation(d) = data else {
            bail!("the data is not segmentation data");
        };
        let source = Arc::clone(&d.source.source);
        count = indices.len();
        scenes = Box::new(move |k| {
            let i = indices[k];
            Ok(SceneInput {
                id: format!("scene-{i}"),
                scene: source.scene(i)?,
                has: ModalitySet::full(2),
            })
        });
    } else {
        let path_of = |m: usize| inputs.iter().find(|(k, _)| *k == m).map(|(_, p)| p.clone());
        let (rgb, depth) = (path_of(0), path_of(1));
        let scene = read_rgbd_parts(rgb.as_deref(), depth.as_deref())?;
        let has = ModalitySet::from_mask(&[rgb.is_some(), depth.is_some()]);
        let id = rgb
            .as_ref()
            .or(depth.as_ref())
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scene".into());
        let one = std::cell::RefCell::new(Some(SceneInput { id, scene, has }));
        count = 1;
        scenes = Box::new(move |_| {
            one.borrow_mut()
                .take()
                .context("the scene was read already")
        });
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let classes = h.class_names.len();
    let mut confusion = vec![vec![0u64; classes]; classes];
    let progress = (count > 1).then(|| bar(count, "scenes"));
    let mut lines = Vec::new();
    for k in 0..count {
        let input = scenes(k)?;
        let seen = match only {
            Some(o) => ModalitySet::from_bits(o.bits() & input.has.bits()),
            None => input.has,
        };
        if seen.is_empty() {
            bail!("{}: has none of the modalities asked for", input.id);
        }
        let map = block_on(segmenter.segment(&input.scene, seen))?;
        let labelled = input.scene.labels.iter().any(|&l| l > 0);
        let mut scene_confusion = vec![vec![0u64; classes]; classes];
        for (&p, &l) in map.classes.iter().zip(&input.scene.labels) {
            let (l, p) = (l as usize, p as usize);
            if l > 0 && l <= classes && p < classes {
                scene_confusion[l - 1][p] += 1;
                confusion[l - 1][p] += 1;
            }
        }
        let scores = labelled.then(|| {
            mmanet_core::task::segmentation::scene_scores(&map, &input.scene.labels, classes)
        });
        lines.push(format!(
            "{:<16} {:<10} {:>9} {:<32}{}",
            input.id,
            seen.long_label(&names),
            format!("{}×{}", map.height, map.width),
            top_classes(&map, &h.class_names),
            scores
                .map(|s| format!(
                    " {:>7.2}% {:>7.2}%",
                    s.miou * 100.0,
                    s.pixel_accuracy * 100.0
                ))
                .unwrap_or_default()
        ));
        if let Some(dir) = &args.out {
            write_label_maps(dir, &input.id, &map)?;
        }
        if let Some(b) = &progress {
            b.inc(1);
        }
    }
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    println!(
        "{:<16} {:<10} {:>9} {:<32} {:>8} {:>8}",
        "scene", "seen", "size", "most pixels", "mIoU", "pix acc"
    );
    for line in lines.iter().take(args.show) {
        println!("{line}");
    }
    if lines.len() > args.show {
        println!("… {} more", lines.len() - args.show);
    }
    let pixels: u64 = confusion.iter().flatten().sum();
    if pixels > 0 {
        let (_, miou) = iou(&confusion);
        let correct: u64 = (0..classes).map(|k| confusion[k][k]).sum();
        println!(
            "all {} scenes: mIoU {:.2}%, pixel accuracy {:.2}%",
            count,
            miou * 100.0,
            correct as f64 / pixels as f64 * 100.0
        );
    }
    if let Some(dir) = &args.out {
        println!("wrote {count} label maps to {}", dir.display());
    }
    Ok(())
}

/// The three classes with the most pixels, with their share.
fn top_classes(map: &LabelMap, class_names: &[String]) -> String {
    let mut counts = vec![0usize; class_names.len()];
    for &c in &map.classes {
        if let Some(n) = counts.get_mut(c as usize) {
            *n += 1;
        }
    }
    let total = map.classes.len().max(1) as f64;
    let mut order: Vec<usize> = (0..counts.len()).filter(|&k| counts[k] > 0).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(counts[k]));
    order
        .iter()
        .take(3)
        .map(|&k| {
            format!(
                "{} {:.0}%",
                class_names[k],
                counts[k] as f64 / total * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<id>.png` (class index per pixel, 8-bit gray; 16-bit when a class index is above 255) and
/// `<id>-color.png` (VOC colours).
fn write_label_maps(dir: &Path, id: &str, map: &LabelMap) -> Result<()> {
    let (w, h) = (map.width as u32, map.height as u32);
    let encode = |img: image::DynamicImage| -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )?;
        Ok(bytes)
    };
    let index = match map
        .classes
        .iter()
        .map(|&c| u8::try_from(c))
        .collect::<std::result::Result<Vec<u8>, _>>()
    {
        Ok(bytes) => image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w, h, bytes).context("the label map has the wrong size")?,
        ),
        Err(_) => image::DynamicImage::ImageLuma16(
            image::ImageBuffer::from_raw(w, h, map.classes.clone())
                .context("the label map has the wrong size")?,
        ),
    };
    write_atomic(&dir.join(format!("{id}.png")), &encode(index)?)?;
    let color: Vec<u8> = map
        .classes
        .iter()
        .flat_map(|&c| {
            let c = class_color(c as usize);
            [c.r(), c.g(), c.b()]
        })
        .collect();
    let color =
        image::RgbImage::from_raw(w, h, color).context("the label map has the wrong size")?;
    write_atomic(
        &dir.join(format!("{id}-color.png")),
        &encode(image::DynamicImage::ImageRgb8(color))?,
    )?;
    Ok(())
}
