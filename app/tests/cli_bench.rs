//! `mmanet bench train` end to end, quickly: the tiny convnet, the MLP and the tiny ESANet on the
//! CPU, one timed step each; the table and the JSON rows are whole and the parameter counts are
//! the networks' (the same counts the PyTorch references in `bench/` build). Timings are not
//! asserted — speed is measured by the bench, never by a test.

use std::process::{Command, Output};

fn mmanet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmanet"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bench_train_times_both_steps_and_the_deployment_forward() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let out = mmanet(&[
        "bench",
        "train",
        "--device",
        "cpu",
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--size",
        "32",
        "--warmup",
        "0",
        "--iters",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| tiny | SF-MD | 208173 | 4 |",
        "| tiny | MMANet | 383343 | 4 |",
        "| tiny | deployment forward | 208173 | 4 |",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let ms = r["median_ms"].as_f64().unwrap();
        let per_s = r["samples_per_s"].as_f64().unwrap();
        assert!(
            ms > 0.0 && (per_s - 4.0 / ms * 1e3).abs() < 1e-6 * per_s,
            "{r}"
        );
    }

    // the MLP preset ignores --size; bad arguments are clear errors
    let out = mmanet(&[
        "bench", "train", "--device", "cpu", "--preset", "mlp", "--batch", "8", "--warmup", "0",
        "--iters", "1", "--method", "mmanet",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("| mlp | MMANet |"));
    for (args, want) in [
        (vec!["--batch", "0"], "--batch must be"),
        (vec!["--iters", "0"], "--iters must be"),
        (vec!["--size", "8"], "--size must be"),
    ] {
        let out = mmanet(&[&["bench", "train", "--device", "cpu"], &args[..]].concat());
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_train_times_the_segmentation_steps_and_reports_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("seg.json");
    let out = mmanet(&[
        "bench",
        "train",
        "--device",
        "cpu",
        "--threads",
        "2",
        "--preset",
        "seg-tiny",
        "--batch",
        "2",
        "--height",
        "64",
        "--width",
        "96",
        "--warmup",
        "0",
        "--iters",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("device: cpu (Burn flex backend, 2 threads)"),
        "{stdout}"
    );
    // the ESANet `tiny` counts, equal to bench/esanet_torch.py --check-params
    for row in [
        "| seg-tiny | SF-MD | 204210 | 2 |",
        "| seg-tiny | MMANet | 242514 | 2 |",
        "| seg-tiny | deployment forward | 204210 | 2 |",
    ] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["cpu_threads"], 2);
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3);

    for (args, want) in [
        (vec!["--height", "100"], "--height must be a multiple of 32"),
        (vec!["--threads", "0"], "--threads"),
    ] {
        let out = mmanet(
            &[
                &["bench", "train", "--device", "cpu", "--preset", "seg-tiny"],
                &args[..],
            ]
            .concat(),
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
