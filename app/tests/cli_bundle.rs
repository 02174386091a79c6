//! `mmanet export` and `mmanet predict` from the command line: a short demo run exported as a
//! bundle that reads back with the run's method, names and test table; predictions on the test
//! split with `pix` dropped score the table's accuracy; CSV files in, CSV / JSON out; bad
//! arguments and bad files are clear errors.

use std::process::Command;

fn mmanet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmanet"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `mmanet` with `args`, asserts it succeeded, and returns its standard output.
fn mmanet_ok(args: &[&str]) -> String {
    let out = mmanet(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `mmanet` with `args` and asserts it failed with `want` in its error output.
fn bad(args: &[&str], want: &str) {
    let out = mmanet(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(want), "{args:?}: {stderr}");
}

#[test]
fn a_demo_run_exports_as_a_bundle_that_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    mmanet_ok(&[
        "demo",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--output",
        runs_arg,
        "--set",
        "methods=[\"sf-md\", \"mmanet\"]",
    ]);
    let run = runs.join("mfeat-demo");
    let bundle_path = dir.path().join("mfeat.mmanet");
    let stdout = mmanet_ok(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--method",
        "mmanet",
        "--out",
        bundle_path.to_str().unwrap(),
    ]);
    assert!(stdout.contains("MMANet on mfeat"), "{stdout}");
    let bytes = std::fs::read(&bundle_path).unwrap();
    let bundle = mmanet_core::bundle::Bundle::from_bytes(&bytes, "mfeat.mmanet").unwrap();
    assert_eq!(bundle.header.stage, "mmanet");
    assert_eq!(bundle.header.class_names.len(), 10);
    let names: Vec<&str> = bundle
        .header
        .modalities
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["pix", "fou", "mor"]);
    assert_eq!(bundle.header.test_report.as_ref().unwrap().rows.len(), 7);

    // a method the run did not train, an unknown method, a folder that is not a run
    let run_arg = run.to_str().unwrap();
    let out_arg = bundle_path.to_str().unwrap();
    bad(
        &[
            "export", "--run", run_arg, "--method", "sp", "--out", out_arg,
        ],
        "no finished `sp` stage",
    );
    bad(
        &[
            "export", "--run", run_arg, "--method", "best", "--out", out_arg,
        ],
        "`best` is not a method",
    );
    bad(
        &["export", "--run", runs_arg, "--out", out_arg],
        "is not a run folder",
    );

    // predict the test split with pix dropped: the table's fou+mor accuracy
    let record = mmanet_core::runs::RunRecord::load(&run).unwrap();
    let row = record
        .reports
        .iter()
        .find(|r| r.method == "MMANet")
        .unwrap()
        .rows
        .iter()
        .find(|r| r.label == "fou+mor")
        .unwrap()
        .accuracy;
    let model = bundle_path.to_str().unwrap();
    let stdout = mmanet_ok(&["predict", "--model", model, "--modalities", "fou,mor"]);
    let want = format!("fou+mor {:>24} {:>9.2}%", 400, row * 100.0);
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == want.split_whitespace().collect::<Vec<_>>()),
        "{want} not in {stdout}"
    );

    // CSV files in (the bundled mfeat views, header and label column), JSON and CSV out
    let mfeat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/data/mfeat");
    let view = |v: &str| format!("{v}={}", mfeat.join(format!("mfeat-{v}.csv")).display());
    let json_path = dir.path().join("p.json");
    mmanet_ok(&[
        "predict",
        "--model",
        model,
        &view("fou"),
        &view("mor"),
        "--out",
        json_path.to_str().unwrap(),
    ]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let predictions = json["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2000);
    assert_eq!(predictions[0]["id"], "row 1");
    assert_eq!(predictions[0]["seen"], serde_json::json!(["fou", "mor"]));
    assert_eq!(predictions[0]["label"], 0);
    // a row left empty is that modality absent
    let rows = dir.path().join("mor.csv");
    std::fs::write(&rows, "1,0,0,133.15,1.3117,1620.2\n,,,,,\n").unwrap();
    let pix_rows = dir.path().join("pix.csv");
    let pix_line = vec!["3"; 240].join(",");
    std::fs::write(&pix_rows, format!("{pix_line}\n{pix_line}\n")).unwrap();
    let csv_path = dir.path().join("p.csv");
    mmanet_ok(&[
        "predict",
        "--model",
        model,
        &format!("mor={}", rows.display()),
        &format!("pix={}", pix_rows.display()),
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let seen: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(seen, ["pix+mor", "pix"]);

    // the bundle's network in the prediction benchmark (it runs; speed is not asserted)
    let stdout = mmanet_ok(&[
        "bench", "predict", "--model", model, "--device", "cpu", "--batch", "1,3", "--warmup", "0",
        "--iters", "1",
    ]);
    assert!(
        stdout.contains("| MMANet on mfeat | 93386 | 3 |"),
        "{stdout}"
    );

    // bad files and arguments name what is wrong
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "1,2,3\n").unwrap();
    let short_arg = format!("mor={}", short.display());
    bad(
        &["predict", "--model", model, &short_arg],
        "short.csv:1: 3 columns, but the model's `mor` takes 6 features",
    );
    bad(
        &[
            "predict",
            "--model",
            model,
            &format!("depth={}", short.display()),
        ],
        "no modality `depth` (it has: pix, fou, mor)",
    );
    let png = dir.path().join("a.png");
    image::RgbImage::new(4, 4).save(&png).unwrap();
    bad(
        &[
            "predict",
            "--model",
            model,
            &format!("mor={}", png.display()),
        ],
        "not image files",
    );
    bad(
        &["predict", "--model", model, &short_arg, "--out", "p.txt"],
        "name a .csv or a .json file",
    );
    bad(
        &["predict", "--model", short.to_str().unwrap(), &short_arg],
        "is not an mmanet bundle",
    );
    bad(
        &["predict", "--model", model, "--modalities", "fou,ir"],
        "no modality `ir`",
    );
}

#[test]
fn a_segmentation_bundle_writes_label_maps() {
    use mmanet_core::data::rgbd::SegSource;
    use mmanet_core::data::scenes::{ScenesConfig, SyntheticScenes};
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    mmanet_ok(&[
        "demo",
        "--task",
        "seg",
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--output",
        runs.to_str().unwrap(),
        "--set",
        "methods=[\"sf-md\"]",
        "--set",
        "data.scenes.scenes=30",
    ]);
    let run = runs.join("scenes-demo");
    let model_path = dir.path().join("scenes.mmanet");
    let model = model_path.to_str().unwrap();
    mmanet_ok(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--method",
        "sf-md",
        "--out",
        model,
    ]);

    // the test split through depth alone: the table's mIoU and pixel accuracy, a map per scene
    let record = mmanet_core::runs::RunRecord::load(&run).unwrap();
    let row = record
        .reports
        .iter()
        .find(|r| r.method == "SF-MD")
        .unwrap()
        .rows
        .iter()
        .find(|r| r.label == "depth")
        .unwrap()
        .clone();
    let maps = dir.path().join("maps");
    let stdout = mmanet_ok(&[
        "predict",
        "--model",
        model,
        "--modalities",
        "depth",
        "--out",
        maps.to_str().unwrap(),
    ]);
    let want = format!(
        "all {} scenes: mIoU {:.2}%, pixel accuracy {:.2}%",
        row.samples,
        row.seg.as_ref().unwrap().miou * 100.0,
        row.accuracy * 100.0
    );
    assert!(stdout.contains(&want), "{want} not in {stdout}");
    let pngs = std::fs::read_dir(&maps).unwrap().count();
    assert_eq!(
        pngs,
        2 * row.samples,
        "an index map and a colour map per scene"
    );

    // a scene of one's own: an RGB image and a 16-bit depth PNG, or the RGB image alone
    let scenes = SyntheticScenes::generate(&ScenesConfig {
        scenes: 3,
        ..ScenesConfig::default()
    })
    .unwrap();
    let scene = scenes.scene(0).unwrap();
    let (w, h) = (scene.width as u32, scene.height as u32);
    let rgb = dir.path().join("room.png");
    image::RgbImage::from_raw(w, h, scene.rgb.clone())
        .unwrap()
        .save(&rgb)
        .unwrap();
    let depth = dir.path().join("room-depth.png");
    let depth_mm: Vec<u16> = scene.depth.iter().map(|&d| d as u16).collect();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, depth_mm)
        .unwrap()
        .save(&depth)
        .unwrap();
    let own = dir.path().join("own");
    for (inputs, seen) in [
        (
            vec![
                format!("rgb={}", rgb.display()),
                format!("depth={}", depth.display()),
            ],
            "rgb+depth",
        ),
        (vec![format!("rgb={}", rgb.display())], "rgb"),
    ] {
        let mut args = vec!["predict", "--model", model, "--out", own.to_str().unwrap()];
        args.extend(inputs.iter().map(String::as_str));
        let out = mmanet(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout.lines().find(|l| l.starts_with("room")).unwrap();
        assert_eq!(line.split_whitespace().nth(1), Some(seen), "{stdout}");
        let map = image::open(own.join("room.png")).unwrap().to_luma8();
        assert_eq!(map.dimensions(), (w, h));
        assert!(map.pixels().all(|p| p.0[0] < 7), "class indices");
    }

    // a depth map of another size, an RGB image as depth: named errors
    let small = dir.path().join("small-depth.png");
    image::ImageBuffer::<image::Luma<u16>, _>::new(8, 8)
        .save(&small)
        .unwrap();
    let rgb_arg = format!("rgb={}", rgb.display());
    bad(
        &[
            "predict",
            "--model",
            model,
            &rgb_arg,
            &format!("depth={}", small.display()),
        ],
        "depth is 8×8",
    );
    bad(
        &[
            "predict",
            "--model",
            model,
            &rgb_arg,
            &format!("depth={}", rgb.display()),
        ],
        "depth must be a 1-channel PNG",
    );
}

/// A CASIA-SURF-style image-list dataset in `dir` (3 samples per split, 3 PNGs each) and an
/// experiment config training a tiny ResNet-18-SE on it; returns the config's path.
fn write_face_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    for split in ["train", "val", "test"] {
        let mut list = String::new();
        for i in 0..4 {
            let paths: Vec<String> = ["color", "depth", "ir"]
                .iter()
                .map(|m| format!("{split}/s{i}/{m}.png"))
                .collect();
            for (m, p) in paths.iter().enumerate() {
                let path = dir.join(p);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let v = (60 * (i % 2) + 20 * m) as u32;
                image::RgbImage::from_fn(24, 20, |x, y| {
                    image::Rgb([v as u8, ((x * 9 + v) % 256) as u8, ((y * 11) % 256) as u8])
                })
                .save(&path)
                .unwrap();
            }
            list += &format!("{} {}\n", paths.join(" "), i % 2);
        }
        std::fs::write(dir.join(format!("{split}.txt")), list).unwrap();
    }
    std::fs::write(
        dir.join("faces.toml"),
        r#"name = "faces"
format = "casia-surf"
class_names = ["attack", "real"]

[images]
train_list = "train.txt"
val_list = "val.txt"
test_list = "test.txt"
size = 16
train_resize = 20
"#,
    )
    .unwrap();
    let config = dir.join("train.toml");
    std::fs::write(
        &config,
        r#"name = "faces"
output_dir = "runs"
methods = ["sf-md"]

[data]
source = "manifest"
manifest = "faces.toml"

[model]
image_preset = "tiny"

[teacher]
epochs = 2
batch_size = 2
lr = 0.01
dropout = { mode = "fixed", combination = [1, 1, 1] }

[student]
epochs = 2
batch_size = 2
lr = 0.01
dropout = { mode = "uniform" }
"#,
    )
    .unwrap();
    config
}

#[test]
fn an_image_bundle_predicts_one_sample_from_its_files_as_the_dataset_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_face_fixture(dir.path());
    let runs = dir.path().join("runs");
    mmanet_ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--device",
        "cpu",
        "--output",
        runs.to_str().unwrap(),
    ]);
    let model_path = dir.path().join("faces.mmanet");
    let model = model_path.to_str().unwrap();
    mmanet_ok(&[
        "export",
        "--run",
        runs.join("faces").to_str().unwrap(),
        "--method",
        "sf-md",
        "--out",
        model,
    ]);
    let bundle =
        mmanet_core::bundle::Bundle::from_bytes(&std::fs::read(&model_path).unwrap(), model)
            .unwrap();
    let prep = bundle
        .header
        .images
        .clone()
        .expect("the image preprocessing");
    assert_eq!((prep.size, prep.channels), (16, 3));

    let json = |path: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    // the test split from the manifest (labels known), and its sample s1 from its three files
    let split_out = dir.path().join("split.json");
    let manifest = dir.path().join("faces.toml");
    mmanet_ok(&[
        "predict",
        "--model",
        model,
        "--data",
        manifest.to_str().unwrap(),
        "--out",
        split_out.to_str().unwrap(),
    ]);
    let split = json(&split_out);
    let split = split["predictions"].as_array().unwrap();
    assert_eq!(split.len(), 4);
    let file = |m: &str| dir.path().join(format!("test/s1/{m}.png"));
    let one_out = dir.path().join("one.json");
    let args = [
        format!("rgb={}", file("color").display()),
        format!("depth={}", file("depth").display()),
        format!("ir={}", file("ir").display()),
    ];
    mmanet_ok(&[
        "predict",
        "--model",
        model,
        &args[0],
        &args[1],
        &args[2],
        "--out",
        one_out.to_str().unwrap(),
    ]);
    let one = json(&one_out);
    let one = &one["predictions"][0];
    assert_eq!(one["id"], "color.png");
    assert_eq!(one["seen"], serde_json::json!(["rgb", "depth", "ir"]));
    // test sample s1 is dataset sample 9 (4 train, 4 val before it)
    let same = split.iter().find(|p| p["id"] == "sample 9").unwrap();
    assert_eq!(one["probabilities"], same["probabilities"]);
    // the RGB image alone: the other two are absent
    let rgb_only = file("color");
    let stdout = mmanet_ok(&[
        "predict",
        "--model",
        model,
        "--rgb",
        rgb_only.to_str().unwrap(),
    ]);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("color.png") && l.contains(" rgb ")),
        "{stdout}"
    );
    // a file that is not an image is named
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, "not a png").unwrap();
    let out = mmanet(&[
        "predict",
        "--model",
        model,
        &format!("ir={}", fake.display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("fake.png") && stderr.contains("cannot decode image"),
        "{stderr}"
    );
}
