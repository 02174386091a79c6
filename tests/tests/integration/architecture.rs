//! The layering of `mmanet-core` (docs/notes/architecture.md), checked on its sources: no
//! import circle between its files, `data/` below the config, the tasks and the models, and
//! the method's settings a leaf, and the tasks named only where they are registered. A file imports another when it names a path into it
//! (`crate::a::b`, `super::x`, a `use crate::a::{b, c}` group), outside comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as its path relative to `root` (`task/mod.rs`).
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a readable source folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under the root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The module path of a file: `task/mod.rs` → `["task"]`, `lib.rs` → `[]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The source without `//` comments (doc comments included).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a source names after `prefix` (`crate::` or `super::`), with the items of a
/// `{…}` group that follows as paths of their own.
fn named_paths(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[i + prefix.len()..];
        if preceded_by_ident {
            continue;
        }
        let end = rest.find(|c: char| !is_path(c)).unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(':');
        let base: Vec<String> = path.split("::").map(str::to_string).collect();
        out.push(base.clone());
        if rest[..end].ends_with("::") && rest[end..].starts_with('{') {
            let close = rest[end..].find('}').map_or(rest.len(), |j| end + j);
            for item in rest[end + 1..close].split(',') {
                let item = item.trim().split([' ', ':']).next().unwrap_or("");
                if item.starts_with(|c: char| c.is_ascii_lowercase()) && item != "self" {
                    let mut p = base.clone();
                    p.push(item.to_string());
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The import graph of the crate's files.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, src, &mut files);
    let modules: BTreeMap<Vec<String>, String> =
        files.iter().map(|f| (module_of(f), f.clone())).collect();
    let resolve = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|k| modules.get(&path[..k]).cloned())
    };
    let mut graph = BTreeMap::new();
    for file in &files {
        let text = without_comments(&std::fs::read_to_string(src.join(file)).expect("readable"));
        let me = module_of(file);
        let mut deps = BTreeSet::new();
        for path in named_paths(&text, "crate::") {
            deps.extend(resolve(&path));
        }
        // `super::x` from `a/b.rs` (module a::b) or `a/mod.rs`'s children
        let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
        for path in named_paths(&text, "super::") {
            deps.extend(resolve(&[parent.clone(), path].concat()));
        }
        deps.remove(file);
        graph.insert(file.clone(), deps);
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(node, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src")
}

#[test]
fn core_has_no_import_circle() {
    let graph = import_graph(&core_src());
    assert!(graph.len() > 40, "read the crate's files ({})", graph.len());
    assert!(
        graph["train.rs"].contains("task/mod.rs"),
        "the parser sees imports"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" → "));
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", vec!["b.rs"]),
        ("b.rs", vec!["c.rs"]),
        ("c.rs", vec!["a.rs"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).expect("a cycle"),
        ["a.rs", "b.rs", "c.rs", "a.rs"]
    );
    let paths = named_paths("use crate::a::{b, c::D, Thing};", "crate::");
    assert_eq!(paths, [vec!["a"], vec!["a", "b"], vec!["a", "c"]]);
}

#[test]
fn data_and_settings_are_below_the_layers_that_use_them() {
    let graph = import_graph(&core_src());
    // what data/ and the method's settings may import: the leaves below them
    let leaves = ["error.rs", "modality.rs", "fsutil.rs"];
    for (file, deps) in &graph {
        if file.starts_with("data/") {
            for dep in deps {
                assert!(
                    dep.starts_with("data/") || leaves.contains(&dep.as_str()),
                    "{file} imports {dep}: data/ sits below config, task and model"
                );
            }
        }
    }
    for dep in &graph["mmanet_settings.rs"] {
        assert!(
            dep.starts_with("losses/") || leaves.contains(&dep.as_str()),
            "mmanet_settings.rs imports {dep}: the method's settings are a leaf"
        );
    }
}

/// Where the core may name one task (a variant of `TaskKind` or `LoadedData`): the task's own
/// file, the registration points, and the products that are task-specific by nature (a bundle's
/// typed loaders, prediction, the browser-fit estimate). The training pipeline — trainer, loss
/// terms, mining, stages, experiments, reports, run folders — is written once, generic over
/// `Task`, so a third task never edits it.
#[test]
fn only_the_registration_points_name_a_task() {
    let src = core_src();
    let mut files = Vec::new();
    rust_files(&src, &src, &mut files);
    let registration = [
        "config.rs",
        "prepare.rs",
        "experiment/entry.rs",
        "bundle.rs",
        "limits.rs",
    ];
    let names_a_task = |text: &str| {
        ["TaskKind::", "LoadedData::"].iter().any(|enum_| {
            ["Classification", "Segmentation"]
                .iter()
                .any(|variant| text.contains(&format!("{enum_}{variant}")))
        })
    };
    let mut naming = Vec::new();
    for file in &files {
        let text = without_comments(&std::fs::read_to_string(src.join(file)).expect("read"));
        if names_a_task(&text) {
            naming.push(file.clone());
            assert!(
                file.starts_with("task/")
                    || file.starts_with("predict/")
                    || registration.contains(&file.as_str()),
                "{file} names a task: dispatch through the `Task` trait or `AnyTaskData`, or \
                 register it in docs/notes/architecture.md"
            );
        }
    }
    assert!(
        naming.contains(&"prepare.rs".to_string()),
        "the check sees the registration points ({naming:?})"
    );
}
