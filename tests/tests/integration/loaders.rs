//! Data loaders: good input loads, every kind of bad input gets an error naming file, line,
//! column or field.

use mmanet_core::data::csv::{CsvView, LabelColumn, LabelPosition, load_multiview};
use mmanet_core::data::imagelist::{
    CefaProtocol, ImageListConfig, ImageListDataset, cefa_samples, parse_surf_list,
};
use mmanet_core::data::manifest::parse_manifest;
use mmanet_core::data::split::SplitRule;
use mmanet_core::data::{ModalityKind, MultimodalSource, make_batch, mfeat};
use mmanet_core::experiment::prepare_manifest;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::Path;

fn view<'a>(name: &str, file: &str, text: &'a str) -> CsvView<'a> {
    CsvView {
        name: name.into(),
        file: file.into(),
        text,
        header: true,
        label: LabelColumn::Named(LabelPosition::Last),
        image_shape: None,
    }
}

#[test]
fn bundled_mfeat_loads_with_three_views() {
    let ds = mfeat::load(false).unwrap();
    assert_eq!(ds.labels.len(), 2000);
    assert_eq!(ds.classes, 10);
    let dims: Vec<_> = ds
        .modalities
        .iter()
        .map(|m| (m.name.as_str(), m.kind.numel()))
        .collect();
    assert_eq!(dims, [("pix", 240), ("fou", 76), ("mor", 6)]);
    for c in 0..10 {
        assert_eq!(ds.labels.iter().filter(|&&l| l == c).count(), 200);
    }
    let img = mfeat::load(true).unwrap();
    assert_eq!(
        img.modalities[0].kind,
        ModalityKind::Image {
            channels: 1,
            height: 15,
            width: 16
        }
    );
    assert!(mfeat::ATTRIBUTION.contains("CC BY 4.0"));
}

#[test]
fn stratified_split_is_seeded_and_keeps_class_balance() {
    let ds = mfeat::load(false).unwrap();
    let rule = SplitRule {
        train: 0.6,
        val: 0.2,
        test: 0.2,
        seed: 5,
    };
    let a = rule.apply(&ds.labels, "mfeat").unwrap();
    let b = rule.apply(&ds.labels, "mfeat").unwrap();
    assert_eq!(a, b, "same seed, same split");
    let c = SplitRule {
        seed: 6,
        ..rule.clone()
    }
    .apply(&ds.labels, "mfeat")
    .unwrap();
    assert_ne!(a.train, c.train, "another seed, another split");
    assert_eq!((a.train.len(), a.val.len(), a.test.len()), (1200, 400, 400));
    for k in 0..10 {
        assert_eq!(a.test.iter().filter(|&&i| ds.labels[i] == k).count(), 40);
    }
    let mut all: Vec<usize> = a
        .train
        .iter()
        .chain(&a.val)
        .chain(&a.test)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..2000).collect::<Vec<_>>(),
        "a partition of the samples"
    );
}

#[test]
fn empty_split_is_an_error() {
    let labels = vec![0, 1, 0, 1];
    let err = SplitRule {
        train: 0.9,
        val: 0.05,
        test: 0.05,
        seed: 0,
    }
    .apply(&labels, "tiny.csv")
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tiny.csv") && err.contains("split is empty"),
        "{err}"
    );
    let err = SplitRule {
        train: 0.5,
        val: 0.2,
        test: 0.2,
        seed: 0,
    }
    .apply(&labels, "x")
    .unwrap_err()
    .to_string();
    assert!(err.contains("must be 1"), "{err}");
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let a = "h1,h2,label\n1,2,0\n3,4,1\n";
    // non-numeric cell: line 3, column 2
    let bad = "h1,h2,label\n1,2,0\n3,x4,1\n";
    let err = load_multiview("t", &[view("a", "a.csv", a), view("b", "b.csv", bad)], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.csv:3, column 2") && err.contains("`x4` is not a number"),
        "{err}"
    );
    // row counts disagree
    let short = "h1,h2,label\n1,2,0\n";
    let err = load_multiview(
        "t",
        &[view("a", "a.csv", a), view("b", "b.csv", short)],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row counts disagree")
            && err.contains("a.csv has 2")
            && err.contains("b.csv has 1"),
        "{err}"
    );
    // label out of range
    let err = load_multiview("t", &[view("a", "a.csv", "h,label\n1,0\n2,7\n")], Some(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.csv:3, column 2") && err.contains("out of range"),
        "{err}"
    );
    // label not an integer
    let err = load_multiview("t", &[view("a", "a.csv", "h,label\n1,0\n2,1.5\n")], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.csv:3, column 2") && err.contains("not a class index"),
        "{err}"
    );
    // ragged row
    let err = load_multiview("t", &[view("a", "a.csv", "h,h,label\n1,2,0\n1,0\n")], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.csv:3") && err.contains("2 columns"),
        "{err}"
    );
    // labels that disagree between files
    let other = "h1,h2,label\n1,2,0\n3,4,0\n";
    let err = load_multiview(
        "t",
        &[view("a", "a.csv", a), view("b", "b.csv", other)],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("b.csv:3") && err.contains("disagrees"),
        "{err}"
    );
    // wrong image shape
    let mut v = view("a", "a.csv", a);
    v.image_shape = Some([1, 3, 3]);
    let err = load_multiview("t", &[v], None).unwrap_err().to_string();
    assert!(err.contains("a.csv") && err.contains("1×3×3"), "{err}");
}

#[test]
fn manifest_loads_csv_files_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "x,y,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,3,1\n4,5,0\n6,7,1\n8,9,0\n1,1,1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "z\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
    )
    .unwrap();
    let manifest = r#"
name = "toy"
[[modality]]
name = "a"
file = "a.csv"
header = true
label = "last"
[[modality]]
name = "b"
file = "b.csv"
header = true
label = "none"
[split]
train = 0.6
val = 0.2
test = 0.2
seed = 1
"#;
    let path = dir.path().join("toy.toml");
    std::fs::write(&path, manifest).unwrap();
    let data = prepare_manifest(&path, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.source.len(), 10);
    assert_eq!(data.source.num_classes(), 2);
    assert_eq!(
        data.split.train.len() + data.split.val.len() + data.split.test.len(),
        10
    );

    std::fs::remove_file(dir.path().join("b.csv")).unwrap();
    let err = prepare_manifest(&path, true).err().unwrap().to_string();
    assert!(err.contains("b.csv"), "missing file named: {err}");

    // unknown key → error with line and column
    let err = parse_manifest("name = \"x\"\ncolour = 3\n", "m.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("m.toml:2") && err.contains("colour"), "{err}");
}

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([value, (x * 7 % 256) as u8, (y * 5 % 256) as u8])
    });
    img.save(path).unwrap();
}

fn cfg(size: usize) -> ImageListConfig {
    ImageListConfig {
        root: ".".into(),
        train_list: Some("train.txt".into()),
        val_list: Some("val.txt".into()),
        test_list: Some("test.txt".into()),
        cefa_protocol: None,
        size,
        train_resize: size + size / 4,
        channels: 3,
        max_rotation_deg: 30,
    }
}

#[test]
fn surf_list_reads_images_and_rejects_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut lines = String::new();
    for i in 0..4 {
        for m in ["color", "depth", "ir"] {
            write_png(
                &root.join(format!("Training/s{i}/{m}/1.png")),
                20,
                24,
                40 * i as u8,
            );
        }
        lines += &format!(
            "Training/s{i}/color/1.png Training/s{i}/depth/1.png Training/s{i}/ir/1.png {}\n",
            i % 2
        );
    }
    let samples = parse_surf_list(&lines, "train_list.txt", root).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[1].label, 1);
    let ds = ImageListDataset::new(
        "surf",
        samples,
        &cfg(16),
        vec!["attack".into(), "live".into()],
    )
    .unwrap();
    // evaluation path: resize + (x − 127.5)/128
    let batch = make_batch(&ds, &[0, 1, 2, 3], None).unwrap();
    assert_eq!(batch.shapes[0], vec![4, 3, 16, 16]);
    // sample 0: red channel 0 → last plane (BGR) of sample 0 is (0 − 127.5)/128
    let plane = 16 * 16;
    let red0 = &batch.inputs[0][2 * plane..3 * plane];
    assert!(red0.iter().all(|v| (v - (-127.5 / 128.0)).abs() < 1e-6));
    // training path with augmentation: same shapes, finite values, deterministic per seed
    let mut r1 = StdRng::seed_from_u64(9);
    let mut r2 = StdRng::seed_from_u64(9);
    let a = make_batch(&ds, &[0, 1], Some(&mut r1)).unwrap();
    let b = make_batch(&ds, &[0, 1], Some(&mut r2)).unwrap();
    assert_eq!(a, b);
    assert!(
        a.inputs
            .iter()
            .flatten()
            .all(|v| v.is_finite() && v.abs() <= 1.0)
    );

    // a sample read from files (the explorer's "load a sample") is preprocessed as a test sample
    assert!(ds.reads_sample_files());
    let mut listed: Vec<Vec<f32>> = vec![Vec::new(); 3];
    ds.load_sample(2, None, &mut listed).unwrap();
    let loaded = ds.sample_from_files(&ds.samples()[2].paths).unwrap();
    assert_eq!(loaded, listed);
    let err = ds
        .sample_from_files(&ds.samples()[2].paths[..2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 images (rgb, depth, ir), got 2"), "{err}");
    let gone = vec![root.join("gone.png"); 3];
    let err = ds.sample_from_files(&gone).unwrap_err().to_string();
    assert!(err.contains("gone.png"), "{err}");
    let mfeat = mfeat::load(false).unwrap();
    assert!(!mfeat.reads_sample_files());
    let err = mfeat.sample_from_files(&gone).unwrap_err().to_string();
    assert!(err.contains("pick one of its test samples"), "{err}");

    let err = parse_surf_list("a.png b.png 1\n", "train_list.txt", root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train_list.txt:1") && err.contains("expected 4 fields"),
        "{err}"
    );
    let err = parse_surf_list("a b c 1\na b c 2\n", "val.txt", root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("val.txt:2, column 4") && err.contains("`2`"),
        "{err}"
    );
    // a listed image that does not exist
    let missing = parse_surf_list("no/a.png no/b.png no/c.png 0\n", "test.txt", root).unwrap();
    let ds =
        ImageListDataset::new("surf", missing, &cfg(16), vec!["a".into(), "b".into()]).unwrap();
    let err = make_batch(&ds, &[0], None).unwrap_err().to_string();
    assert!(err.contains("no/a.png"), "{err}");
}

#[test]
fn cefa_protocol_selects_videos_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // EA (race 3) subject 5: a real video and a screen attack (train), one cloth attack (not in train)
    for (video, frames) in [("3_005_1_1_1", 2), ("3_005_3_2_4", 1), ("3_005_1_1_2", 1)] {
        for m in ["profile", "depth", "ir"] {
            for f in 0..frames {
                write_png(
                    &root.join(format!("EA/EA-005/{video}/{m}/{f:04}.jpg.png")),
                    8,
                    8,
                    10,
                );
            }
        }
    }
    let proto = CefaProtocol::race_prot_rdi_4_5();
    let train = cefa_samples(root, &proto.train).unwrap();
    assert_eq!(train.len(), 3, "2 real frames + 1 screen frame");
    assert_eq!(
        train.iter().filter(|s| s.label == 0).count(),
        2,
        "PAI 1 = real = label 0"
    );
    assert!(train[0].paths[0].to_string_lossy().contains("profile"));
    let err = cefa_samples(root, &proto.dev).unwrap_err().to_string();
    assert!(err.contains("no CeFA frames"), "{err}");
}

#[test]
fn cefa_manifest_builds_the_three_protocol_splits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CeFA-Race");
    // train: EA 5 (real + screen); dev: EA 205 (real); test: AF 305 (real + cloth)
    for (race, subject, video) in [
        ("EA", "EA-005", "3_005_1_1_1"),
        ("EA", "EA-005", "3_005_1_2_4"),
        ("EA", "EA-205", "3_205_3_1_1"),
        ("AF", "AF-305", "1_305_1_1_1"),
        ("AF", "AF-305", "1_305_3_2_2"),
    ] {
        for m in ["profile", "depth", "ir"] {
            write_png(
                &root.join(format!("{race}/{subject}/{video}/{m}/0001.png")),
                12,
                12,
                60,
            );
        }
    }
    let manifest = r#"
name = "cefa"
format = "cefa"
[images]
root = "CeFA-Race"
size = 8
train_resize = 10
"#;
    let path = dir.path().join("cefa.toml");
    std::fs::write(&path, manifest).unwrap();
    let data = prepare_manifest(&path, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            data.split.train.len(),
            data.split.val.len(),
            data.split.test.len()
        ),
        (2, 1, 2)
    );
    assert_eq!(data.source.class_names(), ["real", "attack"]);
    let labels: Vec<usize> = data
        .split
        .test
        .iter()
        .map(|&i| data.source.label(i))
        .collect();
    assert_eq!(
        labels,
        [0, 1],
        "PAI 1 = real = 0, PAI 2 (cloth) = attack = 1"
    );
    let batch = make_batch(data.source.as_ref(), &data.split.train, None).unwrap();
    assert_eq!(batch.shapes[1], vec![2, 3, 8, 8]);

    // a casia-surf manifest without its lists is rejected, naming the field
    let err = parse_manifest(
        "name = \"s\"\nformat = \"casia-surf\"\n[images]\nroot = \".\"\n",
        "s.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("images.train_list"), "{err}");
}

#[test]
fn a_casia_surf_list_opened_directly_finds_its_sibling_lists() {
    use mmanet_core::data::manifest::SURF_LISTS;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (k, list) in SURF_LISTS.iter().enumerate() {
        let mut lines = String::new();
        for i in 0..(2 + k) {
            let paths: Vec<String> = ["color", "depth", "ir"]
                .iter()
                .map(|m| format!("split{k}/s{i}/{m}.png"))
                .collect();
            for p in &paths {
                write_png(&root.join(p), 24, 24, 30 * i as u8);
            }
            lines += &format!("{} {}\n", paths.join(" "), i % 2);
        }
        std::fs::write(root.join(list), lines).unwrap();
    }
    let data = prepare_manifest(&root.join("train_list.txt"), false).unwrap();
    assert_eq!(data.source.name(), "casia-surf");
    assert_eq!(
        [
            data.split.train.len(),
            data.split.val.len(),
            data.split.test.len()
        ],
        [2, 3, 4]
    );
    assert_eq!(data.source.class_names(), ["attack", "real"]);
    assert_eq!(
        data.source.modalities()[0].kind,
        ModalityKind::Image {
            channels: 3,
            height: 112,
            width: 112
        }
    );
    // any of the three lists opens the same dataset
    let again = prepare_manifest(&root.join("test_private_list.txt"), false).unwrap();
    assert_eq!(again.split, data.split);
    // a missing sibling list is named
    std::fs::remove_file(root.join("val_private_list.txt")).unwrap();
    let err = prepare_manifest(&root.join("train_list.txt"), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("train_list.txt") && err.contains("holds no val_private_list.txt"),
        "{err}"
    );
}
