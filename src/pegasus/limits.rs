//! Input limits checked before a YAML document is parsed: the parser's scanner is quadratic in
//! flow nesting (400 KB of `[` kept it busy for 20 s), and a document of a few megabytes must
//! never make `augment` or `run` take seconds. One pass over the text, in linear time, finds the
//! first limit broken and its line; real workflows stay far below every limit.
//!
//! It is a conservative scan, not a parser: brackets inside quoted scalars and comments do not
//! count, and a bracket only opens a flow collection where a token can start (after
//! whitespace or at the start of a line, and inside a flow collection after `[`, `{`, `,` or
//! `:`), so `a[1]` in a plain scalar does not count either. Alias expansion itself is bounded by the parser (its
//! repetition limit); here the number of aliases is.

/// The largest document read (bytes).
pub const MAX_BYTES: usize = 256 << 20;
/// The longest line (bytes). The Pegasus API writes block style, one short scalar per line,
/// but a workflow written as one-line JSON (also YAML) is legitimate: a few MB on one line
/// parse in a fraction of a second, so only far longer lines are refused.
pub const MAX_LINE: usize = 16 << 20;
/// The deepest nesting, flow brackets plus block indentation levels.
pub const MAX_DEPTH: usize = 200;
/// The most aliases (`*name`) in one document.
pub const MAX_ALIASES: usize = 10_000;

/// A limit broken: the line (1-based) and what.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Checks `text` against the limits above.
pub fn check(text: &str) -> Result<(), Broken> {
    if text.len() > MAX_BYTES {
        return Err(Broken {
            line: 1,
            what: format!(
                "the document is {} bytes, more than the {MAX_BYTES} read",
                text.len()
            ),
        });
    }
    let mut flow = 0usize;
    let mut aliases = 0usize;
    // Block indentation levels open at this point (their columns).
    let mut blocks: Vec<usize> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line.len() > MAX_LINE {
            return Err(Broken {
                line: n,
                what: format!(
                    "a line of {} bytes, longer than the {MAX_LINE} read",
                    line.len()
                ),
            });
        }
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let rest = &bytes[indent..];
        let content = !rest.is_empty() && rest[0] != b'#' && rest[0] != b'\r';
        if flow == 0 && content {
            while blocks.last().is_some_and(|c| *c >= indent) {
                blocks.pop();
            }
            blocks.push(indent);
            // Compact nested sequences: `- - - x` opens a level per dash.
            let mut j = 0;
            while j + 1 < rest.len() && rest[j] == b'-' && rest[j + 1] == b' ' {
                blocks.push(indent + j + 2);
                j += 2;
                while j < rest.len() && rest[j] == b' ' {
                    j += 1;
                }
            }
        }
        let mut quote: Option<u8> = None;
        let mut prev = b' ';
        let mut k = 0;
        while k < bytes.len() {
            let c = bytes[k];
            match quote {
                Some(q) => {
                    if c == b'\\' && q == b'"' {
                        k += 1;
                    } else if c == q {
                        // '' inside single quotes is an escaped quote.
                        if q == b'\'' && bytes.get(k + 1) == Some(&b'\'') {
                            k += 1;
                        } else {
                            quote = None;
                        }
                    }
                }
                None => {
                    let token_start = matches!(prev, b' ' | b'\t')
                        || flow > 0 && matches!(prev, b'[' | b'{' | b',' | b':');
                    match c {
                        b'#' if matches!(prev, b' ' | b'\t') => break,
                        b'"' | b'\'' if token_start => quote = Some(c),
                        b'[' | b'{' if token_start => {
                            flow += 1;
                            if flow + blocks.len() > MAX_DEPTH {
                                return Err(Broken {
                                    line: n,
                                    what: format!("YAML nested deeper than {MAX_DEPTH} levels"),
                                });
                            }
                        }
                        b']' | b'}' if flow > 0 => flow -= 1,
                        b'*' if token_start => {
                            aliases += 1;
                            if aliases > MAX_ALIASES {
                                return Err(Broken {
                                    line: n,
                                    what: format!("more than {MAX_ALIASES} YAML aliases"),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            prev = c;
            k += 1;
        }
        if blocks.len() + flow > MAX_DEPTH {
            return Err(Broken {
                line: n,
                what: format!("YAML nested deeper than {MAX_DEPTH} levels"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_in_quotes_comments_and_plain_scalars_do_not_count() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        for ok in [
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\"\n"),
            format!("a: x # {deep}\n"),
            format!("a: x{deep}\n"),
            "a: 'it''s [' \nb: [1, [2, {c: 3}]]\n".to_string(),
            "x: &a [1, 2]\ny: *a\nz: [*a, *a]\n".to_string(),
        ] {
            assert_eq!(check(&ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn deep_flow_deep_blocks_many_aliases_and_long_lines_are_named() {
        let flow = format!("a: {}\n", "[".repeat(400_000));
        assert_eq!(check(&flow).map_err(|b| b.line), Err(1));
        let mut block = String::new();
        for d in 0..300 {
            block.push_str(&" ".repeat(d));
            block.push_str("k:\n");
        }
        let e = check(&block).expect_err("deep blocks");
        assert!(e.what.contains("nested deeper"), "{e}");
        assert_eq!(e.line, MAX_DEPTH + 1);
        let dashes = format!("{}x\n", "- ".repeat(300));
        assert!(check(&dashes).is_err());
        let aliases = format!("a: &a 1\nb: [{}]\n", vec!["*a"; MAX_ALIASES + 1].join(", "));
        assert!(check(&aliases)
            .expect_err("aliases")
            .what
            .contains("aliases"));
        let long = format!("a: {}\n", "x".repeat(MAX_LINE + 1));
        assert_eq!(check(&long).map_err(|b| b.line), Err(1));
    }
}
