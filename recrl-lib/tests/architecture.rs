//! The layering of `ARCHITECTURE.md`, checked on the source: every `crate::NAME` reference
//! (in `use` lines and inline paths) must point to a module of strictly lower rank, and the
//! files of one module must not reference each other in a cycle.
//!
//! The check reads `recrl-lib/src/**/*.rs` as text (no tch, no compilation), drops comments,
//! doc comments and string literals, resolves `crate::`, `super::` and `self::` paths (inline
//! `mod NAME { … }` blocks such as `mod tests` included) and compares the result with [`RANKS`].
//! `lib.rs` is the crate root and the `recrl` binary (`bin/recrl/`) is the CLI on top of
//! everything; neither is checked. A last rule: `audit` and `report`, which read runs, never
//! reference what launches one ([`LAUNCHERS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Rank of every top-level module of recrl-lib, bottom to top (ARCHITECTURE.md). A module may
/// reference only modules of strictly lower rank; `shield` and `explainer` are peers (same
/// rank), so neither may reference the other. A new module goes here and in ARCHITECTURE.md.
const RANKS: &[(&str, u32)] = &[
    // foundation, in its own rank order
    ("io", 0),
    ("paths", 1),
    ("stats", 1),
    ("tensorboard", 1),
    ("env", 2),
    ("record", 2),
    ("rng", 3),
    ("config", 4),
    ("assets", 5),
    ("display", 6),
    // pipeline steps
    ("data", 10),
    ("judge", 15),
    ("ranker", 20),
    ("shield", 30),
    ("explainer", 30),
    ("minilm", 30),
    ("sim", 40),
    ("ppo", 50),
    ("audit", 60),
    ("report", 70),
    ("sweep", 80),
];

/// What launches a run of step 5 (`ppo::arms::launch` and its re-exports, the loop): only the
/// CLI and the notebooks call these; the modules of [`READERS`] must not reference them.
const LAUNCHERS: &[&[&str]] = &[
    &["ppo", "arms", "launch"],
    &["ppo", "arms", "run_arm"],
    &["ppo", "arms", "run_arm_shown"],
    &["ppo", "arms", "prepare"],
    &["ppo", "arms", "ensure_checkpoint"],
    &["ppo", "run_arm"],
    &["ppo", "run", "train"],
    &["ppo", "train"],
];

/// The modules that read runs and never start one (ARCHITECTURE.md, "Where each piece of
/// `ppo::arms` lives").
const READERS: &[&str] = &["audit", "report"];

/// Items of the crate root (`lib.rs`) that are not modules: `crate::VERSION` and the
/// re-exported `tch` and `plotly` sit below every module.
const ROOT_ITEMS: &[&str] = &["VERSION", "tch", "plotly"];

/// One source file: its path under `src/` with `/` separators, and its text.
struct Source {
    rel: String,
    text: String,
}

/// A path as written in the source, resolved to segments from the crate root.
struct Reference {
    written: String,
    resolved: Vec<String>,
    line: usize,
    /// Inside a `#[cfg(test)]` inline module: checked for layering, not counted in file cycles.
    in_test: bool,
}

/// A reference from one file to another file of the same top-level module.
#[derive(Clone)]
struct FileEdge {
    to: String,
    written: String,
    line: usize,
}

#[test]
fn imports_point_only_downward_and_files_form_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(
        files.len() > 10,
        "found only {} files under {}",
        files.len(),
        src.display()
    );
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "{} architecture violation(s) (ARCHITECTURE.md: imports point only downward, no cycles):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn architecture_md_names_every_ranked_module() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path).expect("ARCHITECTURE.md at the repository root");
    let missing: Vec<&str> = RANKS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}

/// Each notebook's step (its file name's two-digit prefix) and the module of that step: a
/// notebook may use that module and anything below it, nothing above (ARCHITECTURE.md).
const NOTEBOOK_STEPS: &[(&str, &str)] = &[
    ("00", "display"),
    ("01", "data"),
    ("02", "ranker"),
    ("03", "shield"),
    ("04", "explainer"),
    ("05", "ppo"),
    ("06", "audit"),
    ("07", "report"),
];

#[test]
fn notebooks_use_nothing_above_their_step() {
    let rank: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let mut problems = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("notebooks/") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".ipynb") {
            continue;
        }
        seen += 1;
        let step = NOTEBOOK_STEPS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{name}: no step in NOTEBOOK_STEPS"));
        let limit = rank[step.1];
        let text = std::fs::read_to_string(&path).unwrap();
        for module in notebook_modules(&text) {
            match rank.get(module.as_str()) {
                Some(&r) if r > limit => problems.push(format!(
                    "{name} (step `{}`) uses `recrl_lib::{module}`, a later step",
                    step.1
                )),
                None if !ROOT_ITEMS.contains(&module.as_str()) => {
                    problems.push(unknown_module(&module, &name))
                }
                _ => {}
            }
        }
    }
    assert_eq!(seen, NOTEBOOK_STEPS.len(), "one notebook per step");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The top-level modules a notebook's text names: `recrl_lib::NAME` and the first segment of
/// each item of `use recrl_lib::{a, b::c}`.
fn notebook_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String { s.chars().take_while(|c| is_ident_char(*c)).collect() };
    for (i, _) in text.match_indices("recrl_lib::") {
        let rest = &text[i + "recrl_lib::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            for item in list.split(',') {
                let m = ident(item.trim());
                if !m.is_empty() {
                    out.insert(m);
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

#[test]
fn notebook_modules_reads_paths_and_use_lists() {
    let got = notebook_modules(
        r#""use recrl_lib::{config::Config, data, ppo};\n", "recrl_lib::report::run(&o)""#,
    );
    let want: BTreeSet<String> = ["config", "data", "ppo", "report"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// Every `.rs` file under `dir`, as paths relative to `root`, sorted.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>();
            out.push(Source {
                rel: rel.join("/"),
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
}

/// All violations in a tree of sources: references to unknown modules, references that do not
/// point strictly downward, and cycles between the files of one module. Empty when clean.
fn check(files: &[Source]) -> Vec<String> {
    let rank: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let files: Vec<&Source> = files
        .iter()
        .filter(|f| f.rel != "lib.rs" && !f.rel.starts_with("bin/"))
        .collect();
    let module_paths: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| (module_path(&f.rel), f.rel.clone()))
        .collect();
    let mut problems = Vec::new();
    let mut unknown = BTreeSet::new();
    let mut file_edges: BTreeMap<String, BTreeMap<String, FileEdge>> = BTreeMap::new();
    for f in &files {
        let here = module_path(&f.rel);
        let top = here[0].as_str();
        if !rank.contains_key(top) && unknown.insert(top.to_string()) {
            problems.push(unknown_module(top, &f.rel));
        }
        for r in references(&f.text, &here) {
            let Some(target) = r.resolved.first() else {
                continue;
            };
            if ROOT_ITEMS.contains(&target.as_str()) {
                continue;
            }
            if READERS.contains(&top) && launches(&r.resolved) {
                problems.push(format!(
                    "{} -> {} ({} at line {}): launches a run (only the CLI and the notebooks do)",
                    f.rel,
                    r.resolved.join("::"),
                    r.written,
                    r.line
                ));
            }
            if target != top {
                match (rank.get(top), rank.get(target.as_str())) {
                    (_, None) => {
                        if unknown.insert(target.clone()) {
                            problems.push(unknown_module(target, &f.rel));
                        }
                        problems.push(format!(
                            "{} -> {target} ({} at line {}): unknown module",
                            f.rel, r.written, r.line
                        ));
                    }
                    (Some(&from), Some(&to)) if to >= from => {
                        let why = if to == from { "peer" } else { "upward" };
                        problems.push(format!(
                            "{} -> {target} ({} at line {}): {why} import",
                            f.rel, r.written, r.line
                        ));
                    }
                    _ => {}
                }
                continue;
            }
            // Same top-level module: the file the path lands in (longest matching prefix).
            let to = (1..=r.resolved.len())
                .rev()
                .find_map(|n| module_paths.get(&r.resolved[..n]))
                .cloned()
                .unwrap_or_else(|| module_paths.get(&here[..1]).cloned().unwrap_or_default());
            if !to.is_empty() && to != f.rel && !r.in_test {
                let edge = FileEdge {
                    to: to.clone(),
                    written: r.written,
                    line: r.line,
                };
                file_edges
                    .entry(f.rel.clone())
                    .or_default()
                    .entry(to)
                    .or_insert(edge);
            }
        }
    }
    problems.extend(cycles(&file_edges));
    problems
}

/// Whether `path` (resolved from the crate root) is one of [`LAUNCHERS`] or inside one.
fn launches(path: &[String]) -> bool {
    LAUNCHERS
        .iter()
        .any(|l| path.len() >= l.len() && path.iter().zip(l.iter()).all(|(a, b)| a == b))
}

fn unknown_module(name: &str, seen_in: &str) -> String {
    format!(
        "module `{name}` (seen in {seen_in}) is not in the rank table: add it to RANKS in \
         recrl-lib/tests/architecture.rs and to ARCHITECTURE.md"
    )
}

/// `ppo/run.rs` -> [ppo, run]; `ppo/mod.rs` -> [ppo]; `io.rs` -> [io].
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Each cycle between files, once, printed with the edges that close it.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, FileEdge>>) -> Vec<String> {
    let mut seen: BTreeSet<BTreeSet<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for (from, tos) in edges {
        for (to, first) in tos {
            let Some(back) = path_between(edges, to, from) else {
                continue;
            };
            let mut members = BTreeSet::from([from.clone(), to.clone()]);
            members.extend(back.iter().map(|e| e.to.clone()));
            if !seen.insert(members) {
                continue;
            }
            let mut text = format!(
                "cycle: {from} -> {} ({} at line {})",
                first.to, first.written, first.line
            );
            let mut at = first.to.clone();
            for e in back {
                text.push_str(&format!(
                    "; {at} -> {} ({} at line {})",
                    e.to, e.written, e.line
                ));
                at = e.to;
            }
            out.push(text);
        }
    }
    out
}

/// The edges of a shortest path from `from` to `to` (breadth first), or `None`.
fn path_between(
    edges: &BTreeMap<String, BTreeMap<String, FileEdge>>,
    from: &str,
    to: &str,
) -> Option<Vec<FileEdge>> {
    let mut came: BTreeMap<String, (String, FileEdge)> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_string()]);
    let mut visited = BTreeSet::from([from.to_string()]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = Vec::new();
            let mut at = node;
            while let Some((prev, e)) = came.get(&at) {
                path.push(e.clone());
                at = prev.clone();
            }
            path.reverse();
            return Some(path);
        }
        for (next, e) in edges.get(&node).into_iter().flatten() {
            if visited.insert(next.clone()) {
                came.insert(next.clone(), (node.clone(), e.clone()));
                queue.push_back(next.clone());
            }
        }
    }
    None
}

/// Every `crate::…`, `super::…` and `self::…` path in `text` (a file of module `here`),
/// resolved from the crate root; `{…}` groups are expanded into one path per leaf.
fn references(text: &str, here: &[String]) -> Vec<Reference> {
    let tokens = tokenize(&strip_comments_and_strings(text));
    let mut out = Vec::new();
    let mut depth = 0usize;
    // Open inline modules: (name, brace depth inside them, gated by #[cfg(test)]).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut k = 0;
    while k < tokens.len() {
        let (tok, line) = (&tokens[k].0, tokens[k].1);
        match tok {
            Tok::LBrace => depth += 1,
            Tok::RBrace => {
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::LBrace)) =
                    (tok_at(&tokens, k + 1), tok_at(&tokens, k + 2))
                {
                    inline.push((name.clone(), depth + 1, after_cfg_test(&tokens, k)));
                }
            }
            Tok::Ident(w) if is_path_start(w) && starts_path(&tokens, k) => {
                let (paths, next) = parse_path(&tokens, k, Vec::new());
                let mut scope: Vec<String> = here.to_vec();
                scope.extend(inline.iter().map(|(n, _, _)| n.clone()));
                let in_test = inline.iter().any(|(_, _, t)| *t);
                for raw in paths {
                    if let Some(resolved) = resolve(&scope, &raw) {
                        let written = raw.join("::");
                        out.push(Reference {
                            written,
                            resolved,
                            line,
                            in_test,
                        });
                    }
                }
                k = next;
                continue;
            }
            _ => {}
        }
        k += 1;
    }
    out
}

/// Whether the `mod` at token `k` (after an optional `pub`) carries `#[cfg(test)]`.
fn after_cfg_test(tokens: &[(Tok, usize)], k: usize) -> bool {
    let mut end = k;
    if end > 0 && matches!(tok_at(tokens, end - 1), Some(Tok::Ident(w)) if w == "pub") {
        end -= 1;
    }
    if end == 0 || tok_at(tokens, end - 1) != Some(&Tok::Other(']')) {
        return false;
    }
    let start = (0..end)
        .rev()
        .find(|&i| tok_at(tokens, i) == Some(&Tok::Other('#')));
    let words: Vec<&str> = start
        .map(|s| &tokens[s..end])
        .unwrap_or_default()
        .iter()
        .filter_map(|(t, _)| match t {
            Tok::Ident(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    words == ["cfg", "test"]
}

fn is_path_start(w: &str) -> bool {
    matches!(w, "crate" | "super" | "self")
}

/// A path starts here when `::` follows and neither `::` nor `$` (macro `$crate`) precedes.
fn starts_path(tokens: &[(Tok, usize)], k: usize) -> bool {
    let before = k.checked_sub(1).and_then(|i| tok_at(tokens, i));
    tok_at(tokens, k + 1) == Some(&Tok::ColonColon)
        && !matches!(before, Some(Tok::ColonColon) | Some(Tok::Other('$')))
}

fn tok_at(tokens: &[(Tok, usize)], k: usize) -> Option<&Tok> {
    tokens.get(k).map(|(t, _)| t)
}

/// The path starting at token `k` (after `prefix`), expanded over `{…}` groups, and the index
/// of the first token after it.
fn parse_path(
    tokens: &[(Tok, usize)],
    mut k: usize,
    prefix: Vec<String>,
) -> (Vec<Vec<String>>, usize) {
    let mut segs = prefix;
    if let Some(Tok::Ident(w)) = tok_at(tokens, k) {
        segs.push(w.clone());
        k += 1;
    }
    while tok_at(tokens, k) == Some(&Tok::ColonColon) {
        match tok_at(tokens, k + 1) {
            Some(Tok::Ident(w)) => {
                segs.push(w.clone());
                k += 2;
            }
            Some(Tok::Star) => return (vec![segs], k + 2),
            Some(Tok::LBrace) => {
                k += 2;
                let mut out = Vec::new();
                while let Some(t) = tok_at(tokens, k) {
                    match t {
                        Tok::RBrace => return (out, k + 1),
                        Tok::Ident(w) if w == "as" => k += 2,
                        Tok::Ident(w) if w == "self" => {
                            out.push(segs.clone());
                            k += 1;
                        }
                        Tok::Ident(_) => {
                            let (inner, next) = parse_path(tokens, k, segs.clone());
                            out.extend(inner);
                            k = next;
                        }
                        Tok::Star => {
                            out.push(segs.clone());
                            k += 1;
                        }
                        _ => k += 1,
                    }
                }
                return (out, k);
            }
            _ => break,
        }
    }
    (vec![segs], k)
}

/// Segments from the crate root for a path written in module `scope`, or `None` when `super`
/// climbs above the root.
fn resolve(scope: &[String], raw: &[String]) -> Option<Vec<String>> {
    let mut rest = raw;
    let mut abs: Vec<String> = match raw.first().map(String::as_str) {
        Some("crate") => {
            rest = &raw[1..];
            Vec::new()
        }
        Some("self") => {
            rest = &raw[1..];
            scope.to_vec()
        }
        Some("super") => {
            let mut abs = scope.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                abs.pop()?;
                rest = &rest[1..];
            }
            abs
        }
        _ => return None,
    };
    abs.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(abs)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    ColonColon,
    LBrace,
    RBrace,
    Star,
    Other(char),
}

/// Identifiers, `::`, braces and `*` with their 1-based line; everything else as `Other`.
fn tokenize(code: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if is_ident_char(ch) {
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::ColonColon, line));
            i += 2;
        } else {
            let tok = match ch {
                '{' => Tok::LBrace,
                '}' => Tok::RBrace,
                '*' => Tok::Star,
                _ => Tok::Other(ch),
            };
            out.push((tok, line));
            i += 1;
        }
    }
    out
}

fn is_ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// `src` with comments (line, block, doc), string literals (plain, byte, raw) and char
/// literals blanked out; newlines stay so line numbers are kept. Lifetimes stay.
fn strip_comments_and_strings(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_hashes(&c, i) {
            i += 1 + hashes + 1; // r, #…, "
            while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')))
            {
                blank(&mut out, c[i]);
                i += 1;
            }
            i += 1 + hashes;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = c.get(i) {
                    blank(&mut out, ch);
                }
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && next == Some('\\') {
            i += 3; // ', \, the escaped char
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The number of `#` when a raw string (`r"`, `r#"`, `br"`, …) starts at `i`.
fn raw_string_hashes(c: &[char], i: usize) -> Option<usize> {
    if c[i] != 'r' {
        return None;
    }
    let before = |j: usize| j.checked_sub(1).map(|p| c[p]);
    let ident_before = match before(i) {
        Some('b') => before(i - 1).is_some_and(is_ident_char),
        Some(ch) => is_ident_char(ch),
        None => false,
    };
    if ident_before {
        return None;
    }
    let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

#[cfg(test)]
mod checker {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Vec<Source> {
        files
            .iter()
            .map(|(rel, text)| Source {
                rel: rel.to_string(),
                text: text.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_clean_tree_passes() {
        let files = tree(&[
            ("lib.rs", "pub mod io; pub mod data; pub mod ppo;"),
            (
                "bin/recrl/main.rs",
                "mod keys;\nuse recrl_lib::ppo;\nuse crate::keys::RunKeys;\nfn main() {}",
            ),
            ("io.rs", "pub fn read() {}"),
            (
                "data/mod.rs",
                "mod store;\nuse crate::io::read;\npub use store::Dataset;",
            ),
            (
                "data/store.rs",
                "use super::Counts;\nuse crate::{io::{self, read}, VERSION};",
            ),
            ("ppo/mod.rs", "pub mod run;"),
            (
                "ppo/run.rs",
                "use crate::data::{Dataset, store::Checksums};\nfn f() { crate::io::read(); }",
            ),
        ]);
        assert_eq!(check(&files), Vec::<String>::new());
    }

    #[test]
    fn upward_peer_and_unknown_imports_fail_with_their_line() {
        let files = tree(&[
            (
                "data/mod.rs",
                "// crate::ppo in a comment is fine\nlet s = \"crate::ppo\";\nuse crate::ppo::Run;",
            ),
            (
                "shield/mod.rs",
                "fn f() {\n    crate::explainer::generate();\n}",
            ),
            ("ranker/mod.rs", "use crate::notebook::Table;"),
            ("ppo/mod.rs", ""),
            ("explainer/mod.rs", ""),
        ]);
        let problems = check(&files);
        assert!(
            problems.contains(
                &"data/mod.rs -> ppo (crate::ppo::Run at line 3): upward import".to_string()
            ),
            "{problems:#?}"
        );
        assert!(
            problems.contains(
                &"shield/mod.rs -> explainer (crate::explainer::generate at line 2): peer import"
                    .to_string()
            ),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("module `notebook`") && p.contains("ARCHITECTURE.md")),
            "{problems:#?}"
        );
        assert!(
            problems.contains(
                &"ranker/mod.rs -> notebook (crate::notebook::Table at line 1): unknown module"
                    .to_string()
            ),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn a_cycle_between_files_of_one_module_fails() {
        let files = tree(&[
            ("ppo/mod.rs", "pub mod run; pub mod resume; pub mod arms;"),
            ("ppo/resume.rs", "use super::run::RunOptions;"),
            ("ppo/run.rs", "\nuse super::resume::{self, Snapshot};"),
            ("ppo/arms.rs", "use crate::ppo::run::run;"),
        ]);
        let problems = check(&files);
        assert_eq!(
            problems,
            vec![
                "cycle: ppo/resume.rs -> ppo/run.rs (super::run::RunOptions at line 1); \
                  ppo/run.rs -> ppo/resume.rs (super::resume at line 2)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn readers_of_runs_that_launch_one_fail() {
        let files = tree(&[
            ("ppo/mod.rs", "pub mod arms;"),
            ("ppo/arms/mod.rs", "pub mod launch;\npub use launch::run_arm;"),
            ("ppo/arms/launch.rs", "use super::Arm;"),
            (
                "audit/mod.rs",
                "use crate::ppo::arms::{Baseline, Places};\nfn f() { crate::ppo::arms::run_arm(); }",
            ),
            ("report/run.rs", "use crate::ppo::arms::launch::prepare;"),
            ("sweep.rs", "use crate::ppo::arms::run_arm;"),
        ]);
        assert_eq!(
            check(&files),
            [
                "audit/mod.rs -> ppo::arms::run_arm (crate::ppo::arms::run_arm at line 2): \
                 launches a run (only the CLI and the notebooks do)",
                "report/run.rs -> ppo::arms::launch::prepare (crate::ppo::arms::launch::prepare \
                 at line 1): launches a run (only the CLI and the notebooks do)",
            ]
        );
    }

    #[test]
    fn test_modules_count_for_layering_but_not_for_cycles() {
        let files = tree(&[
            ("explainer/model.rs", "use super::fast;"),
            ("explainer/fast.rs", "#[cfg(test)]\nmod tests {\n use super::super::model::rope;\n use crate::ppo::x;\n}"),
        ]);
        let problems = check(&files);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems.iter().all(|p| !p.starts_with("cycle")),
            "{problems:#?}"
        );
        assert!(
            problems.contains(
                &"explainer/fast.rs -> ppo (crate::ppo::x at line 4): upward import".to_string()
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn inline_modules_and_super_in_mod_rs_resolve() {
        // `super::super` from `few_rows::tests` is `explainer::model`; `super::X` in a mod.rs
        // is the top-level module X.
        let here = module_path("explainer/few_rows.rs");
        let refs = references("#[cfg(test)]\nmod tests {\n use super::*;\n fn f() { super::super::model::rope(); }\n}", &here);
        let got: Vec<String> = refs.iter().map(|r| r.resolved.join("::")).collect();
        assert_eq!(got, ["explainer::few_rows", "explainer::model::rope"]);
        let refs = references("use super::io::read;", &module_path("data/mod.rs"));
        assert_eq!(refs[0].resolved, ["io", "read"]);
    }

    #[test]
    fn strings_chars_and_comments_are_blanked() {
        let code = "let a = r#\"crate::x\"#; let b = '\"'; /* crate::y /* nested */ */ let c: &'static str = \"\\\"crate::z\"; crate::w::f();";
        let refs = references(code, &module_path("ppo/run.rs"));
        let got: Vec<String> = refs.iter().map(|r| r.written.clone()).collect();
        assert_eq!(got, ["crate::w::f"]);
    }
}
