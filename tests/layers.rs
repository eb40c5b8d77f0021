//! The layer rule (README, "Layout"): a module imports only its own layer and the layers below,
//! components do not import each other, and no two folders import each other in a circle.
//! Reads every `crate::`, `super::` and `self::` path under `src/` and `crates/core/src/` (use
//! trees included) and
//! resolves it to the module it names. Test files (`tests.rs`, `#[cfg(test)]` blocks) may
//! reach anything: they assemble whole graphs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer.
const LAYERS: [(u8, &[&str]); 5] = [
    (0, &["data", "telemetry", "config", "settings"]),
    (1, &["component"]),
    (2, &["receivers", "processors", "exporters"]),
    (3, &["pipeline"]),
    (4, &["components", "app", "cli", "main", "lib"]),
];

/// Modules in a layer-2 folder that its components share; they import no component.
const SHARED: [&str; 5] = [
    "receivers::intake",
    "processors::hash",
    "processors::token_bucket",
    "processors::trace_cache",
    "exporters::otlp_client",
];

fn layer(top: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(_, mods)| mods.contains(&top))
        .map(|(l, _)| *l)
}

/// The module path of a file: `src/processors/session/mod.rs` -> [processors, session].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && (stem == "lib" || stem == "main")) {
        parts.push(stem.to_string());
    }
    if parts.is_empty() {
        parts.push(stem.to_string());
    }
    parts
}

/// Source without comments, string literals and `#[cfg(test)]` items.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i..].starts_with(b"#[cfg(test)]") {
            // Skip the attribute and the item after it: to its `;` or its balanced braces.
            i += "#[cfg(test)]".len();
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path a file names, as written (`crate::a::b`, `super::x`, use trees expanded), each
/// with the inline modules (`mod hold { ... }`) it sits in.
fn paths(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    // Inline modules open here, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let starts = |kw: &str| {
            let k: Vec<char> = kw.chars().collect();
            chars[i..].starts_with(&k) && (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':')
        };
        if starts("mod ") {
            let mut j = i + 4;
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            if j < chars.len() && chars[j] == '{' {
                depth += 1;
                inline.push((name, depth));
                i = j + 1;
                continue;
            }
        }
        match chars[i] {
            '{' => depth += 1,
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|kw| starts(kw));
        match root {
            Some(kw) => {
                let head = vec![kw.trim_end_matches("::").to_string()];
                i += kw.len();
                let mut here = Vec::new();
                tree(&chars, &mut i, head, &mut here);
                let within: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                found.extend(here.into_iter().map(|p| (within.clone(), p)));
            }
            None => i += 1,
        }
    }
    found
}

/// Reads a path tree after `prefix::`, pushing each full path.
fn tree(c: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(i);
    if *i < c.len() && c[*i] == '{' {
        *i += 1;
        loop {
            skip_ws(i);
            if *i >= c.len() {
                return;
            }
            if c[*i] == '}' {
                *i += 1;
                return;
            }
            if c[*i] == ',' {
                *i += 1;
                continue;
            }
            let before = *i;
            tree(c, i, prefix.clone(), out);
            if *i == before {
                *i += 1;
            }
        }
    }
    let mut path = prefix;
    loop {
        let start = *i;
        while *i < c.len() && is_ident(c[*i]) {
            *i += 1;
        }
        if *i == start {
            break;
        }
        path.push(c[start..*i].iter().collect());
        if c[*i..].starts_with(&[':', ':']) {
            *i += 2;
            if *i < c.len() && c[*i] == '{' {
                tree(c, i, path.clone(), out);
                return;
            }
        } else {
            break;
        }
    }
    out.push(path);
}

/// Resolves a written path against the module it appears in, to an absolute module path.
fn resolve(module: &[String], written: &[String]) -> Vec<String> {
    let mut abs: Vec<String> = Vec::new();
    let mut rest = written;
    match written.first().map(String::as_str) {
        Some("crate") => rest = &written[1..],
        Some("self") => {
            abs = module.to_vec();
            rest = &written[1..];
        }
        Some("super") => {
            abs = module.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                abs.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    abs.extend(rest.iter().cloned());
    abs
}

/// The unit a path belongs to for the sibling rule: `processors::session` for layer 2,
/// the top-level module otherwise.
fn unit(path: &[String]) -> String {
    match path.first().map(String::as_str) {
        Some(top) if layer(top) == Some(2) && path.len() > 1 => format!("{top}::{}", path[1]),
        Some(top) => top.to_string(),
        None => String::new(),
    }
}

/// Every breach of the rule in `files` (relative path under `src/`, text).
fn breaches(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let rel_path = Path::new(rel);
        if rel_path.file_name().is_some_and(|f| f == "tests.rs") {
            continue;
        }
        let module = module_of(rel_path);
        let Some(top) = module.first().cloned() else {
            continue;
        };
        let Some(from) = layer(&top) else {
            out.push(format!(
                "{rel}: module `{top}` is in no layer (add it to LAYERS)"
            ));
            continue;
        };
        let me = unit(&module);
        for (within, written) in paths(&code_only(text)) {
            let mut here = module.clone();
            here.extend(within);
            let target = resolve(&here, &written);
            let Some(to_top) = target.first() else {
                continue;
            };
            let Some(to) = layer(to_top) else {
                // Items declared at the crate root (macros) or unknown names.
                continue;
            };
            if *to_top != top {
                folders
                    .entry(top.clone())
                    .or_default()
                    .insert(to_top.clone());
            }
            let shown = written.join("::");
            if to > from {
                out.push(format!(
                    "{rel}: layer {from} (`{top}`) imports layer {to}: `{shown}`"
                ));
            } else if from == 2 && to == 2 {
                let them = unit(&target);
                let shared_target = SHARED.contains(&them.as_str());
                let shared_me = SHARED.contains(&me.as_str());
                if them != me && (!shared_target || shared_me || !same_folder(&me, &them)) {
                    out.push(format!(
                        "{rel}: component `{me}` imports another component: `{shown}`"
                    ));
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&folders) {
        out.push(format!(
            "import circle between folders: {}",
            cycle.join(" -> ")
        ));
    }
    out
}

fn same_folder(a: &str, b: &str) -> bool {
    a.split("::").next() == b.split("::").next()
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == n) {
            let mut c = stack[pos..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).expect("under src");
            let text = std::fs::read_to_string(&p).expect("read file");
            out.push((rel.to_string_lossy().into_owned(), text));
        }
    }
}

#[test]
fn every_module_imports_only_its_layer_and_below() {
    // Layers 0-1 are the `spangate-core` crate, whose `crate::` paths name the same modules
    // spangate re-exports; its lib.rs only declares them.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let root = manifest.join("src");
    sources(&root, &root, &mut files);
    let core = manifest.join("crates/core/src");
    let mut core_files = Vec::new();
    sources(&core, &core, &mut core_files);
    assert!(
        core_files.len() > 20,
        "read {} core files",
        core_files.len()
    );
    files.extend(core_files.into_iter().filter(|(rel, _)| rel != "lib.rs"));
    assert!(files.len() > 50, "read {} files", files.len());
    let found = breaches(&files);
    assert!(
        found.is_empty(),
        "the layer rule is broken:\n{}",
        found.join("\n")
    );
}

/// The check itself: each kind of breach is caught.
#[test]
fn wrong_imports_are_caught() {
    let file = |rel: &str, text: &str| (rel.to_string(), text.to_string());
    let found = breaches(&[
        file(
            "component/mod.rs",
            "use crate::pipeline::{Fanout, segment::Segment};",
        ),
        file(
            "processors/tail_sampling/store.rs",
            "use crate::{data::SpanBatch, processors::session::SessionLink};\nuse super::policy::Policies;",
        ),
        file("processors/hash.rs", "fn f() { crate::processors::batch::x(); }"),
        file("processors/batch.rs", "use crate::processors::hash::fnv;"),
        file("data/mod.rs", "// crate::pipeline in a comment\nuse crate::config::Problems;"),
        file("config/mod.rs", "use crate::data::SpanBatch;"),
        file(
            "processors/session/mod.rs",
            "mod hold { use super::SessionProcessor; fn f() { if x { y } } }\nuse super::hash::h;",
        ),
        file(
            "receivers/otlp/mod.rs",
            "#[cfg(test)]\nmod tests { use crate::components::x; }\nfn g() { let s = \"crate::app\"; }",
        ),
    ]);
    let expect = [
        "component/mod.rs: layer 1 (`component`) imports layer 3: `crate::pipeline::Fanout`",
        "component/mod.rs: layer 1 (`component`) imports layer 3: `crate::pipeline::segment::Segment`",
        "processors/tail_sampling/store.rs: component `processors::tail_sampling` imports another component: `crate::processors::session::SessionLink`",
        "processors/hash.rs: component `processors::hash` imports another component: `crate::processors::batch::x`",
        "import circle between folders: config -> data -> config",
    ];
    assert_eq!(found, expect, "{found:#?}");
}
