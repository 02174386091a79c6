//! `mmanet export` from the command line: a short demo run exported as a bundle that reads back
//! with the run's method, names and test table; bad arguments are clear errors.

use std::process::Command;

fn mmanet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmanet"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn a_demo_run_exports_as_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let runs_arg = runs.to_str().unwrap();
    let out = mmanet(&[
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = runs.join("mfeat-demo");
    let bundle_path = dir.path().join("mfeat.mmanet");
    let out = mmanet(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--method",
        "mmanet",
        "--out",
        bundle_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let bad = |args: &[&str], want: &str| {
        let out = mmanet(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    };
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
}
