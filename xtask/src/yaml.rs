//! A reader for the subset of YAML that `deploy/` is written in, so preflight can check the
//! compose file, the Kubernetes manifests and the Prometheus rules without a YAML crate.
//!
//! Supported: block mappings and sequences (indented or not under their key), plain, single- and
//! double-quoted scalars, one-line flow sequences (`[a, "b"]`) and empty flow mappings (`{}`),
//! literal and folded block scalars (`|`, `>`, with `-`/`+`), anchors with aliases and the merge
//! key (`<<: *base`), comments, and `---` between documents. Anything else is an error naming
//! the line, never a silent misreading: the deploy files must stay inside this subset, and the
//! real tools (`docker compose config`, `promtool`) check full YAML where they are installed.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};

/// A YAML node. Scalars stay text: the checks compare strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// `~`, `null` or nothing.
    Null,
    /// Any scalar, unquoted.
    Scalar(String),
    /// A sequence.
    List(Vec<Yaml>),
    /// A mapping, in document order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows `path` through nested mappings.
    pub fn at(&self, path: &[&str]) -> Option<&Yaml> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// The items of a sequence (none for anything else).
    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(items) => items,
            _ => &[],
        }
    }

    /// The entries of a mapping (none for anything else).
    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Every scalar below this node, depth first.
    pub fn scalars(&self) -> Vec<&str> {
        match self {
            Yaml::Null => Vec::new(),
            Yaml::Scalar(text) => vec![text],
            Yaml::List(items) => items.iter().flat_map(Yaml::scalars).collect(),
            Yaml::Map(entries) => entries.iter().flat_map(|(_, v)| v.scalars()).collect(),
        }
    }
}

/// Parses every document of `text`.
pub fn parse_documents(text: &str) -> Result<Vec<Yaml>> {
    let mut documents = Vec::new();
    let mut current = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_end() == "---" {
            documents.push(std::mem::take(&mut current));
        } else {
            current.push((number + 1, line));
        }
    }
    documents.push(current);
    documents
        .into_iter()
        .map(|lines| Parser::new(lines).document())
        .filter(|doc| !matches!(doc, Ok(Yaml::Null)))
        .collect()
}

/// Parses a single-document file.
pub fn parse(text: &str) -> Result<Yaml> {
    let mut documents = parse_documents(text)?;
    match documents.len() {
        0 => Ok(Yaml::Null),
        1 => Ok(documents.remove(0)),
        n => bail!("expected one YAML document, found {n}"),
    }
}

struct Line<'a> {
    number: usize,
    indent: usize,
    raw: &'a str,
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    /// Rewritten content of a line (a sequence item's mapping starts after its `- `).
    overrides: HashMap<usize, (usize, String)>,
    next: usize,
    anchors: HashMap<String, Yaml>,
}

/// `text` without a trailing comment (a `#` after whitespace, outside quotes).
fn strip_comment(text: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return text[..i].trim_end(),
            None => {}
        }
        previous = c;
    }
    text.trim_end()
}

/// Splits `key: value` at the first `:` followed by a space or the end, outside quotes.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ':' && bytes.get(i + 1).is_none_or(|b| *b == b' ') => {
                return Some((&text[..i], text[i + 1..].trim()));
            }
            None => {}
        }
    }
    None
}

fn unquote(text: &str, number: usize) -> Result<String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| anyhow!("line {number}: unterminated double quote"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => bail!("line {number}: dangling backslash"),
            }
        }
        return Ok(out);
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or_else(|| anyhow!("line {number}: unterminated single quote"))?;
        return Ok(inner.replace("''", "'"));
    }
    Ok(text.to_owned())
}

impl<'a> Parser<'a> {
    fn new(raw: Vec<(usize, &'a str)>) -> Self {
        let lines = raw
            .into_iter()
            .map(|(number, raw)| Line {
                number,
                indent: raw.len() - raw.trim_start_matches(' ').len(),
                raw,
            })
            .collect();
        Parser {
            lines,
            overrides: HashMap::new(),
            next: 0,
            anchors: HashMap::new(),
        }
    }

    /// The next structural line (not blank, not only a comment): index, indent, content.
    fn peek(&mut self) -> Result<Option<(usize, usize, String)>> {
        while self.next < self.lines.len() {
            let i = self.next;
            if let Some((indent, text)) = self.overrides.get(&i) {
                return Ok(Some((i, *indent, text.clone())));
            }
            let line = &self.lines[i];
            let content = strip_comment(line.raw.trim_start_matches(' '));
            if content.is_empty() {
                self.next += 1;
                continue;
            }
            if content.starts_with('\t') {
                bail!("line {}: tab in indentation", line.number);
            }
            return Ok(Some((i, line.indent, content.to_owned())));
        }
        Ok(None)
    }

    fn number(&self, index: usize) -> usize {
        self.lines.get(index).map_or(0, |l| l.number)
    }

    fn document(mut self) -> Result<Yaml> {
        let Some((index, indent, _)) = self.peek()? else {
            return Ok(Yaml::Null);
        };
        let node = self.block(indent)?;
        if let Some((i, _, text)) = self.peek()? {
            bail!(
                "line {}: unexpected {text:?} (indentation?) after line {}",
                self.number(i),
                self.number(index)
            );
        }
        Ok(node)
    }

    /// A block node whose lines start at column `indent`.
    fn block(&mut self, indent: usize) -> Result<Yaml> {
        match self.peek()? {
            Some((_, _, text)) if text == "-" || text.starts_with("- ") => self.sequence(indent),
            Some(_) => self.mapping(indent),
            None => Ok(Yaml::Null),
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Yaml> {
        let mut items = Vec::new();
        while let Some((i, at, text)) = self.peek()? {
            if at != indent || !(text == "-" || text.starts_with("- ")) {
                break;
            }
            let rest = text[1..].trim_start();
            let item_indent = indent + (text.len() - rest.len());
            self.overrides.remove(&i);
            if rest.is_empty() {
                self.next = i + 1;
                items.push(self.nested(indent, true)?);
            } else if (rest.starts_with("- ") || split_key(rest).is_some())
                && !rest.starts_with('[')
                && !rest.starts_with('"')
                && !rest.starts_with('\'')
            {
                // The item is a block node starting on this line after `- `.
                self.overrides.insert(i, (item_indent, rest.to_owned()));
                items.push(self.block(item_indent)?);
            } else {
                self.next = i + 1;
                items.push(self.value(rest, indent, i)?);
            }
        }
        Ok(Yaml::List(items))
    }

    fn mapping(&mut self, indent: usize) -> Result<Yaml> {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        let mut merged: Vec<String> = Vec::new();
        while let Some((i, at, text)) = self.peek()? {
            if at < indent {
                break;
            }
            if at > indent {
                bail!("line {}: unexpected indentation", self.number(i));
            }
            if text == "-" || text.starts_with("- ") {
                break;
            }
            let (key, rest) = split_key(&text)
                .ok_or_else(|| anyhow!("line {}: expected `key: value`", self.number(i)))?;
            let key = unquote(key, self.number(i))?;
            self.overrides.remove(&i);
            self.next = i + 1;
            let value = self.value(rest, indent, i)?;
            if key == "<<" {
                for (k, v) in value.entries() {
                    if !entries.iter().any(|(existing, _)| existing == k) {
                        entries.push((k.clone(), v.clone()));
                        merged.push(k.clone());
                    }
                }
                continue;
            }
            if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
                // A key overrides a merged value; a key written twice is an error.
                if !merged.contains(&key) {
                    bail!("line {}: duplicate key {key:?}", self.number(i));
                }
                merged.retain(|k| *k != key);
                slot.1 = value;
            } else {
                entries.push((key, value));
            }
        }
        Ok(Yaml::Map(entries))
    }

    /// What follows `key:` or `- ` on line `index` (the parent block is at `indent`).
    fn value(&mut self, rest: &str, indent: usize, index: usize) -> Result<Yaml> {
        let number = self.number(index);
        let mut rest = rest.trim();
        let mut anchor = None;
        if let Some(after) = rest.strip_prefix('&') {
            let (name, tail) = after.split_once(' ').unwrap_or((after, ""));
            anchor = Some(name.to_owned());
            rest = tail.trim();
        }
        let node = if let Some(name) = rest.strip_prefix('*') {
            self.anchors
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow!("line {number}: unknown alias *{name}"))?
        } else if rest.is_empty() {
            self.nested(indent, false)?
        } else if rest.starts_with('|') || rest.starts_with('>') {
            self.block_scalar(rest, indent, number)?
        } else if let Some(inner) = rest.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| anyhow!("line {number}: flow sequences must fit on one line"))?;
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| unquote(s, number).map(Yaml::Scalar))
                .collect::<Result<Vec<_>>>()?;
            Yaml::List(items)
        } else if rest == "{}" {
            Yaml::Map(Vec::new())
        } else if rest.starts_with('{') {
            bail!("line {number}: flow mappings are outside the supported subset");
        } else if matches!(rest, "~" | "null") {
            Yaml::Null
        } else {
            Yaml::Scalar(unquote(rest, number)?)
        };
        if let Some(name) = anchor {
            self.anchors.insert(name, node.clone());
        }
        Ok(node)
    }

    /// The block under a key (or an empty `-`): deeper lines, or an indentless sequence.
    fn nested(&mut self, indent: usize, in_sequence: bool) -> Result<Yaml> {
        match self.peek()? {
            Some((_, at, _)) if at > indent => self.block(at),
            Some((_, at, text))
                if !in_sequence && at == indent && (text == "-" || text.starts_with("- ")) =>
            {
                self.sequence(indent)
            }
            _ => Ok(Yaml::Null),
        }
    }

    fn block_scalar(&mut self, header: &str, indent: usize, number: usize) -> Result<Yaml> {
        let folded = header.starts_with('>');
        let chomp = &header[1..];
        if !matches!(chomp, "" | "-" | "+") {
            bail!("line {number}: block scalar header {header:?} is outside the supported subset");
        }
        let mut lines: Vec<&str> = Vec::new();
        let mut block_indent = None;
        while self.next < self.lines.len() {
            let line = &self.lines[self.next];
            let blank = line.raw.trim().is_empty();
            if !blank && line.indent <= indent {
                break;
            }
            if !blank && block_indent.is_none() {
                block_indent = Some(line.indent);
            }
            lines.push(line.raw);
            self.next += 1;
        }
        let cut = block_indent.unwrap_or(indent + 1);
        let body: Vec<&str> = lines
            .iter()
            .map(|l| l.get(cut..).unwrap_or("").trim_end())
            .collect();
        let mut text = if folded {
            body.join(" ")
        } else {
            body.join("\n")
        };
        match chomp {
            "-" => text = text.trim_end().to_owned(),
            "+" => text.push('\n'),
            _ => {
                text = text.trim_end().to_owned();
                text.push('\n');
            }
        }
        Ok(Yaml::Scalar(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Yaml {
        Yaml::Scalar(text.to_owned())
    }

    #[test]
    fn mappings_sequences_and_scalars_nest_by_indentation() {
        let doc = parse(
            "a: 1 # comment\nb:\n  - x\n  - \"y # not a comment\"\n  - k: v\n    l: 'w'\nc:\n- indentless\nurl: http://h:8080/#frag\n",
        )
        .unwrap();
        assert_eq!(doc.get("a"), Some(&scalar("1")));
        let b = doc.get("b").unwrap().items();
        assert_eq!(b[0], scalar("x"));
        assert_eq!(b[1], scalar("y # not a comment"));
        assert_eq!(b[2].get("l"), Some(&scalar("w")));
        assert_eq!(doc.get("c").unwrap().items(), &[scalar("indentless")]);
        assert_eq!(doc.get("url"), Some(&scalar("http://h:8080/#frag")));
    }

    #[test]
    fn anchors_merge_and_later_keys_override() {
        let doc = parse(
            "base: &base\n  image: q\n  restart: always\nsvc:\n  <<: *base\n  restart: never\n",
        )
        .unwrap();
        assert_eq!(doc.at(&["svc", "image"]), Some(&scalar("q")));
        assert_eq!(doc.at(&["svc", "restart"]), Some(&scalar("never")));
    }

    #[test]
    fn flow_sequences_and_block_scalars_are_read() {
        let doc = parse("cmd: [\"a\", b]\nexpr: |\n  sum(x)\n    > 1\n\nnext: {}\n").unwrap();
        assert_eq!(doc.get("cmd").unwrap().items(), &[scalar("a"), scalar("b")]);
        assert_eq!(doc.get("expr"), Some(&scalar("sum(x)\n  > 1\n")));
        assert_eq!(doc.get("next"), Some(&Yaml::Map(Vec::new())));
    }

    #[test]
    fn documents_are_split_on_three_dashes() {
        let docs = parse_documents("kind: A\n---\nkind: B\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].get("kind"), Some(&scalar("B")));
    }

    #[test]
    fn text_outside_the_subset_is_an_error_naming_the_line() {
        let error = parse("a: 1\n   b: 2\n").unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(parse("a: {b: 1}\n").is_err());
        assert!(parse("a: 1\na: 2\n").is_err());
        assert!(parse("a: \"open\n").is_err());
    }
}
