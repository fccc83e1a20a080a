//! YAML read with errors a person can act on: `file:line:column: key.path:
//! message`, tabs and repeated keys named, Rust type names turned into
//! words, and a key's place in the text found again for checks made after
//! parsing.

use std::path::Path;

use crate::error::InputError;

pub(super) fn read_text(path: &Path, what: &'static str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| InputError::unreadable(path, what, e))
}

/// Parses YAML into `T`, with errors as `file:line:column: key.path: message`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, InputError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." || key == "?" {
            String::new()
        } else {
            key
        };
        let inner = e.into_inner();
        // serde_norway places errors raised inside a value at the start of
        // the enclosing mapping; find the value itself from the key path.
        let unknown_key = inner.to_string().contains("unknown field");
        let pos = locate(text, &key)
            .map(|(l, value_col, key_col)| (l, if unknown_key { key_col } else { value_col }))
            .or_else(|| inner.location().map(|l| (l.line(), l.column())))
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        let mut msg = inner.to_string();
        // serde_norway appends " at line L column C" and may prefix its own
        // (shorter) key path; our prefix says both.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        if let Some((prefix, rest)) = msg.split_once(": ") {
            if !prefix.contains(' ') && !key.is_empty() && key.starts_with(prefix) {
                msg = rest.to_string();
            }
        }
        // A tab in the indentation is what YAML's "cannot start any token"
        // most often means; the parser points elsewhere and never says tab.
        if let Some((line, col)) = indentation_tab(text) {
            if msg.contains("cannot start any token") || msg.contains("mapping values") {
                return InputError::Config(format!(
                    "{}:{line}:{col}: a tab character indents this line; YAML indents with spaces only",
                    path.display()
                ));
            }
        }
        // serde reports a repeated key at the start of the enclosing
        // mapping; point at the repetition, and at the first one.
        if let Some(dup) = msg
            .strip_prefix("duplicate field `")
            .and_then(|r| r.strip_suffix('`'))
            .map(str::to_string)
        {
            let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            let parent = if key.ends_with(&dup) { parent } else { key.as_str() };
            if let Some((first, second, col)) = repeated_key(text, parent, &dup) {
                let at = if parent.is_empty() {
                    String::new()
                } else {
                    format!("{parent}: ")
                };
                return InputError::Config(format!(
                    "{}:{second}:{col}: {at}the key `{dup}` appears twice (first on line {first}); keep one",
                    path.display()
                ));
            }
        }
        let msg = plain_types(&msg);
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        InputError::Config(format!(
            "{}{pos}: {key}{msg}; see docs/config.md",
            path.display()
        ))
    })
}

/// Line and column (1-based) of the first tab in a line's indentation.
pub(super) fn indentation_tab(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let lead = l.len() - l.trim_start_matches([' ', '\t']).len();
        l[..lead].find('\t').map(|c| (i + 1, c + 1))
    })
}

/// The first and second lines of `dup:` directly under the mapping at
/// `parent` (the top level when empty), and the second one's column.
pub(super) fn repeated_key(text: &str, parent: &str, dup: &str) -> Option<(usize, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (start, depth) = if parent.is_empty() {
        (0, 0)
    } else {
        let (line, _, key_col) = locate(text, parent)?;
        // The children sit deeper than the parent's key, on the lines after.
        let child = lines.get(line..)?.iter().find(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })?;
        if indent(child) < key_col {
            return None;
        }
        (line, indent(child))
    };
    let mut hits = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if i > start && indent(l) < depth {
            break;
        }
        if indent(l) == depth
            && (t.starts_with(&format!("{dup}:")) || t.starts_with(&format!("\"{dup}\":")))
        {
            hits.push((i + 1, depth + 1));
        }
    }
    match hits.as_slice() {
        [(first, _), (second, col), ..] => Some((*first, *second, *col)),
        _ => None,
    }
}

/// serde's messages name Rust types (`expected u16`, `expected struct
/// PerimeterFile`); a user wrote YAML, so say what YAML would fit.
pub(super) fn plain_types(msg: &str) -> String {
    let mut out = msg.to_string();
    for (rust, plain) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping (key: value lines)"),
        ("expected unit", "expected no value"),
    ] {
        if let Some(i) = out.find(rust) {
            let end = i + rust.len();
            // Whole words only (`u8` must not match `u80`).
            if !out[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.replace_range(i..end, plain);
            }
        }
    }
    if let Some(i) = out.find("expected struct ") {
        let rest = &out[i + "expected struct ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest[end..].to_string();
        out.replace_range(i.., &format!("expected a mapping (key: value lines){tail}"));
    }
    if let Some(i) = out.find("expected enum ") {
        let rest = &out[i + "expected enum ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest[end..].to_string();
        out.replace_range(i.., &format!("expected one of the documented values{tail}"));
    }
    out
}

/// Line, value column and key column (1-based) of the value at `key`
/// (`a.b[2].c`) in block or flow YAML, found from the text. Best effort: `None` when the layout is
/// too unusual, and the parser's own position is used instead.
pub fn locate(text: &str, key: &str) -> Option<(usize, usize, usize)> {
    if key.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // (line index, column of the value's first character, indent of its
    // key, column of its key)
    let mut at: Option<(usize, usize, usize, usize)> = None;
    for seg in key.split('.') {
        // `name[3]` is item 3 of the sequence at `name`. A key that merely
        // contains a bracket (`max_offs[:` in a mistyped file) is a name:
        // slicing it as an index once panicked (found by fuzzing).
        let (name, idx) = match seg.strip_suffix(']').and_then(|s| s.rsplit_once('[')) {
            Some((name, n)) => match n.parse::<usize>() {
                Ok(n) => (name, Some(n)),
                Err(_) => (seg, None),
            },
            None => (seg, None),
        };
        if !name.is_empty() {
            let (start, parent) = match at {
                None => (0, None),
                Some((l, _, ind, _)) => (l, Some(ind)),
            };
            let mut found = None;
            for (i, l) in lines.iter().enumerate().skip(start) {
                let ind = indent(l);
                let body = l.trim_start().trim_start_matches("- ");
                let ind_key = l.len() - body.len();
                if i > start
                    && parent.is_some_and(|p| ind <= p)
                    && !l.trim().is_empty()
                    && !l.trim_start().starts_with('#')
                {
                    break;
                }
                // A flow mapping on the parent's line: `ntp: {servers: [a]}`.
                if i == start && parent.is_some() {
                    if let Some(c) = l
                        .find(&format!("{name}:"))
                        .filter(|&c| c > at.map_or(0, |a| a.1).saturating_sub(1))
                    {
                        let v = c + name.len() + 1;
                        let skip = l[v..].len() - l[v..].trim_start().len();
                        found = Some((i, v + skip, ind_key, c));
                        break;
                    }
                    continue;
                }
                if body.starts_with(&format!("{name}:")) && parent.is_none_or(|p| ind_key > p) {
                    let v = ind_key + name.len() + 1;
                    let rest = &l[v..];
                    let skip = rest.len() - rest.trim_start().len();
                    let col = if rest.trim().is_empty() {
                        ind_key
                    } else {
                        v + skip
                    };
                    found = Some((i, col, ind_key, ind_key));
                    break;
                }
            }
            at = Some(found?);
        }
        if let Some(n) = idx {
            let (l, col, ind, _) = at?;
            let line = lines[l];
            if line[col..].starts_with('[') {
                // Flow sequence: the n-th comma-separated element.
                let mut depth = 0;
                let mut item = 0;
                let mut start = col + 1;
                for (off, ch) in line[col..].char_indices() {
                    match ch {
                        '[' | '{' => depth += 1,
                        ']' | '}' => depth -= 1,
                        ',' if depth == 1 => {
                            item += 1;
                            start = col + off + 1;
                        }
                        _ => {}
                    }
                    if item == n {
                        let s = &line[start..];
                        let c = start + (s.len() - s.trim_start().len());
                        at = Some((l, c, ind, c));
                        break;
                    }
                }
                if item != n {
                    return None;
                }
            } else {
                // Block sequence: the n-th `- ` line below the key.
                let mut item = 0;
                let mut hit = None;
                for (i, ln) in lines.iter().enumerate().skip(l + 1) {
                    let t = ln.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    if indent(ln) < ind || (indent(ln) == ind && !t.starts_with("- ")) {
                        break;
                    }
                    if t.starts_with("- ") && indent(ln) >= ind {
                        if item == n {
                            hit = Some((i, indent(ln) + 2, indent(ln), indent(ln) + 2));
                            break;
                        }
                        item += 1;
                    }
                }
                at = Some(hit?);
            }
        }
    }
    at.map(|(l, c, _, k)| (l + 1, c + 1, k + 1))
}
