//! Repository rules checked by reading files, run by `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn members() -> Vec<PathBuf> {
    let root = root();
    let mut dirs = vec![root.join("xtask"), root.join("tests")];
    if let Ok(entries) = fs::read_dir(root.join("crates")) {
        dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    dirs
}

#[test]
fn every_member_inherits_the_workspace_lints() {
    for dir in members() {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} must have `[lints] workspace = true`",
            dir.display()
        );
    }
}

#[test]
fn every_crate_folder_is_named_like_its_crate() {
    for dir in fs::read_dir(root().join("crates")).unwrap().flatten() {
        let manifest = fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        let folder = dir.file_name().to_string_lossy().into_owned();
        assert!(
            manifest.contains(&format!("name = \"{folder}\"")),
            "crates/{folder} must hold the crate `{folder}`"
        );
    }
}

#[test]
fn every_source_file_starts_with_a_doc_comment() {
    let mut files = Vec::new();
    for dir in members() {
        rust_files(&dir, &mut files);
    }
    assert!(!files.is_empty());
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must start with a `//!` line saying what it is",
            f.display()
        );
    }
}

/// The names of `nova-llm-*` crates listed in the `[dependencies]` table of a manifest
/// (normal dependencies only: dev-dependencies may use anything).
fn internal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("nova-llm-") {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn crates_depend_only_on_what_architecture_md_allows() {
    // The table "Allowed dependencies between our crates" in ARCHITECTURE.md.
    let allowed: &[(&str, &[&str])] = &[
        ("nova-llm-core", &[]),
        ("nova-llm-mock", &["nova-llm-core"]),
        ("nova-llm-http", &["nova-llm-core"]),
        ("nova-llm-openai", &["nova-llm-core", "nova-llm-http"]),
        ("nova-llm-anthropic", &["nova-llm-core", "nova-llm-http"]),
        ("nova-llm-gemini", &["nova-llm-core", "nova-llm-http"]),
        ("nova-llm-provider", &["nova-llm-core"]),
        ("nova-llm-redis", &["nova-llm-core", "nova-llm-provider"]),
        (
            "nova-llm-gateway",
            &[
                "nova-llm-core",
                "nova-llm-provider",
                "nova-llm-redis",
                "nova-llm-mock",
                "nova-llm-openai",
                "nova-llm-anthropic",
                "nova-llm-gemini",
            ],
        ),
    ];
    for dir in fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let manifest = fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        let Some((_, ok)) = allowed.iter().find(|(n, _)| *n == name) else {
            continue; // the CLI may depend on anything
        };
        for dep in internal_dependencies(&manifest) {
            assert!(
                ok.contains(&dep.as_str()),
                "{name} may not depend on {dep} (see ARCHITECTURE.md)"
            );
        }
    }
    let sample = "[dependencies]\nnova-llm-core.workspace = true\n[dev-dependencies]\nnova-llm-mock.workspace = true\n";
    assert_eq!(internal_dependencies(sample), ["nova-llm-core"]);
}
