//! The small part of ERB that Arvados' fixture files use, evaluated before they are read as
//! YAML: `<% for i in A..B do %>` ... `<% end %>` loops, and `<%= ... %>` expressions made of
//! integers, the loop variable, `+ - * /` and parentheses, `.to_s`, `.to_s.rjust(N, 'C')`,
//! durations (`N.minute`, `.hours`, `.days`, `.weeks`, `.months`, `.years`, ...) and
//! `.ago`/`.from_now` times written with `.to_fs(:db)` or `.to_s(:db)`. Anything else is
//! refused with an error naming the file and line, never guessed at.

use chrono::{DateTime, Months, Utc};

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {why}")]
pub struct ErbError {
    /// The file, as given.
    pub file: String,
    /// 1-based line of the tag.
    pub line: usize,
    /// What is not supported or wrong.
    pub why: String,
}

/// One piece of a template.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// `<%= expr %>` at a line.
    Expr(String, usize),
    /// `<% for VAR in A..B do %>` at a line.
    For(String, String, String, usize),
    /// `<% end %>`.
    End(usize),
}

/// A value an expression yields.
#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Str(String),
    /// Seconds and months.
    Duration(i64, u32),
    Time(DateTime<Utc>),
}

/// Expands the template `text` of `file` at time `now`.
pub fn expand(file: &str, text: &str, now: DateTime<Utc>) -> Result<String, ErbError> {
    let pieces = split(file, text)?;
    let mut out = String::new();
    let mut vars: Vec<(String, i64)> = Vec::new();
    run(file, &pieces, &mut vars, now, &mut out)?;
    Ok(out)
}

fn split(file: &str, text: &str) -> Result<Vec<Piece>, ErbError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(start) = rest.find("<%") {
        let before = &rest[..start];
        line += before.matches('\n').count();
        pieces.push(Piece::Text(before.to_string()));
        let tag_and_more = &rest[start + 2..];
        let end = tag_and_more.find("%>").ok_or_else(|| ErbError {
            file: file.into(),
            line,
            why: "an ERB tag without its closing %>".into(),
        })?;
        let tag = &tag_and_more[..end];
        let at = line;
        line += tag.matches('\n').count();
        rest = &tag_and_more[end + 2..];
        if let Some(expr) = tag.strip_prefix('=') {
            pieces.push(Piece::Expr(expr.trim().to_string(), at));
            continue;
        }
        let words: Vec<&str> = tag.split_whitespace().collect();
        match words.as_slice() {
            ["end"] => pieces.push(Piece::End(at)),
            ["for", var, "in", range, "do"] | ["for", var, "in", range] => {
                let (from, to) = range.split_once("..").ok_or_else(|| ErbError {
                    file: file.into(),
                    line: at,
                    why: format!("unsupported loop range {range:?} (A..B)"),
                })?;
                pieces.push(Piece::For(var.to_string(), from.into(), to.into(), at));
            }
            _ => {
                return Err(ErbError {
                    file: file.into(),
                    line: at,
                    why: format!("unsupported ERB statement <%{tag}%>"),
                })
            }
        }
        // A statement tag alone on its line takes its newline with it, as Rails' ERB trims.
        if let Some(after) = rest.strip_prefix('\n') {
            if pieces
                .iter()
                .rev()
                .nth(1)
                .is_some_and(|p| matches!(p, Piece::Text(t) if t.is_empty() || t.ends_with('\n')))
            {
                rest = after;
                line += 1;
            }
        }
    }
    pieces.push(Piece::Text(rest.to_string()));
    Ok(pieces)
}

fn run(
    file: &str,
    pieces: &[Piece],
    vars: &mut Vec<(String, i64)>,
    now: DateTime<Utc>,
    out: &mut String,
) -> Result<(), ErbError> {
    let mut i = 0;
    while i < pieces.len() {
        match &pieces[i] {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(e, line) => {
                let fail = |why: String| ErbError {
                    file: file.into(),
                    line: *line,
                    why,
                };
                let value = Expr::new(e, vars, now).parse().map_err(fail)?;
                out.push_str(&render(value));
            }
            Piece::End(line) => {
                return Err(ErbError {
                    file: file.into(),
                    line: *line,
                    why: "<% end %> without a loop".into(),
                })
            }
            Piece::For(var, from, to, line) => {
                let fail = |why: String| ErbError {
                    file: file.into(),
                    line: *line,
                    why,
                };
                let bound = |t: &str| match Expr::new(t, vars, now).parse().map_err(&fail)? {
                    Val::Int(n) => Ok(n),
                    other => Err(fail(format!(
                        "loop bound {t:?} is not an integer: {other:?}"
                    ))),
                };
                let (from, to) = (bound(from)?, bound(to)?);
                // The body: up to the matching end.
                let mut depth = 0;
                let mut j = i + 1;
                loop {
                    match pieces.get(j) {
                        None => return Err(fail("a loop without <% end %>".into())),
                        Some(Piece::For(..)) => depth += 1,
                        Some(Piece::End(_)) if depth == 0 => break,
                        Some(Piece::End(_)) => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                if to - from > 100_000 {
                    return Err(fail(format!("a loop of {} rounds", to - from + 1)));
                }
                for n in from..=to {
                    vars.push((var.clone(), n));
                    let done = run(file, &pieces[i + 1..j], vars, now, out);
                    vars.pop();
                    done?;
                }
                i = j;
            }
        }
        i += 1;
    }
    Ok(())
}

fn render(v: Val) -> String {
    match v {
        Val::Int(n) => n.to_string(),
        Val::Str(s) => s,
        Val::Duration(s, 0) => s.to_string(),
        Val::Duration(s, m) => format!("{m} months {s} seconds"),
        Val::Time(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// A recursive descent parser over one expression.
struct Expr<'a> {
    text: &'a str,
    pos: usize,
    vars: &'a [(String, i64)],
    now: DateTime<Utc>,
}

impl<'a> Expr<'a> {
    fn new(text: &'a str, vars: &'a [(String, i64)], now: DateTime<Utc>) -> Expr<'a> {
        Expr {
            text,
            pos: 0,
            vars,
            now,
        }
    }

    fn parse(mut self) -> Result<Val, String> {
        let v = self.sum()?;
        self.skip();
        if self.pos != self.text.len() {
            return Err(format!(
                "unsupported ERB expression <%= {} %> (at {:?})",
                self.text,
                &self.text[self.pos..]
            ));
        }
        Ok(v)
    }

    fn skip(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip();
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> String {
        self.skip();
        let rest = &self.text[self.pos..];
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += n;
        rest[..n].to_string()
    }

    fn unsupported(&self) -> String {
        format!("unsupported ERB expression <%= {} %>", self.text)
    }

    fn int(v: Val, what: &str) -> Result<i64, String> {
        match v {
            Val::Int(n) => Ok(n),
            other => Err(format!("{what} needs an integer, not {other:?}")),
        }
    }

    fn sum(&mut self) -> Result<Val, String> {
        let mut v = self.product()?;
        loop {
            if self.eat("+") {
                let r = Self::int(self.product()?, "+")?;
                v = Val::Int(Self::int(v, "+")?.saturating_add(r));
            } else if self.eat("-") {
                let r = Self::int(self.product()?, "-")?;
                v = Val::Int(Self::int(v, "-")?.saturating_sub(r));
            } else {
                return Ok(v);
            }
        }
    }

    fn product(&mut self) -> Result<Val, String> {
        let mut v = self.postfix()?;
        loop {
            if self.eat("*") {
                let r = Self::int(self.postfix()?, "*")?;
                v = Val::Int(Self::int(v, "*")?.saturating_mul(r));
            } else if self.eat("/") {
                let r = Self::int(self.postfix()?, "/")?;
                if r == 0 {
                    return Err("division by zero".into());
                }
                // Ruby's integer division rounds down.
                v = Val::Int(Self::int(v, "/")?.div_euclid(r));
            } else {
                return Ok(v);
            }
        }
    }

    fn primary(&mut self) -> Result<Val, String> {
        if self.eat("(") {
            let v = self.sum()?;
            if !self.eat(")") {
                return Err(self.unsupported());
            }
            return Ok(v);
        }
        let w = self.word();
        if w.is_empty() {
            return Err(self.unsupported());
        }
        if let Ok(n) = w.parse::<i64>() {
            return Ok(Val::Int(n));
        }
        self.vars
            .iter()
            .rev()
            .find(|(name, _)| *name == w)
            .map(|(_, n)| Val::Int(*n))
            .ok_or_else(|| format!("unknown name {w:?} in <%= {} %>", self.text))
    }

    fn postfix(&mut self) -> Result<Val, String> {
        let mut v = self.primary()?;
        while self.eat(".") {
            let method = self.word();
            v = match (method.as_str(), v) {
                ("to_s", Val::Time(t)) | ("to_fs", Val::Time(t)) => {
                    if !(self.eat("(") && self.eat(":db") && self.eat(")")) {
                        return Err(format!("only {method}(:db) is supported for times"));
                    }
                    Val::Str(t.format("%Y-%m-%d %H:%M:%S").to_string())
                }
                ("to_s", Val::Int(n)) => Val::Str(n.to_string()),
                ("to_s", Val::Str(s)) => Val::Str(s),
                ("rjust", Val::Str(s)) => {
                    let width = if self.eat("(") {
                        Self::int(self.sum()?, "rjust")?
                    } else {
                        return Err(self.unsupported());
                    };
                    let pad = if self.eat(",") {
                        self.skip();
                        let rest = &self.text[self.pos..];
                        let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"');
                        let Some(q) = quote else {
                            return Err(self.unsupported());
                        };
                        let close = rest[1..].find(q).ok_or_else(|| self.unsupported())?;
                        let pad = rest[1..1 + close].to_string();
                        self.pos += close + 2;
                        pad
                    } else {
                        " ".into()
                    };
                    if !self.eat(")") || pad.is_empty() {
                        return Err(self.unsupported());
                    }
                    let have = s.chars().count() as i64;
                    let mut out = String::new();
                    let mut fill = pad.chars().cycle();
                    for _ in have..width.min(10_000) {
                        out.push(fill.next().unwrap_or(' '));
                    }
                    out.push_str(&s);
                    Val::Str(out)
                }
                (unit, Val::Int(n)) if duration(unit, n).is_some() => {
                    duration(unit, n).unwrap_or(Val::Int(n))
                }
                ("ago", Val::Duration(s, m)) => Val::Time(shift(self.now, -s, m, false)?),
                ("from_now", Val::Duration(s, m)) => Val::Time(shift(self.now, s, m, true)?),
                (other, v) => {
                    return Err(format!(
                        "unsupported method .{other} on {v:?} in <%= {} %>",
                        self.text
                    ))
                }
            };
        }
        Ok(v)
    }
}

/// `n.UNIT` as a duration.
fn duration(unit: &str, n: i64) -> Option<Val> {
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let months = |k: i64| u32::try_from(n.checked_mul(k)?).ok();
    Some(match unit {
        "second" => Val::Duration(n, 0),
        "minute" => Val::Duration(n.checked_mul(60)?, 0),
        "hour" => Val::Duration(n.checked_mul(3600)?, 0),
        "day" => Val::Duration(n.checked_mul(86_400)?, 0),
        "week" => Val::Duration(n.checked_mul(604_800)?, 0),
        "month" => Val::Duration(0, months(1)?),
        "year" => Val::Duration(0, months(12)?),
        _ => return None,
    })
}

fn shift(
    now: DateTime<Utc>,
    seconds: i64,
    months: u32,
    forward: bool,
) -> Result<DateTime<Utc>, String> {
    let t = now
        .checked_add_signed(chrono::Duration::seconds(seconds))
        .ok_or("a time out of range")?;
    let t = if forward {
        t.checked_add_months(Months::new(months))
    } else {
        t.checked_sub_months(Months::new(months))
    };
    t.ok_or_else(|| "a time out of range".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 31, 12, 0, 0).unwrap()
    }

    #[test]
    fn loops_and_the_expressions_the_fixture_files_use() {
        let text = "a: <%= 2.minute.ago.to_fs(:db) %>\n<% for i in 1..3 do %>\nc_<%=i%>: x<%= i.to_s.rjust(3, '0') %> <%= ((i+5)/5).hour.ago.to_fs(:db) %>\n<% end %>\nb: <%= 1.month.ago.to_s(:db) %> <%= 2.years.from_now.to_fs(:db) %>\n";
        let out = expand("t.yml", text, now()).unwrap();
        assert_eq!(
            out,
            "a: 2024-03-31 11:58:00\nc_1: x001 2024-03-31 11:00:00\nc_2: x002 2024-03-31 11:00:00\nc_3: x003 2024-03-31 11:00:00\nb: 2024-02-29 12:00:00 2026-03-31 12:00:00\n"
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_file_and_line() {
        for (text, line, word) in [
            ("a: 1\nb: <%= Digest::MD5.hexdigest('x') %>\n", 2, "Digest"),
            ("\n\n<% if x %>\n", 3, "statement"),
            ("<% for i in 1..2 do %>\nx\n", 1, "end"),
            ("<%= j %>", 1, "j"),
            ("x <%= 1", 1, "%>"),
            ("<%= 1.fortnight.ago %>", 1, "fortnight"),
        ] {
            let e = expand("f.yml", text, now()).unwrap_err();
            assert_eq!((e.file.as_str(), e.line), ("f.yml", line), "{text:?}: {e}");
            assert!(e.to_string().contains(word), "{text:?}: {e}");
        }
    }
}
