//! The real binary in a real window: `mmanet gui --demo-script` under Xvfb (installed by
//! `scripts/setup.sh`) trains SF-MD and MMANet on mfeat through the app, mines a weak set,
//! switches a modality off in the explorer, trains a second run and compares the two, and saves
//! a screenshot of every panel; each screenshot must be a full-size, non-blank picture. With
//! `--script-task seg` it trains on synthetic RGB-D scenes and screenshots the explorer's label
//! maps with RGB-D and with RGB only: the two pictures must differ. With `--script-task antispoof`
//! the same on the synthetic anti-spoofing images, with all three modalities and with depth off.

use std::path::Path;
use std::process::Command;

/// Mean and standard deviation of the grey level, and the number of distinct colours.
fn picture_stats(path: &Path) -> (u32, u32, f64, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let greys: Vec<f64> = img
        .pixels()
        .map(|p| (f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 3.0)
        .collect();
    let mean = greys.iter().sum::<f64>() / greys.len() as f64;
    let std = (greys.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / greys.len() as f64).sqrt();
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    (w, h, std, colours.len())
}

/// Asserts that each `<name>.png` in `shots` is a full-size, non-blank picture.
fn assert_pictures(shots: &Path, names: &[&str]) {
    for name in names {
        let (w, h, std, colours) = picture_stats(&shots.join(format!("{name}.png")));
        assert!(w >= 960 && h >= 600, "{name}: {w}×{h}");
        assert!(
            std > 8.0 && colours > 16,
            "{name}.png looks blank: grey std {std:.1}, {colours} colours"
        );
    }
}

/// Asserts that the explorer's pictures `a` and `b` (with and without a modality) differ in
/// more than 1 % of their pixels.
fn assert_pictures_differ(shots: &Path, a: &str, b: &str) {
    let a = image::open(shots.join(format!("{a}.png")))
        .unwrap()
        .to_rgb8();
    let b = image::open(shots.join(format!("{b}.png")))
        .unwrap()
        .to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions());
    let changed = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    let share = changed as f64 / (a.width() * a.height()) as f64;
    assert!(
        share > 0.01,
        "only {:.2}% of the pixels changed",
        share * 100.0
    );
}

/// One X server at a time: two `xvfb-run -a` starting together can pick the same display.
static XVFB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `mmanet gui --demo-script` with `extra` arguments under Xvfb in `dir`; returns stdout.
fn run_demo_script(dir: &Path, extra: &[&str]) -> String {
    let _one_at_a_time = XVFB.lock().unwrap_or_else(|e| e.into_inner());
    let xvfb = Command::new("xvfb-run").arg("--help").output();
    assert!(
        xvfb.is_ok(),
        "xvfb-run is missing: run scripts/setup.sh (it installs the `xvfb` package)"
    );
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_mmanet"))
        .args(["gui", "--demo-script"])
        .args(extra)
        .arg("--screenshot-dir")
        .arg(dir.join("shots"))
        .arg("--script-output")
        .arg(dir.join("runs"))
        // the window renders on the software Vulkan adapter
        .env("WGPU_BACKEND", "vulkan")
        // where eframe would remember the app's state: a scripted run must leave it alone
        .env("XDG_DATA_HOME", dir.join("data-home"))
        .output()
        .expect("xvfb-run starts");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the demo script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[test]
fn demo_script_trains_and_screenshots_every_panel_in_a_real_window() {
    let dir = tempfile::tempdir().unwrap();
    let shots = dir.path().join("shots");
    // training on the CPU backend (no hardware GPU here), the window on its own wgpu device
    let stdout = run_demo_script(
        dir.path(),
        &["--gpu-sharing", "off", "--script-epochs", "4"],
    );
    assert!(stdout.contains("of its own"), "{stdout}");
    assert!(stdout.contains("gui-script: mined weak set: "), "{stdout}");
    assert!(stdout.contains("gui-script: ok"), "{stdout}");
    // the explorer answered for the switched-off pix view with every model
    let through = stdout
        .lines()
        .filter(|l| l.contains("through fou+mor:"))
        .count();
    assert_eq!(through, 3, "{stdout}");
    assert_pictures(&shots, &["training", "mining", "explorer", "data", "runs"]);
    assert!(
        !dir.path().join("data-home").exists(),
        "the scripted run wrote remembered state"
    );
    // the two runs the app trained are normal run folders, the second with β = 0.5
    let runs = mmanet_core::runs::list_runs(&dir.path().join("runs"));
    assert_eq!(runs.len(), 2);
    let mut betas = Vec::new();
    for run in &runs {
        let record = mmanet_core::runs::RunRecord::load(run).unwrap();
        let methods: Vec<&str> = record.reports.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["Teacher", "SF-MD", "MMANet"]);
        betas.push(record.config.mmanet.beta);
    }
    betas.sort_by(f64::total_cmp);
    assert_eq!(betas, [0.1, 0.5]);
}

#[test]
fn the_window_renders_on_burns_wgpu_device() {
    // `--gpu-sharing on`: egui renders on the instance, adapter, device and queue Burn created
    // (here the software adapter), as it does by default on a machine with a GPU; training
    // stays on the CPU, which is far faster than a software adapter
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_demo_script(
        dir.path(),
        &[
            "--gpu-sharing",
            "on",
            "--script-device",
            "cpu",
            "--script-epochs",
            "4",
        ],
    );
    assert!(stdout.contains("gui-script: ok"), "{stdout}");
    assert!(
        stdout.contains("gui-script: display and training share"),
        "{stdout}"
    );
    let (w, h, std, colours) = picture_stats(&dir.path().join("shots").join("mining.png"));
    assert!(w >= 960 && h >= 600, "{w}×{h}");
    assert!(
        std > 8.0 && colours > 16,
        "blank: grey std {std:.1}, {colours} colours"
    );
}

/// Runs the demo script of an image task (`seg`, `antispoof`: one run, the explorer with every
/// modality and with depth off) for `epochs` epochs on the CPU; checks that it ended well, mined
/// a weak set, saved full-size non-blank pictures of the panels and of the explorer with the
/// modalities `all` and `without_depth` (which must differ), and wrote one run folder. Returns
/// the script's output and that run's record.
fn image_task_script(
    task: &str,
    epochs: &str,
    all: &str,
    without_depth: &str,
) -> (String, mmanet_core::runs::RunRecord) {
    let dir = tempfile::tempdir().unwrap();
    let shots = dir.path().join("shots");
    let stdout = run_demo_script(
        dir.path(),
        &[
            "--gpu-sharing",
            "off",
            "--script-task",
            task,
            "--script-epochs",
            epochs,
        ],
    );
    assert!(stdout.contains("gui-script: ok"), "{stdout}");
    assert!(stdout.contains("gui-script: mined weak set: "), "{stdout}");
    let (all, without_depth) = (
        format!("explorer-{all}"),
        format!("explorer-{without_depth}"),
    );
    assert_pictures(
        &shots,
        &["training", "mining", &all, &without_depth, "data"],
    );
    // depth's picture greyed out, the answers (for segmentation the maps) changed
    assert_pictures_differ(&shots, &all, &without_depth);
    let runs = mmanet_core::runs::list_runs(&dir.path().join("runs"));
    assert_eq!(runs.len(), 1);
    (
        stdout,
        mmanet_core::runs::RunRecord::load(&runs[0]).unwrap(),
    )
}

#[test]
fn segmentation_demo_script_shows_the_label_map_change_without_depth() {
    let (stdout, record) = image_task_script("seg", "8", "rgb+depth", "rgb");
    // every model answered with RGB-D, then with depth switched off; each map shows several
    // classes (not a blank or one-class map)
    for through in ["through rgb+depth:", "through rgb:"] {
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(through)).collect();
        assert_eq!(lines.len(), 3, "{through}\n{stdout}");
        for line in lines {
            let classes: usize = line
                .rsplit(", ")
                .next()
                .and_then(|tail| tail.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no class count in `{line}`"));
            assert!(classes >= 2, "{line}");
        }
    }
    assert_eq!(
        record.config.task,
        mmanet_core::config::TaskKind::Segmentation
    );
}

#[test]
fn antispoof_demo_script_shows_the_images_and_answers_without_depth() {
    let (stdout, record) = image_task_script("antispoof", "4", "rgb+depth+ir", "rgb+ir");
    assert!(
        stdout.contains("training SF-MD and MMANet on synthetic-antispoof"),
        "{stdout}"
    );
    // every model answered for the sample with depth switched off
    let through = stdout
        .lines()
        .filter(|l| l.contains("through rgb+ir:"))
        .count();
    assert_eq!(through, 3, "{stdout}");
    assert_eq!(
        record.config.data.source,
        mmanet_core::config::DataSource::Synthetic
    );
}
