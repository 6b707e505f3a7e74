//! The subset of kubectl's JSONPath templates skiffctl understands: literal text,
//! `{.a.b}`, `{.a[0]}`, `{.a[*].b}`, `{.a['key.with.dots']}`, `{range ...}...{end}`, and the
//! escapes `\n` and `\t`. Several results of one expression are joined with a space, strings
//! print bare and everything else as JSON — as kubectl does.

use serde_json::Value;

use crate::error::{CtlError, Result};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a template such as `{.metadata.name}` or `{range .items[*]}{.x}{"\n"}{end}`.
    pub fn parse(src: &str) -> Result<Self> {
        let mut tokens = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| bad(src, "unclosed action"))?;
                    tokens.push(Tok::Action(rest[1..end].trim().to_string()));
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    tokens.push(Tok::Text(unescape(&rest[..i])));
                    rest = &rest[i..];
                }
                None => {
                    tokens.push(Tok::Text(unescape(rest)));
                    rest = "";
                }
            }
        }
        let mut it = tokens.into_iter();
        let nodes = parse_nodes(&mut it, src, false)?;
        Ok(Template { nodes })
    }

    /// Evaluates the template against `root`.
    pub fn render(&self, root: &Value) -> Result<String> {
        let mut out = String::new();
        render_nodes(&self.nodes, root, &mut out)?;
        Ok(out)
    }

    /// The values one plain `{.path}` template selects (for `--sort-by` and custom columns).
    pub fn values<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        match self.nodes.as_slice() {
            [Node::Path(steps)] => select(root, steps),
            _ => Vec::new(),
        }
    }
}

enum Tok {
    Text(String),
    Action(String),
}

fn bad(src: &str, why: &str) -> CtlError {
    CtlError::Local(format!("error parsing jsonpath {src}, {why}"))
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn parse_nodes(it: &mut impl Iterator<Item = Tok>, src: &str, in_range: bool) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    while let Some(tok) = it.next() {
        match tok {
            Tok::Text(t) => nodes.push(Node::Text(t)),
            Tok::Action(a) if a == "end" => {
                if in_range {
                    return Ok(nodes);
                }
                return Err(bad(src, "unexpected {end}"));
            }
            Tok::Action(a) => {
                if let Some(p) = a.strip_prefix("range ") {
                    let steps = parse_path(p.trim(), src)?;
                    let body = parse_nodes(it, src, true)?;
                    nodes.push(Node::Range(steps, body));
                } else if let Some(lit) = a.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    nodes.push(Node::Text(unescape(lit)));
                } else {
                    nodes.push(Node::Path(parse_path(&a, src)?));
                }
            }
        }
    }
    if in_range {
        return Err(bad(src, "range without {end}"));
    }
    Ok(nodes)
}

fn parse_path(p: &str, src: &str) -> Result<Vec<Step>> {
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::All);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .ok_or_else(|| bad(src, "unterminated ["))?
                    + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    steps.push(Step::Field(q.to_string()));
                } else {
                    let n: i64 = inner
                        .parse()
                        .map_err(|_| bad(src, &format!("unsupported index [{inner}]")))?;
                    steps.push(Step::Index(n));
                }
                i = end + 1;
            }
            c => return Err(bad(src, &format!("unexpected character {c:?}"))),
        }
    }
    Ok(steps)
}

fn select<'a>(root: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for s in steps {
        let mut next = Vec::new();
        for v in cur {
            match s {
                Step::Field(f) => {
                    if let Some(x) = v.get(f.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(o) => next.extend(o.values()),
                    _ => {}
                },
            }
        }
        cur = next;
    }
    cur
}

/// How kubectl prints one selected value: strings bare, the rest as compact JSON.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_nodes(nodes: &[Node], root: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals = select(root, steps);
                let parts: Vec<String> = vals.into_iter().map(scalar).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in select(root, steps) {
                    render_nodes(body, v, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_ranges_and_literals() {
        let v = json!({"items": [{"metadata": {"name": "a", "labels": {"app.kubernetes.io/x": "1"}}},
                                  {"metadata": {"name": "b"}}]});
        let t = Template::parse("{.items[*].metadata.name}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "a b");
        let t = Template::parse("{range .items[*]}{.metadata.name}{\"\\n\"}{end}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "a\nb\n");
        let t = Template::parse("{.items[0].metadata.labels['app.kubernetes.io/x']}").unwrap();
        assert_eq!(t.render(&v).unwrap(), "1");
        let t = Template::parse("n={.items[-1].metadata.name}\\n").unwrap();
        assert_eq!(t.render(&v).unwrap(), "n=b\n");
        assert!(Template::parse("{range .items[*]}").is_err());
    }
}
