//! The shape of the code, checked: layers point down, the store owns the SQL, files stay small.
//!
//! A module here is one source file (`src/store/insert.rs` is `store::insert`, a `mod.rs` is
//! its folder's module). A module imports another when a `use` or a path in its code names
//! an item of it (`crate::…`, `super::…`, `self::…`); a name re-exported by a `mod.rs`
//! (`pub use insert::Batch`) counts as the module it comes from, so a facade that only
//! re-exports makes no circle. Code under `#[cfg(test)]` is not looked at: tests may reach
//! anywhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A crate's modules, their imports and where each import is written.
struct Crate {
    /// Module path (`store::insert`; the root is "") → its file.
    files: BTreeMap<String, PathBuf>,
    /// Module → imported module → the first `file:line` that imports it.
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        "main.rs" if parts.is_empty() => return None,
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    Some(parts.join("::"))
}

/// The code of a file without comments, string contents and `#[cfg(test)]` items, line by line.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = 0usize;
    let mut skip_depth: Option<i64> = None;
    let mut depth: i64 = 0;
    let mut pending_test = false;
    for line in text.lines() {
        let mut code = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let mut in_str = false;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if in_block > 0 {
                if c == '*' && next == Some('/') {
                    in_block -= 1;
                    i += 2;
                } else if c == '/' && next == Some('*') {
                    in_block += 1;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if in_str {
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == '"' {
                    in_str = false;
                    code.push('"');
                }
                i += 1;
                continue;
            }
            match (c, next) {
                ('/', Some('/')) => break,
                ('/', Some('*')) => {
                    in_block += 1;
                    i += 2;
                }
                ('"', _) => {
                    in_str = true;
                    code.push('"');
                    i += 1;
                }
                // A char literal such as '{' must not count as a brace.
                ('\'', _) if chars.get(i + 2) == Some(&'\'') => {
                    i += 3;
                }
                _ => {
                    code.push(c);
                    i += 1;
                }
            }
        }
        let trimmed = code.trim();
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
        }
        let opens = code.matches('{').count() as i64;
        let closes = code.matches('}').count() as i64;
        if skip_depth.is_none()
            && pending_test
            && !trimmed.starts_with("#[")
            && (opens > 0 || trimmed.ends_with(';'))
        {
            pending_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            }
            depth += opens - closes;
            out.push(String::new());
            continue;
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            out.push(String::new());
            continue;
        }
        out.push(code);
    }
    out
}

/// The paths a `use` tree names (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand_use(tree: &str) -> Vec<String> {
    fn go(prefix: &str, s: &str, out: &mut Vec<String>) {
        let s = s.trim();
        if let Some(open) = s.find('{') {
            let head = s[..open].trim().trim_end_matches("::");
            let inner = &s[open + 1..s.rfind('}').unwrap_or(s.len())];
            let base = join(prefix, head);
            let mut level = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        go(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            go(&base, &inner[start..], out);
        } else if !s.is_empty() {
            let s = s.split(" as ").next().unwrap_or(s).trim();
            if s == "self" {
                out.push(prefix.to_string());
            } else {
                out.push(join(prefix, s));
            }
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    go("", tree, &mut out);
    out
}

/// Paths written inline in code: `crate::x::y`, `super::x`, `self::x`.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            let before = at.checked_sub(1).map(|i| bytes[i]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
                continue;
            }
            // `pub(in crate::store)` names who may see an item, not an import.
            if code[..at].ends_with("(in ") {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_string());
        }
    }
    out
}

/// `use` statements (whole, possibly over several lines) and the line each starts on.
fn use_statements(lines: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim();
        if current.is_none() {
            let rest = t
                .strip_prefix("pub(crate) use ")
                .or_else(|| t.strip_prefix("pub(super) use "))
                .or_else(|| t.strip_prefix("pub use "))
                .or_else(|| t.strip_prefix("use "));
            if let Some(rest) = rest {
                current = Some((n + 1, String::new()));
                if let Some((_, s)) = current.as_mut() {
                    s.push_str(rest);
                }
            } else {
                continue;
            }
        } else if let Some((_, s)) = current.as_mut() {
            s.push(' ');
            s.push_str(t);
        }
        if let Some((at, s)) = current.take() {
            if let Some(stmt) = s.strip_suffix(';').or_else(|| s.find(';').map(|i| &s[..i])) {
                out.push((at, stmt.to_string()));
            } else {
                current = Some((at, s));
            }
        }
    }
    out
}

fn load(src: &Path) -> Crate {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut files = BTreeMap::new();
    let mut code = HashMap::new();
    for p in &paths {
        if let Some(m) = module_of(src, p) {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            code.insert(m.clone(), code_lines(&text));
            files.insert(m, p.clone());
        }
    }
    // Names a module re-exports from another: `pub use insert::{Batch, …}` in `store`.
    let mut reexports: HashMap<(String, String), String> = HashMap::new();
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let resolve_base = |module: &str, path: &str| -> Option<Vec<String>> {
        let mut segs: Vec<String> = path.split("::").map(str::to_string).collect();
        let mut base: Vec<String> = if module.is_empty() {
            Vec::new()
        } else {
            module.split("::").map(str::to_string).collect()
        };
        match segs.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                segs.remove(0);
            }
            Some("super") => {
                while segs.first().map(String::as_str) == Some("super") {
                    segs.remove(0);
                    base.pop()?;
                }
            }
            Some("self") => {
                segs.remove(0);
            }
            // A path relative to the module: only its own child modules are ours.
            Some(first) => {
                let mut child = base.clone();
                child.push(first.to_string());
                if !modules.contains(&child.join("::")) {
                    return None;
                }
            }
            None => return None,
        }
        base.extend(segs);
        Some(base)
    };
    for (m, lines) in &code {
        for (_, stmt) in use_statements(lines) {
            for path in expand_use(&stmt) {
                if let Some(full) = resolve_base(m, &path) {
                    if let Some(item) = full.last() {
                        let target = longest_module(&modules, &full);
                        if target != *m {
                            reexports.insert((m.clone(), item.clone()), target);
                        }
                    }
                }
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (m, lines) in &code {
        let file = files[m]
            .strip_prefix(root())
            .unwrap_or(&files[m])
            .display()
            .to_string();
        let mut refs: Vec<(usize, String)> = Vec::new();
        for (at, stmt) in use_statements(lines) {
            refs.extend(expand_use(&stmt).into_iter().map(|p| (at, p)));
        }
        for (n, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if t.starts_with("use ")
                || t.starts_with("pub use ")
                || t.starts_with("pub(crate) use ")
            {
                continue;
            }
            refs.extend(inline_paths(line).into_iter().map(|p| (n + 1, p)));
        }
        for (at, path) in refs {
            let Some(full) = resolve_base(m, &path) else {
                continue;
            };
            let mut target = longest_module(&modules, &full);
            // An item a module re-exports belongs to the module it comes from.
            let depth = if target.is_empty() {
                0
            } else {
                target.split("::").count()
            };
            if let Some(item) = full.get(depth) {
                let mut seen = 0;
                while let Some(t) = reexports.get(&(target.clone(), item.clone())) {
                    target = t.clone();
                    seen += 1;
                    if seen > 8 {
                        break;
                    }
                }
            }
            if target != *m {
                edges
                    .entry(m.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| format!("{file}:{at}"));
            }
        }
    }
    Crate { files, edges }
}

fn longest_module(modules: &BTreeSet<String>, full: &[String]) -> String {
    (0..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// The strongly connected groups of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: HashMap<String, usize>,
        low: HashMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let next: Vec<String> = t
            .edges
            .get(v)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for w in next {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low[v];
                t.low.insert(v.to_string(), lv.min(lw));
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low[v];
                t.low.insert(v.to_string(), lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: Vec<String> = edges.keys().cloned().collect();
    for v in nodes {
        if !t.index.contains_key(&v) {
            visit(&mut t, &v);
        }
    }
    t.out
}

fn describe(c: &Crate, group: &[String]) -> String {
    let mut s = format!("circle: {}\n", group.join(", "));
    for from in group {
        for (to, at) in c.edges.get(from).into_iter().flatten() {
            if group.contains(to) {
                s.push_str(&format!("  {from} -> {to}  ({at})\n"));
            }
        }
    }
    s
}

#[test]
fn no_import_circle_in_any_crate() {
    let mut report = String::new();
    for src in ["src", "parsers/src", "devices/src"] {
        let c = load(&root().join(src));
        assert!(c.files.len() > 5, "{src}: modules not found");
        for group in circles(&c.edges) {
            report.push_str(&format!("{src}: {}", describe(&c, &group)));
        }
    }
    assert!(report.is_empty(), "import circles:\n{report}");
}

#[test]
fn the_store_imports_nothing_above_it() {
    let c = load(&root().join("src"));
    let above = [
        "api", "web", "auth", "links", "cli", "uplink", "service", "http", "demo",
    ];
    let mut wrong = Vec::new();
    for (from, to) in &c.edges {
        if from != "store" && !from.starts_with("store::") {
            continue;
        }
        for (target, at) in to {
            let top = target.split("::").next().unwrap_or_default();
            if above.contains(&top) {
                wrong.push(format!("{from} -> {target} ({at})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the store imports from above it:\n{}",
        wrong.join("\n")
    );
}

/// SQL text in a string literal: a statement's keywords in the shape SQL writes them.
fn looks_like_sql(text: &str) -> bool {
    // The project writes SQL keywords in capitals; prose in lower case must not match.
    let t = text;
    let has = |a: &str, b: &str| t.find(a).is_some_and(|i| t[i..].contains(b));
    has("SELECT ", " FROM ")
        || t.contains("INSERT INTO ")
        || t.contains("DELETE FROM ")
        || has("UPDATE ", " SET ")
        || t.contains("CREATE TABLE")
        || t.contains("CREATE INDEX")
        || t.contains("PRAGMA ")
}

/// The string literals of a file (plain and raw), with their first line.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            continue;
        }
        let raw = c == 'r' && matches!(chars.get(i + 1), Some('"') | Some('#'));
        if c == '"' || raw {
            let start_line = line;
            let mut hashes = 0;
            if raw {
                i += 1;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) != Some(&'"') {
                    continue;
                }
            }
            i += 1;
            let mut s = String::new();
            while i < chars.len() {
                let ch = chars[i];
                if ch == '\n' {
                    line += 1;
                }
                if !raw && ch == '\\' {
                    if let Some(n) = chars.get(i + 1) {
                        s.push(*n);
                    }
                    i += 2;
                    continue;
                }
                if ch == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                s.push(ch);
                i += 1;
            }
            out.push((start_line, s));
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn no_sql_outside_the_store() {
    let mut paths = Vec::new();
    rust_files(&root().join("src"), &mut paths);
    let store = root().join("src/store");
    let mut found = Vec::new();
    for p in paths.iter().filter(|p| !p.starts_with(&store)) {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for (line, s) in string_literals(&text) {
            if looks_like_sql(&s) {
                let rel = p.strip_prefix(root()).unwrap_or(p).display().to_string();
                found.push(format!(
                    "{rel}:{line}: {}",
                    s.lines().next().unwrap_or("").trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside src/store/:\n{}",
        found.join("\n")
    );
}

#[test]
fn files_stay_small() {
    let mut paths = Vec::new();
    rust_files(&root().join("src"), &mut paths);
    let mut big = Vec::new();
    for p in &paths {
        let n = std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count();
        let limit = if p.ends_with("store/insert.rs") {
            600
        } else {
            900
        };
        if n >= limit {
            big.push(format!("{}: {n} lines (limit {limit})", p.display()));
        }
    }
    assert!(big.is_empty(), "{}", big.join("\n"));
}

#[test]
fn the_checker_sees_a_circle_and_a_statement() {
    // The checks above must be able to fail: a made-up pair of modules that import each other.
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    edges
        .entry("a".into())
        .or_default()
        .insert("b".into(), "x:1".into());
    edges
        .entry("b".into())
        .or_default()
        .insert("c".into(), "x:2".into());
    edges
        .entry("c".into())
        .or_default()
        .insert("a".into(), "x:3".into());
    edges
        .entry("c".into())
        .or_default()
        .insert("d".into(), "x:4".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    assert_eq!(
        expand_use("crate::store::{self, insert::{Batch, Outcome as O}, Store}"),
        vec![
            "crate::store",
            "crate::store::insert::Batch",
            "crate::store::insert::Outcome",
            "crate::store::Store"
        ]
    );
    let code = "let x = 1;\n#[cfg(test)]\nmod tests {\n    use crate::api::x;\n}\nfn f() { crate::web::g(); }\n";
    let lines = code_lines(code);
    assert!(lines.iter().all(|l| !l.contains("crate::api")));
    assert!(lines.iter().any(|l| l.contains("crate::web::g")));
    assert!(looks_like_sql("SELECT a FROM b"));
    assert!(!looks_like_sql("select the stall from the list"));
    let lits = string_literals("let q = r#\"DELETE FROM t\"#; let s = \"a\\\"b\";");
    assert_eq!(lits[0].1, "DELETE FROM t");
    assert_eq!(lits[1].1, "a\"b");
}

/// The types a crate defines (structs, enums, traits, type aliases; not associated types),
/// with where each is defined.
fn type_names(src: &Path) -> BTreeMap<String, Vec<String>> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let rel = p.strip_prefix(root()).unwrap_or(p).display().to_string();
        for (n, line) in code_lines(&text).iter().enumerate() {
            let t = line.trim_start();
            let indent = line.len() - t.len();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub(super) "))
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            for kw in ["struct ", "enum ", "trait ", "type "] {
                let Some(rest) = t.strip_prefix(kw) else {
                    continue;
                };
                // `type X = …;` inside an impl or trait is an associated type.
                if kw == "type " && indent > 0 {
                    continue;
                }
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names
                        .entry(name)
                        .or_default()
                        .push(format!("{rel}:{}", n + 1));
                }
            }
        }
    }
    names
}

#[test]
fn every_type_name_is_used_once_and_shadows_no_std_name() {
    let std_names = [
        "Send", "Sync", "Sized", "Copy", "Clone", "Option", "Result", "Box", "Vec", "String",
        "Default", "Drop", "Iterator", "Path", "Duration", "Ordering", "Error",
    ];
    // One workspace, one meaning per name: the service's code uses the decoders' and the
    // devices' types beside its own (a `Batch` of a link and a `Batch` of the store).
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for src in ["src", "parsers/src", "devices/src"] {
        for (name, at) in type_names(&root().join(src)) {
            all.entry(name).or_default().extend(at);
        }
    }
    let mut wrong = Vec::new();
    for (name, at) in all {
        if at.len() > 1 {
            wrong.push(format!(
                "{name} defined {} times: {}",
                at.len(),
                at.join(", ")
            ));
        }
        if std_names.contains(&name.as_str()) {
            wrong.push(format!("{name} shadows a std name: {}", at.join(", ")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
