//! Property tests of every parser that reads a user's file: random text and bytes, and valid
//! files mutated (bytes flipped, inserted, cut). The invariant, for every input: `Ok`, or an
//! error that names the file (or, for config values, the field) — never a panic, never a hang.
//!
//! Each target runs `MMANET_FUZZ_CASES` cases (default 10,000: about 10 s for all eleven targets;
//! the README's "Robustness" section gives the longer campaign's command and counts).

use mmanet_core::bundle::Bundle;
use mmanet_core::checkpoint::StageCheckpoint;
use mmanet_core::config::ExperimentConfig;
use mmanet_core::data::ModalityKind;
use mmanet_core::data::ModalitySpec;
use mmanet_core::data::csv::{CsvView, LabelColumn, LabelPosition, load_multiview};
use mmanet_core::data::imagelist::{CefaSplitRule, cefa_samples, parse_surf_list};
use mmanet_core::data::manifest::parse_manifest;
use mmanet_core::predict::inputs::{CsvInput, HeaderRule, LabelAt, read_csv_rows};
use mmanet_core::runs::RunRecord;
use mmanet_core::store::{MemoryStore, RunStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

const DEMO: &str = mmanet_core::configs::MFEAT_DEMO;
const SURF: &str = mmanet_core::configs::CASIA_SURF_MANIFEST;
const BUNDLE: &[u8] = include_bytes!("../../../app/assets/mfeat-mmanet.mmanet");

fn cases() -> u32 {
    std::env::var("MMANET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Runs `check` on `cases()` inputs drawn from `strategy`; a panic inside `check` is a failure
/// (proptest shrinks it to a small input).
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), String>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |input| {
        match catch_unwind(AssertUnwindSafe(|| check(input))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestCaseError::fail(e)),
            Err(_) => Err(TestCaseError::fail("panicked")),
        }
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// `seed` with some bytes overwritten, some inserted, and maybe cut short.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = seed.len();
    mutated_in(seed, 0..n)
}

/// `seed` with bytes overwritten and inserted within `region` only, and maybe cut short there.
fn mutated_in(seed: Vec<u8>, region: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    let region = region.start..region.end.max(region.start + 1);
    (
        prop::collection::vec((region.clone(), any::<u8>()), 0..8),
        prop::collection::vec((region.clone(), any::<u8>()), 0..4),
        prop::option::of(region),
    )
        .prop_map(move |(flips, inserts, cut)| {
            let mut bytes = seed.clone();
            for (i, b) in flips {
                if i < bytes.len() {
                    bytes[i] = b;
                }
            }
            for (i, b) in inserts {
                bytes.insert(i.min(bytes.len()), b);
            }
            if let Some(c) = cut {
                bytes.truncate(c);
            }
            bytes
        })
}

/// Text: either random (CSV-ish characters) or `seed` mutated.
fn text_like(seed: &str) -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-z,.\\-+= \\n\"\\[\\]#]{0,200}",
        mutated(seed.as_bytes().to_vec()).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn names(e: &impl std::fmt::Display, what: &[&str]) -> Result<(), String> {
    let text = e.to_string();
    if what.iter().any(|w| text.contains(w)) {
        Ok(())
    } else {
        Err(format!("the error does not name {what:?}: {text}"))
    }
}

#[test]
fn csv_views() {
    let seed = "0,1,2,label\n1.5,2,3,0\n4,5,6,1\n,,,\n7,8,9,1\n";
    fuzz(
        "csv views",
        (text_like(seed), text_like(seed), any::<bool>()),
        |(a, b, header)| {
            let view = |file: &str, text| CsvView {
                name: file.trim_end_matches(".csv").into(),
                file: file.into(),
                text,
                header,
                label: LabelColumn::Named(LabelPosition::Last),
                image_shape: None,
            };
            match load_multiview("fuzzdata", &[view("a.csv", &a), view("b.csv", &b)], None) {
                Ok(ds) => ds
                    .validate()
                    .map_err(|e| format!("loaded but invalid: {e}")),
                Err(e) => names(&e, &["a.csv", "b.csv", "fuzzdata"]),
            }
        },
    );
}

#[test]
fn prediction_csv_rows() {
    let specs = vec![
        ModalitySpec {
            name: "a".into(),
            kind: ModalityKind::Vector { dim: 3 },
        },
        ModalitySpec {
            name: "b".into(),
            kind: ModalityKind::Image {
                channels: 1,
                height: 1,
                width: 2,
            },
        },
    ];
    let seed = "0,1,2,label\n1,2,3,1\n,,,\n4,5,6,0\n";
    fuzz(
        "prediction rows",
        (text_like(seed), text_like("1,2\n,\n3,4\n")),
        |(a, b)| {
            let inputs = [
                CsvInput {
                    modality: "a".into(),
                    file: "a.csv".into(),
                    text: &a,
                },
                CsvInput {
                    modality: "b".into(),
                    file: "b.csv".into(),
                    text: &b,
                },
            ];
            match read_csv_rows(&specs, 2, &inputs, HeaderRule::Auto, LabelAt::Last) {
                Ok(rows) => {
                    for r in &rows.values {
                        for (spec, v) in specs.iter().zip(r) {
                            if v.as_ref().is_some_and(|v| v.len() != spec.kind.numel()) {
                                return Err("a row of the wrong width was accepted".into());
                            }
                        }
                    }
                    Ok(())
                }
                Err(e) => names(&e, &["a.csv", "b.csv"]),
            }
        },
    );
}

#[test]
fn dataset_manifests() {
    let csv_seed = "name = \"d\"\nformat = \"csv\"\nclasses = 3\n[[modality]]\nname = \"a\"\nfile = \"a.csv\"\nlabel = \"last\"\nimage_shape = [1, 2, 2]\n[split]\ntrain = 0.6\nval = 0.2\ntest = 0.2\n";
    fuzz(
        "manifests",
        prop_oneof![text_like(csv_seed), text_like(SURF)],
        |text| match parse_manifest(&text, "fuzz-manifest.toml") {
            Ok(_) => Ok(()),
            Err(e) => names(&e, &["fuzz-manifest.toml", "config field"]),
        },
    );
}

#[test]
fn experiment_configs_and_set_values() {
    let keys = prop_oneof![
        Just("name".to_string()),
        Just("teacher.epochs".to_string()),
        Just("student.batch_size".to_string()),
        Just("student.lr".to_string()),
        Just("mmanet.beta".to_string()),
        Just("mmanet.mining_epochs".to_string()),
        Just("data.split.train".to_string()),
        Just("eval.batch_size".to_string()),
        Just("model.mlp_hidden".to_string()),
        Just("methods".to_string()),
        "[a-z_.]{1,20}".prop_map(String::from),
    ];
    let values = "[-0-9a-z\"\\[\\]., ]{0,24}";
    fuzz(
        "configs",
        (text_like(DEMO), prop::collection::vec((keys, values), 0..3)),
        |(text, sets)| {
            let overrides: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // a mutated config, and the demo config with random `--set` values
            for (text, overrides) in [(text.as_str(), &[][..]), (DEMO, &overrides[..])] {
                if let Err(e) =
                    ExperimentConfig::from_toml_with_overrides(text, "fuzz.toml", overrides)
                {
                    names(&e, &["fuzz.toml", "config field", "--set"])?;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn casia_surf_list_lines() {
    let seed = "train/a/color.jpg train/a/depth.jpg train/a/ir.jpg 1\nb/c.jpg b/d.jpg b/i.jpg 0\n";
    fuzz("surf lists", text_like(seed), |text| match parse_surf_list(
        &text,
        "train_list.txt",
        Path::new("/data"),
    ) {
        Ok(samples) => {
            if samples.iter().any(|s| s.paths.len() != 3 || s.label > 1) {
                return Err("a malformed line was accepted".into());
            }
            Ok(())
        }
        Err(e) => names(&e, &["train_list.txt"]),
    });
}

#[test]
fn checkpoints() {
    let good = StageCheckpoint {
        progress: Default::default(),
        model: vec![1, 2, 3, 4],
        optimizer: vec![5; 9],
        best_model: Some(vec![7; 5]),
    }
    .to_bytes()
    .unwrap();
    fuzz(
        "checkpoints",
        prop_oneof![
            mutated(good.clone()),
            prop::collection::vec(any::<u8>(), 0..64)
        ],
        |bytes| match StageCheckpoint::from_bytes(&bytes, Path::new("fuzz/checkpoint.bin")) {
            Ok(_) => Ok(()),
            Err(e) => names(&e, &["fuzz/checkpoint.bin"]),
        },
    );
}

/// A bundle's header and its weights: a mutated bundle reads as an error naming it, or loads a
/// network — never a panic inside the weight decoder.
#[test]
fn deployment_bundles() {
    let device = burn::prelude::Device::flex();
    // the header (JSON), and the start of the weights (burnpack's own metadata), mutated apart
    let weights_at = 20 + u64::from_le_bytes(BUNDLE[12..20].try_into().unwrap()) as usize;
    let strategy = prop_oneof![
        mutated(BUNDLE.to_vec()),
        mutated_in(BUNDLE.to_vec(), 0..weights_at),
        mutated_in(BUNDLE.to_vec(), weights_at..weights_at + 4096),
    ];
    let decoded = std::sync::atomic::AtomicUsize::new(0);
    fuzz("bundles", strategy, |bytes| {
        match Bundle::from_bytes(&bytes, "fuzz.mmanet") {
            Ok(b) => {
                decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match b.classifier(&device) {
                    Ok(_) => Ok(()),
                    Err(e) => names(&e, &["bundle", "model", "config field"]),
                }
            }
            Err(e) => names(&e, &["fuzz.mmanet"]),
        }
    });
    let decoded = decoded.into_inner();
    eprintln!(
        "bundles: {decoded} of {} cases reached the weight decoder",
        cases()
    );
    assert!(decoded > 0, "no case got past the header");
}

/// A run folder's files, one of them mutated: reading the run back names the file at fault.
#[test]
fn run_folders() {
    let config = DEMO.replace("name = \"mfeat-demo\"", "name = \"fuzz-run\"");
    let reports = r#"[{"method":"SF-MD","modalities":["a"],"rows":[{"combination":1,"label":"a","samples":4,"accuracy":0.5,"pad":null}]}]"#;
    let meta = r#"{"fingerprint":"f","best_epoch":0,"best_score":0.5,"history":[]}"#;
    fuzz(
        "run folders",
        (
            0..3usize,
            prop_oneof![
                mutated(reports.as_bytes().to_vec()),
                mutated(meta.as_bytes().to_vec()),
                mutated(config.as_bytes().to_vec())
            ],
        ),
        |(which, bytes)| {
            let mut store = MemoryStore::new("fuzz-run");
            let files = ["config.toml", "reports.json", "teacher/meta.json"];
            store.write(files[0], config.as_bytes()).unwrap();
            store.write(files[1], reports.as_bytes()).unwrap();
            store.write(files[2], meta.as_bytes()).unwrap();
            store.write(files[which], &bytes).unwrap();
            match RunRecord::from_store(&store) {
                Ok(_) => Ok(()),
                Err(e) => names(&e, &["memory:fuzz-run/", "config field"]),
            }
        },
    );
}

/// Depth maps as `.npy` (Cityscapes' disparity): a mutated file is an error naming it.
#[test]
fn npy_depth_maps() {
    let dir = tempfile::tempdir().unwrap();
    let mut good = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    let mut header = header.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    good.extend_from_slice(&(header.len() as u16).to_le_bytes());
    good.extend_from_slice(header.as_bytes());
    for v in 0..6u32 {
        good.extend_from_slice(&(v as f32).to_le_bytes());
    }
    let path = dir.path().join("fuzz-depth.npy");
    fuzz("npy", mutated(good), |bytes| {
        std::fs::write(&path, &bytes).unwrap();
        match mmanet_core::data::rgbd_trees::read_npy_2d(&path) {
            Ok((h, w, values)) if values.len() == h * w => Ok(()),
            Ok(_) => Err("a map whose size disagrees with its shape".into()),
            Err(e) => names(&e, &["fuzz-depth.npy"]),
        }
    });
}

/// One video folder of a generated CeFA tree: its name's five numbers (some replaced by other
/// text), where it sits, and how many frames each modality folder holds (`None`: no folder; a
/// file in its place for `Some(usize::MAX)`).
#[derive(Clone, Debug)]
struct CefaVideo {
    race_dir: &'static str,
    subject: String,
    name: String,
    frames: [Option<usize>; 3],
}

fn cefa_video() -> impl Strategy<Value = CefaVideo> {
    // mostly well-formed: `race_id_device_session_pai` in the race's own folder
    let well_formed =
        (1u32..4, 0u32..10, 1u32..3, 1u32..3, 1u32..3).prop_map(|(r, id, d, s, a)| {
            (
                ["AF", "CA", "EA"][r as usize - 1],
                format!("{r}_{id}_{d}_{s}_{a}"),
            )
        });
    let number = prop_oneof![0u32..6, 0u32..600, any::<u32>()].prop_map(|n| n.to_string());
    let part = prop_oneof![8 => number, 1 => "[a-z0-9\\-]{0,4}"];
    let odd = (
        prop::sample::select(vec!["AF", "CA", "EA", "XX"]),
        prop::collection::vec(part, 3..7).prop_map(|p| p.join("_")),
    );
    let frames = prop_oneof![
        4 => (0usize..3).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(usize::MAX)),
    ];
    let same = (1usize..3).prop_map(|n| [Some(n); 3]);
    (
        prop_oneof![3 => well_formed, 1 => odd],
        "[0-9a-z_]{1,6}",
        prop_oneof![3 => same, 1 => [frames.clone(), frames.clone(), frames]],
    )
        .prop_map(|((race_dir, name), subject, frames)| CefaVideo {
            race_dir,
            subject,
            name,
            frames,
        })
}

/// The CeFA folder scan on generated trees (races, subjects, video names from the five numbers
/// or not, modality folders missing, files where folders belong, unequal frame counts) and
/// random split rules: a list of samples whose three files exist, or an error naming the folder.
#[test]
fn cefa_folder_scan() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::cell::Cell::new(0usize);
    let listed = std::cell::Cell::new(0usize);
    let set = prop_oneof![3 => Just(vec![1, 2]), 1 => prop::collection::vec(0u32..5, 0..4)];
    let rule = (
        prop_oneof![3 => 1u32..4, 1 => any::<u32>()],
        prop_oneof![3 => Just((0, 9)), 1 => (0u32..600, 0u32..600)],
        set.clone(),
        set.clone(),
        set,
    )
        .prop_map(|(race, (a, b), devices, sessions, pais)| CefaSplitRule {
            race,
            ids: (a.min(b), a.max(b)),
            devices,
            sessions,
            pais,
        });
    let cases = Config {
        // each case writes a small tree of folders: a twentieth of the other targets' cases
        cases: (cases() / 20).max(1),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(cases);
    let strategy = (prop::collection::vec(cefa_video(), 0..6), rule);
    let result = runner.run(&strategy, |(videos, rule)| {
        counter.set(counter.get() + 1);
        let root = dir.path().join(format!("fuzz-cefa-{}", counter.get()));
        for v in &videos {
            let video = root.join(v.race_dir).join(&v.subject).join(&v.name);
            for (m, frames) in ["profile", "depth", "ir"].iter().zip(v.frames) {
                match frames {
                    None => {}
                    Some(usize::MAX) => {
                        std::fs::create_dir_all(&video).unwrap();
                        std::fs::write(video.join(m), b"not a folder").unwrap();
                    }
                    Some(n) => {
                        std::fs::create_dir_all(video.join(m)).unwrap();
                        for k in 0..n {
                            std::fs::write(video.join(m).join(format!("{k:04}.jpg")), b"").unwrap();
                        }
                    }
                }
            }
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| cefa_samples(&root, &rule)));
        let _ = std::fs::remove_dir_all(&root);
        match outcome {
            Ok(Ok(samples)) => {
                for s in &samples {
                    prop_assert!(s.paths.len() == 3 && s.label <= 1, "{s:?}");
                    prop_assert!(s.paths.iter().all(|p| p.starts_with(&root)), "{s:?}");
                }
                prop_assert!(!samples.is_empty(), "an empty list is an error");
                listed.set(listed.get() + 1);
                Ok(())
            }
            Ok(Err(e)) => {
                let text = e.to_string();
                prop_assert!(
                    text.contains(&root.display().to_string()) || text.contains("cefa.race"),
                    "the error names no folder: {text}"
                );
                Ok(())
            }
            Err(_) => Err(TestCaseError::fail("panicked")),
        }
    });
    if let Err(e) = result {
        panic!("cefa folder scan: {e}");
    }
    eprintln!(
        "cefa folder scan: {} trees; {} gave samples, the others an error naming the folder",
        counter.get(),
        listed.get()
    );
}

/// A small image encoded as PNG.
fn png(image: image::DynamicImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// An RGB-D scene of one's own (`mmanet predict --rgb … --depth …`): an 8-bit RGB PNG and a
/// 16-bit depth PNG, either mutated — a scene of one size, or an error naming a file.
#[test]
fn rgbd_scene_images() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = png(image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(
        6,
        4,
        |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]),
    )));
    let depth = png(image::DynamicImage::ImageLuma16(
        image::ImageBuffer::from_fn(6, 4, |x, y| image::Luma([(x * 1000 + y) as u16])),
    ));
    let (rgb_path, depth_path) = (
        dir.path().join("fuzz-rgb.png"),
        dir.path().join("fuzz-depth.png"),
    );
    fuzz(
        "rgbd scene images",
        (
            any::<bool>(),
            prop_oneof![mutated(rgb.clone()), mutated(depth.clone())],
        ),
        |(which, bytes)| {
            let (r, d) = if which {
                (&bytes, &depth)
            } else {
                (&rgb, &bytes)
            };
            std::fs::write(&rgb_path, r).unwrap();
            std::fs::write(&depth_path, d).unwrap();
            match mmanet_core::data::rgbd_trees::read_rgbd_files(&rgb_path, &depth_path) {
                Ok(scene) => {
                    let n = scene.height * scene.width;
                    if scene.rgb.len() == 3 * n && scene.depth.len() == n {
                        Ok(())
                    } else {
                        Err(format!(
                            "a {}×{} scene with buffers of other sizes",
                            scene.height, scene.width
                        ))
                    }
                }
                Err(e) => names(&e, &["fuzz-rgb.png", "fuzz-depth.png"]),
            }
        },
    );
}
