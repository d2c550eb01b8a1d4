//! The subset of Drive's `q` language the backend sends: `name =`, `mimeType =`/`!=`,
//! `trashed =`, `'id' in parents`, `and`, `or`, parentheses, strings with `\'` and `\\`
//! escapes. Anything else is an error (the fake answers 400), so drift is caught.

use super::Stored;

#[derive(Debug)]
pub(super) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    InParents(String),
    Name(bool, String),
    Mime(bool, String),
    Trashed(bool, bool),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Eq,
    Ne,
    Open,
    Close,
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let c: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            ' ' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            '!' if c.get(i + 1) == Some(&'=') => {
                out.push(Tok::Ne);
                i += 2
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') => break,
                        Some('\\') => match c.get(i + 1) {
                            Some(e @ ('\'' | '\\')) => {
                                s.push(*e);
                                i += 2
                            }
                            _ => return Err("bad escape in string".into()),
                        },
                        Some(ch) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            ch if ch.is_ascii_alphabetic() => {
                let mut w = String::new();
                while i < c.len() && c[i].is_ascii_alphanumeric() {
                    w.push(c[i]);
                    i += 1;
                }
                out.push(Tok::Word(w));
            }
            ch => return Err(format!("unexpected character {ch:?}")),
        }
    }
    Ok(out)
}

pub(super) fn parse_query(q: &str) -> Result<Expr, String> {
    let toks = lex(q)?;
    let mut pos = 0;
    let e = parse_or(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err(format!("trailing tokens at {pos}"));
    }
    Ok(e)
}

fn word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

fn parse_or(t: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    let mut e = parse_and(t, pos)?;
    while word(t.get(*pos), "or") {
        *pos += 1;
        e = Expr::Or(Box::new(e), Box::new(parse_and(t, pos)?));
    }
    Ok(e)
}

fn parse_and(t: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    let mut e = parse_unit(t, pos)?;
    while word(t.get(*pos), "and") {
        *pos += 1;
        e = Expr::And(Box::new(e), Box::new(parse_unit(t, pos)?));
    }
    Ok(e)
}

fn parse_unit(t: &[Tok], pos: &mut usize) -> Result<Expr, String> {
    match t.get(*pos) {
        Some(Tok::Open) => {
            *pos += 1;
            let e = parse_or(t, pos)?;
            if t.get(*pos) != Some(&Tok::Close) {
                return Err("missing )".into());
            }
            *pos += 1;
            Ok(e)
        }
        Some(Tok::Str(s)) => {
            if word(t.get(*pos + 1), "in") && word(t.get(*pos + 2), "parents") {
                *pos += 3;
                Ok(Expr::InParents(s.clone()))
            } else {
                Err("only 'id' in parents takes a string on the left".into())
            }
        }
        Some(Tok::Word(field)) => {
            let eq = match t.get(*pos + 1) {
                Some(Tok::Eq) => true,
                Some(Tok::Ne) => false,
                _ => return Err(format!("{field}: = or != expected")),
            };
            let v = t.get(*pos + 2);
            *pos += 3;
            match (field.as_str(), v) {
                ("name", Some(Tok::Str(s))) if eq => Ok(Expr::Name(eq, s.clone())),
                ("mimeType", Some(Tok::Str(s))) => Ok(Expr::Mime(eq, s.clone())),
                ("trashed", Some(Tok::Word(b))) if b == "true" || b == "false" => {
                    Ok(Expr::Trashed(eq, b == "true"))
                }
                _ => Err(format!("unsupported term on {field}")),
            }
        }
        other => Err(format!("unexpected {other:?}")),
    }
}

pub(super) fn eval(e: &Expr, f: &Stored, root: &str) -> bool {
    match e {
        Expr::And(a, b) => eval(a, f, root) && eval(b, f, root),
        Expr::Or(a, b) => eval(a, f, root) || eval(b, f, root),
        Expr::InParents(p) => {
            let p = if p == "root" { root } else { p.as_str() };
            f.parents.iter().any(|x| x == p)
        }
        Expr::Name(eq, n) => (f.name == *n) == *eq,
        Expr::Mime(eq, m) => (f.mime == *m) == *eq,
        // Nothing is ever trashed here (the backend deletes).
        Expr::Trashed(eq, t) => *t != *eq,
    }
}
