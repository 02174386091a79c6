//! Crash and resume: `mmanet demo` is killed with SIGKILL at several points — during the
//! teacher, during SF-MD, during MMANet after its first mining round — and each time `--resume`
//! continues; the final tables are identical to an uninterrupted run's. A newest checkpoint cut
//! short falls back to the one before it, with the same result.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn demo(output: &Path, resume: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmanet"));
    cmd.args([
        "demo",
        "--epochs",
        "6",
        "--device",
        "cpu",
        "--output",
        output.to_str().unwrap(),
        "--set",
        "methods=[\"sf-md\", \"mmanet\"]",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

#[test]
fn a_run_killed_at_any_point_resumes_to_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let out = demo(&whole, false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let crashed = dir.path().join("crashed");
    let run = crashed.join("mfeat-demo");
    let mut kills = 0;
    for point in [
        "teacher/checkpoint.bin",
        "sf-md/checkpoint.bin",
        "mmanet/checkpoint.bin",
    ] {
        let mut child = demo(&crashed, true).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if run.join(point).exists() {
                // SIGKILL on Unix: no chance to clean up
                child.kill().unwrap();
                kills += 1;
                break;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
    }
    assert!(kills >= 2, "the run was killed {kills} times");
    let out = demo(&crashed, true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same_tables = |run: &Path, what: &str| {
        for file in ["results.md", "reports.json"] {
            let a = std::fs::read_to_string(whole.join("mfeat-demo").join(file)).unwrap();
            let b = std::fs::read_to_string(run.join(file)).unwrap();
            assert_eq!(a, b, "{file} differs after {what}");
        }
    };
    same_tables(&run, "the crashes");

    // killed in MMANet's stage once it has two checkpoints, the newest then cut short (a disk
    // that filled up): `--resume` says so and goes on from the one before — same tables
    let corrupted = dir.path().join("corrupted");
    let run = corrupted.join("mfeat-demo");
    let mut child = demo(&corrupted, true).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let newest = run.join("mmanet/checkpoint.bin");
    while !(run.join("mmanet/checkpoint.prev.bin").exists() && newest.exists()) {
        assert!(
            child.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the stage ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // killed while the newest was being replaced, only the previous one is there (resume reads
    // it too); stand a copy in for the newest, to cut short
    let prev = run.join("mmanet/checkpoint.prev.bin");
    let bytes = std::fs::read(&newest).unwrap_or_else(|_| std::fs::read(&prev).unwrap());
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let out = demo(&corrupted, true)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("checkpoint.bin") && said.contains("resuming from the previous checkpoint"),
        "{said}"
    );
    same_tables(&run, "a corrupt checkpoint");
}
