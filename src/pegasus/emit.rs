//! A small block-style YAML emitter for workflow documents.
//!
//! Why not libyaml (through `serde_norway`)? Writing a 10,000-job augmented workflow spent a
//! quarter of its time in the generic emitter, which decides the style of every scalar through
//! an event stream. Workflow documents are plain trees of mappings, sequences and short
//! strings, so this writer walks the tree once into one `String`, with a deliberately
//! conservative rule for plain scalars: anything that could read back as something else (a
//! number, a boolean in YAML 1.1 or 1.2, null, a timestamp, a sexagesimal integer, an
//! indicator) is double-quoted with escapes, which every YAML parser reads back as the same
//! string. What it does not handle (tags, non-scalar or very long keys) makes [`to_yaml`] fall
//! back to `serde_norway`, so the output is always valid YAML of the same document.

use super::doc::{Map, Node};
use crate::error::{Error, Result};

/// Serializes a workflow document to YAML (block style; see the module doc).
pub(crate) fn to_yaml(doc: &Node) -> Result<String> {
    let mut out = String::with_capacity(4096);
    match emit_document(doc, &mut out) {
        Ok(()) => Ok(out),
        Err(Unsupported) => serde_norway::to_string(&doc.to_value())
            .map_err(|e| Error::Invalid(format!("cannot write YAML: {e}"))),
    }
}

/// Something this emitter leaves to libyaml.
struct Unsupported;

type Emit = std::result::Result<(), Unsupported>;

/// Longest key written as an implicit (`key: value`) key; YAML allows 1024 characters.
const MAX_KEY: usize = 1000;

fn emit_document(doc: &Node, out: &mut String) -> Emit {
    match doc {
        Node::Map(m) if !m.is_empty() => mapping(m, 0, out),
        Node::Seq(s) if !s.is_empty() => sequence(s, 0, out),
        other => {
            scalar(other, out)?;
            out.push('\n');
            Ok(())
        }
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A block mapping at `indent`. The caller has written the indentation of the first line
/// (or a `- ` that stands for it).
fn mapping(m: &Map, indent: usize, out: &mut String) -> Emit {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        match k {
            Node::Str(s) if s.len() <= MAX_KEY => string(s, out),
            Node::Bool(_) | Node::Int(_) | Node::UInt(_) | Node::Float(..) | Node::Null => {
                scalar(k, out)?
            }
            _ => return Err(Unsupported),
        }
        out.push(':');
        value_after_key(v, indent, out)?;
    }
    Ok(())
}

/// The value of a mapping entry, after `key:`.
fn value_after_key(v: &Node, indent: usize, out: &mut String) -> Emit {
    match v {
        Node::Map(m) if !m.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            mapping(m, indent + 2, out)
        }
        // Sequences in a mapping sit at the mapping's indentation, as libyaml writes them.
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            pad(out, indent);
            sequence(s, indent, out)
        }
        other => {
            out.push(' ');
            scalar(other, out)?;
            out.push('\n');
            Ok(())
        }
    }
}

/// A block sequence at `indent`; the caller has written the first line's indentation.
fn sequence(s: &[Node], indent: usize, out: &mut String) -> Emit {
    for (i, item) in s.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        match item {
            Node::Map(m) if !m.is_empty() => {
                out.push_str("- ");
                mapping(m, indent + 2, out)?;
            }
            Node::Seq(inner) if !inner.is_empty() => {
                out.push_str("- ");
                sequence(inner, indent + 2, out)?;
            }
            other => {
                out.push_str("- ");
                scalar(other, out)?;
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// A scalar, or an empty collection in flow style.
fn scalar(v: &Node, out: &mut String) -> Emit {
    match v {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::UInt(u) => out.push_str(&u.to_string()),
        // Floats keep their spelling (plain in the document read), else libyaml's.
        Node::Float(_, raw) if !raw.is_empty() => out.push_str(raw),
        Node::Float(..) => {
            let s = serde_norway::to_string(&v.to_value()).map_err(|_| Unsupported)?;
            out.push_str(s.trim_end());
        }
        Node::Str(s) => string(s, out),
        Node::Seq(s) if s.is_empty() => out.push_str("[]"),
        Node::Map(m) if m.is_empty() => out.push_str("{}"),
        _ => return Err(Unsupported),
    }
    Ok(())
}

/// Words that YAML 1.1 or 1.2 readers (PyYAML, which Pegasus uses, among them) resolve to
/// something other than a string when plain.
const RESERVED: &[&str] = &["true", "false", "yes", "no", "on", "off", "y", "n", "null"];

/// Whether `s` reads back as the same string when written plain, in block context.
fn plain_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    // A letter, `_` or `/` first: no number, timestamp, indicator (`-?:,[]{}#&*!|>'"%@`),
    // `.inf`/`.nan`, `~`, `<<` or `=` can start that way. Command-line flags (`-i`, `--out`)
    // may: a `-` followed by a letter starts neither a number nor a sequence entry.
    let flag = |rest: &[u8]| rest.first().is_some_and(u8::is_ascii_alphabetic);
    let first_ok = first.is_ascii_alphabetic()
        || first == b'_'
        || first == b'/'
        || first == b'-' && (flag(&b[1..]) || b.get(1) == Some(&b'-') && flag(&b[2..]));
    if !first_ok || b[b.len() - 1] == b' ' || b[b.len() - 1] == b':' {
        return false;
    }
    // No `#` (comments), `: ` (mapping values; a `:` inside a word, as in `input:f.a` or a
    // URL, is part of a plain scalar, and a number cannot start with a letter), brackets,
    // quotes, control or non-ASCII characters.
    let safe = b.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'_' | b'.'
                    | b'/'
                    | b'-'
                    | b'+'
                    | b'@'
                    | b'='
                    | b','
                    | b'('
                    | b')'
                    | b'$'
                    | b'%'
                    | b' '
            )
            || c == b':' && b.get(i + 1) != Some(&b' ')
    });
    safe && !RESERVED.iter().any(|w| w.eq_ignore_ascii_case(s))
}

fn string(s: &str, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Printable per YAML, minus the byte-order mark and the Unicode line and paragraph
            // separators (line breaks to YAML 1.1 readers).
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}'
                if !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                out.push(c)
            }
            c if (c as u32) >= 0x10000 => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(doc: &Node) {
        let text = to_yaml(doc).expect("emit");
        let back = super::super::doc::parse(&text).expect("parse back");
        assert_eq!(&back, doc, "{text}");
        // libyaml's own reading agrees.
        let value: serde_norway::Value = serde_norway::from_str(&text).expect("parse back");
        assert_eq!(value, doc.to_value(), "{text}");
    }

    fn odd_strings() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            " ",
            "plain",
            "two words",
            " lead",
            "trail ",
            "true",
            "True",
            "FALSE",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "N",
            "null",
            "Null",
            "~",
            "-",
            "- x",
            "-i",
            "--flag=a,b",
            "? q",
            ": v",
            "a: b",
            "a:b",
            "#c",
            "a #c",
            "a#c",
            "1",
            "0",
            "-1",
            "+1",
            "0x1F",
            "0o17",
            "017",
            "1_000",
            "1e3",
            "1.5",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "1:20",
            "190:20:30",
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "<<",
            "=",
            "&a",
            "*a",
            "!tag",
            "|",
            ">",
            "'single'",
            "\"double\"",
            "back\\slash",
            "%YAML",
            "@at",
            "`tick",
            "[a]",
            "{a: b}",
            "a,b",
            "line\nbreak",
            "tab\there",
            "cr\rhere",
            "nul\0byte",
            "bell\u{7}",
            "del\u{7f}",
            "nel\u{85}",
            "nbsp\u{a0}",
            "ls\u{2028}",
            "ps\u{2029}",
            "bom\u{feff}",
            "fffe\u{fffe}",
            "é",
            "日本語",
            "emoji 🦀",
            "/bin/true",
            "file:///tmp/x y",
            "s3://bucket/key",
            "ID0000001",
            "f.a",
            "model_0.json",
            "$HOME/x",
            "50%",
            "(a)",
            "a:",
            "a::b",
            "input:f.a",
            "code:/usr/bin/x",
            "--store",
            "--",
            "---",
            "--1",
            "-.5",
            "-a b",
            "-_",
            "key:",
            "http://h/p?q=1&r#f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("k".repeat(2000));
        v
    }

    #[test]
    fn odd_strings_read_back_unchanged_as_values_keys_and_items() {
        for s in odd_strings() {
            round_trip(&Node::Map(Map::from([
                ("v", Node::str(&s)),
                ("list", Node::Seq(vec![Node::str(&s), Node::str("x")])),
            ])));
            round_trip(&Node::Map(Map::from([(s.as_str(), Node::str("as key"))])));
        }
    }

    #[test]
    fn every_shape_reads_back() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: .inf\ne: true\nf: null\ng: []\nh: {}\n\
            i:\n- - 1\n  - 2\n- []\n- {}\n- k: v\n  l:\n  - m\n  n:\n    o: p\n\
            k: 1e-3\nl: [1.50, 1E3, -.5, .inf]\n18446744073709551615: big\n";
        round_trip(&super::super::doc::parse(text).expect("parse"));
        // What this emitter leaves to libyaml (tags) reads back as the same value.
        let tagged = super::super::doc::parse("j: !tagged x\nk: 1.5\n").expect("parse");
        let back: serde_norway::Value =
            serde_norway::from_str(&to_yaml(&tagged).expect("emit")).expect("parse back");
        assert_eq!(back, tagged.to_value());
        for top in ["[]", "{}", "- a\n- b: c\n", "just a string", "42"] {
            round_trip(&super::super::doc::parse(top).expect("parse"));
        }
    }

    #[test]
    fn floats_keep_their_spelling() {
        // YAML 1.1 readers (Pegasus) take `1e-3` as a string: it must come back as written.
        let doc = super::super::doc::parse("args: [--lr, 1e-3, 1.50]\nv: 5.0\n").expect("parse");
        assert_eq!(
            to_yaml(&doc).expect("emit"),
            "args:\n- --lr\n- 1e-3\n- 1.50\nv: 5.0\n"
        );
    }

    #[test]
    fn plain_strings_stay_plain() {
        let m = Map::from([
            ("x-note", Node::str("keep me")),
            ("owner", Node::str("lab-42")),
        ]);
        let text = to_yaml(&Node::Map(m)).expect("emit");
        assert_eq!(text, "x-note: keep me\nowner: lab-42\n");
    }
}
