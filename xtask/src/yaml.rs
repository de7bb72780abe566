//! The YAML of `deploy/` (the compose files, the Kubernetes manifests, the Prometheus rules),
//! read with `yaml-rust2` and turned into [`Yaml`], the small tree the release checks walk.
//!
//! The crate reads full YAML 1.2 (anchors and aliases included) and refuses duplicate keys; the
//! merge key of the compose files (`<<: *base`), which YAML 1.2 leaves to applications, is
//! applied here: the mapping's own keys win over merged ones, and an earlier merged mapping over
//! a later one. Scalars become text, as the checks compare strings (an integer in its canonical
//! form, `true`/`false` for booleans).

use anyhow::{Context, Result, bail};
use yaml_rust2::{Yaml as Node, YamlLoader};

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

/// Parses every document of `text`, leaving out empty ones (a trailing `---`).
pub fn parse_documents(text: &str) -> Result<Vec<Yaml>> {
    let documents = YamlLoader::load_from_str(text).context("invalid YAML")?;
    documents
        .into_iter()
        .map(convert)
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

/// The text of a scalar node, `None` for anything else.
fn scalar_text(node: &Node) -> Option<String> {
    match node {
        Node::String(text) | Node::Real(text) => Some(text.clone()),
        Node::Integer(number) => Some(number.to_string()),
        Node::Boolean(value) => Some(value.to_string()),
        _ => None,
    }
}

fn convert(node: Node) -> Result<Yaml> {
    Ok(match node {
        Node::Null => Yaml::Null,
        Node::Array(items) => Yaml::List(items.into_iter().map(convert).collect::<Result<_>>()?),
        Node::Hash(hash) => {
            let mut own: Vec<(String, Yaml)> = Vec::new();
            let mut merged: Vec<(String, Yaml)> = Vec::new();
            for (key, value) in hash {
                let key = scalar_text(&key)
                    .with_context(|| format!("a mapping key must be a scalar, not {key:?}"))?;
                if key == "<<" {
                    let sources = match value {
                        Node::Array(items) => items,
                        single => vec![single],
                    };
                    for source in sources {
                        let Yaml::Map(entries) = convert(source)? else {
                            bail!("the merge key `<<` takes a mapping or a list of mappings");
                        };
                        for (k, v) in entries {
                            if !merged.iter().any(|(m, _)| *m == k) {
                                merged.push((k, v));
                            }
                        }
                    }
                } else {
                    own.push((key, convert(value)?));
                }
            }
            merged.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
            merged.extend(own);
            Yaml::Map(merged)
        }
        Node::Alias(_) | Node::BadValue => bail!("an alias to an unknown anchor"),
        scalar => Yaml::Scalar(scalar_text(&scalar).unwrap_or_default()),
    })
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
            "a: 1 # comment\nb:\n  - x\n  - \"y # not a comment\"\n  - k: v\n    l: 'w'\nc:\n- indentless\nurl: http://h:8080/#frag\nok: true\nratio: 0.50\n",
        )
        .unwrap();
        assert_eq!(doc.get("a"), Some(&scalar("1")));
        let b = doc.get("b").unwrap().items();
        assert_eq!(b[0], scalar("x"));
        assert_eq!(b[1], scalar("y # not a comment"));
        assert_eq!(b[2].get("l"), Some(&scalar("w")));
        assert_eq!(doc.get("c").unwrap().items(), &[scalar("indentless")]);
        assert_eq!(doc.get("url"), Some(&scalar("http://h:8080/#frag")));
        assert_eq!(doc.get("ok"), Some(&scalar("true")));
        assert_eq!(doc.get("ratio"), Some(&scalar("0.50")));
    }

    #[test]
    fn anchors_merge_and_later_keys_override() {
        let doc = parse(
            "base: &base\n  image: q\n  restart: always\nsvc:\n  <<: *base\n  restart: never\nother: *base\n",
        )
        .unwrap();
        assert_eq!(doc.at(&["svc", "image"]), Some(&scalar("q")));
        assert_eq!(doc.at(&["svc", "restart"]), Some(&scalar("never")));
        assert_eq!(doc.at(&["other", "restart"]), Some(&scalar("always")));
        let doc = parse("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n").unwrap();
        assert_eq!(doc.at(&["c", "x"]), Some(&scalar("1")));
        assert_eq!(doc.at(&["c", "y"]), Some(&scalar("2")));
        assert!(parse("a: &a [1]\nb:\n  <<: *a\n").is_err());
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
        assert!(parse("kind: A\n---\nkind: B\n").is_err());
    }

    #[test]
    fn invalid_yaml_is_an_error_naming_the_line() {
        let error = format!("{:#}", parse("a: 1\n   b: 2\n").unwrap_err());
        assert!(error.contains("line 2"), "{error}");
        assert!(parse("a: 1\na: 2\n").is_err(), "duplicate keys");
        assert!(parse("a: \"open\n").is_err());
        assert!(parse("a: *nowhere\n").is_err());
    }
}
