//! A full disk and a read-only output folder, for real: `mmanet demo` writes its run on a small
//! tmpfs (mounted in a private mount namespace, so no privileges are needed where user
//! namespaces are allowed). When the disk fills up the run stops with an error naming the file
//! and no temporary file is left behind; on the folder remounted read-only `--resume` refuses
//! with the folder named and changes nothing; with room again, `--resume` finishes with tables
//! identical to an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::process::Command;

const DEMO: [&str; 7] = [
    "demo",
    "--epochs",
    "4",
    "--device",
    "cpu",
    "--set",
    "methods=[\"sf-md\"]",
];

/// Runs the demo into `output` (`--resume` when `resume`), returning its stderr.
fn demo(output: &Path, resume: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmanet"));
    cmd.args(DEMO).arg("--output").arg(output);
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    files.sort();
    files
}

/// The steps on the small disk, as one shell script run in a private mount namespace: the
/// tmpfs lives only as long as the script, so each state is copied out to `$OUTER`.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o "size=$SIZE" tmpfs "$DISK" || { echo "cannot mount a tmpfs on $DISK" >&2; exit 90; }
run() { "$MMANET" "$@" --output "$DISK/out"; }
run "$@" 2> "$OUTER/full.err"; echo $? > "$OUTER/full.rc"
cp -a "$DISK/out" "$OUTER/after-full"
mount -o remount,ro "$DISK" || exit 91
run "$@" --resume 2> "$OUTER/read-only.err"; echo $? > "$OUTER/read-only.rc"
cp -a "$DISK/out" "$OUTER/after-read-only"
mount -o remount,rw,size=256m "$DISK" || exit 92
run "$@" --resume > "$OUTER/resumed.out" 2> "$OUTER/resumed.err"; echo $? > "$OUTER/resumed.rc"
cp -a "$DISK/out" "$OUTER/resumed"
"#;

#[test]
fn a_full_disk_and_a_read_only_folder_are_clear_errors_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // the uninterrupted run, and how much it writes
    let whole = dir.path().join("whole");
    let (ok, err) = demo(&whole, false);
    assert!(ok, "{err}");
    let written: usize = snapshot(&whole).iter().map(|(_, b)| b.len()).sum();

    // a disk with room for about half of it
    let disk = dir.path().join("disk");
    let outer = dir.path().join("outer");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(&outer).unwrap();
    let status = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", SCRIPT, "sh"])
        .args(DEMO)
        .env("MMANET", env!("CARGO_BIN_EXE_mmanet"))
        .env("DISK", &disk)
        .env("OUTER", &outer)
        .env("SIZE", (written / 2).to_string())
        .status()
        .expect("util-linux `unshare` runs (the test needs a private mount namespace)");
    assert!(
        status.success(),
        "the script failed ({status}): the test needs mount namespaces (unshare --map-root-user --mount)"
    );
    let read = |name: &str| std::fs::read_to_string(outer.join(name)).unwrap();
    let run = |state: &str| outer.join(state).join("mfeat-demo");

    // full: a clear error naming the file, nothing half-written left behind, the work so far kept
    let err = read("full.err");
    assert_ne!(
        read("full.rc").trim(),
        "0",
        "the run cannot succeed on a full disk"
    );
    assert!(
        err.contains("No space left on device")
            && err.contains("mfeat-demo/")
            && err.contains("free some space, then resume"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    eprintln!("full disk: {err}");
    let after_full = snapshot(&run("after-full"));
    assert!(
        after_full
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains(".tmp-")),
        "no temporary file is left: {:?}",
        after_full.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        after_full
            .iter()
            .any(|(p, _)| p.ends_with("checkpoint.bin") || p.ends_with("checkpoint.prev.bin")),
        "the disk filled up after the first checkpoint: {:?}",
        after_full.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );

    // read-only: refused with the folder named, nothing changed
    let err = read("read-only.err");
    assert_ne!(read("read-only.rc").trim(), "0");
    eprintln!("read-only: {err}");
    assert!(
        err.contains("Read-only file system")
            && err.contains("mfeat-demo")
            && err.contains("writable disk"),
        "{err}"
    );
    assert!(
        snapshot(&run("after-read-only")) == after_full,
        "a refused run changes nothing"
    );

    // room again: --resume finishes, with the uninterrupted run's tables
    assert_eq!(read("resumed.rc").trim(), "0", "{}", read("resumed.err"));
    let said = read("resumed.out") + &read("resumed.err");
    assert!(said.contains("resuming after epoch"), "{said}");
    for file in ["results.md", "reports.json"] {
        assert_eq!(
            std::fs::read_to_string(whole.join("mfeat-demo").join(file)).unwrap(),
            std::fs::read_to_string(run("resumed").join(file)).unwrap(),
            "{file}"
        );
    }
}
