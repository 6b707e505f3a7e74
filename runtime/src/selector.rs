//! Label and field selectors, parsed and matched the way Kubernetes does.
//!
//! `kubectl get -l ...`, `?labelSelector=`, `?fieldSelector=`, the selectors
//! inside Deployments, ReplicaSets and Services, and the controllers that act
//! on them all have to agree on what a selector means. This module is the one
//! place that decides: the grammar, the validation of keys and values and the
//! matching rules follow apimachinery's `labels` and `fields` packages, so a
//! selector that the real API server accepts is accepted here, one it rejects
//! is rejected here, and both select the same objects.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Why a selector could not be parsed or built.
///
/// The messages read like Kubernetes' own (for example
/// `unable to parse requirement: found '(', expected: identifier`), because
/// they end up in API `Status` responses that users compare with a real
/// cluster's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector string is not well formed: a stray token, a missing
    /// parenthesis, a comma with nothing after it.
    #[error("{0}")]
    Syntax(String),
    /// One requirement of a label selector is malformed or invalid (bad key,
    /// bad value, wrong number of values for its operator).
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A structured (`metav1.LabelSelector`) selector is invalid: unknown
    /// operator, wrong value count, a key or value that is not a valid label.
    #[error("{0}")]
    Structured(String),
    /// A field selector is malformed: no operator, a bad escape, an unescaped
    /// `,` or `=` in a value.
    #[error("{0}")]
    Field(String),
}

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// How one label requirement compares a label with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value` (same meaning as `=`; kept apart so it prints back the same)
    DoubleEquals,
    /// `key!=value`: matches when the label is absent or differs.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`: matches when the label is absent or not listed.
    NotIn,
    /// `key`: the label is present, whatever its value.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>5`: the label's value is an integer greater than 5.
    GreaterThan,
    /// `key<5`: the label's value is an integer less than 5.
    LessThan,
}

/// One condition of a label selector: a key, an operator and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and free of duplicates, as Kubernetes keeps them in a set.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, validating the key, every value, and that the
    /// number of values suits the operator, exactly as Kubernetes'
    /// `NewRequirement` does. Errors carry no prefix; callers add context.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        validate_label_key(key)?;
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(format!(
                        "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                        go_list(&values)
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    return Err(format!(
                        "values: Invalid value: {}: exact-match compatibility requires one single value",
                        go_list(&values)
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err(format!(
                        "values: Invalid value: {}: values set must be empty for exists and does not exist",
                        go_list(&values)
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_list(&values)
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    ));
                }
            }
        }
        for (i, value) in values.iter().enumerate() {
            validate_label_value(value).map_err(|msg| format!("values[{i}]: {msg}"))?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_owned(),
            operator,
            values,
        })
    }

    /// The label key this requirement looks at.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label is compared.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values compared against, sorted and without duplicates.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement. `get` looks a
    /// label up by key.
    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                get(&self.key).is_some_and(has)
            }
            Operator::NotEquals | Operator::NotIn => get(&self.key).is_none_or(|v| !has(v)),
            Operator::Exists => get(&self.key).is_some(),
            Operator::DoesNotExist => get(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = get(&self.key).and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                // Validated at construction: exactly one integer value.
                let Some(bound) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Prints the requirement in selector syntax (`app=web`, `tier in (a,b)`,
    /// `!canary`), values sorted, as Kubernetes prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&self.values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: requirements that must all hold (logical AND).
///
/// Two special cases mirror Kubernetes: the empty selector matches every
/// object (`labelSelector=` or a `{}` structured selector), while the
/// "nothing" selector (a missing/`null` structured selector) matches none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (what a `null` structured
    /// selector means to Kubernetes).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses a selector string as sent in `?labelSelector=` or given to
    /// `kubectl -l`: comma-separated requirements of the forms `a=b`, `a==b`,
    /// `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`.
    /// Whitespace between tokens is ignored. The empty string is the
    /// everything selector.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Builds an equality selector from a label map (a Service's or
    /// ReplicationController's `selector`). Every pair becomes `key=value`;
    /// the empty map is the everything selector. Keys and values are taken as
    /// they are, since they were validated when the object was stored.
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        let requirements = map
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Builds a selector from a structured `metav1.LabelSelector` JSON object
    /// (`{"matchLabels": {..}, "matchExpressions": [..]}`) as found in
    /// Deployments, ReplicaSets, Jobs, NetworkPolicies and PDBs.
    ///
    /// As in Kubernetes: `null` selects nothing, an object with neither field
    /// (or both empty) selects everything, and operators other than `In`,
    /// `NotIn`, `Exists`, `DoesNotExist` are rejected.
    pub fn from_label_selector_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::Structured(format!(
                    "a label selector must be an object, not {}",
                    json_type(other)
                )));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Some(v) = v.as_str() else {
                        return Err(SelectorError::Structured(format!(
                            "matchLabels[{k}]: label values must be strings, not {}",
                            json_type(v)
                        )));
                    };
                    let r = Requirement::new(k, Operator::Equals, vec![v.to_owned()])
                        .map_err(|e| SelectorError::Structured(format!("matchLabels: {e}")))?;
                    requirements.push(r);
                }
            }
            Some(other) => {
                return Err(SelectorError::Structured(format!(
                    "matchLabels must be an object, not {}",
                    json_type(other)
                )));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    requirements.push(expression_requirement(i, expr)?);
                }
            }
            Some(other) => {
                return Err(SelectorError::Structured(format!(
                    "matchExpressions must be an array, not {}",
                    json_type(other)
                )));
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the everything selector: no requirement, matches all.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the nothing selector, which matches no object.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches_with(|k| labels.get(k).map(String::as_str)))
    }

    /// Like [`LabelSelector::matches`], for a JSON labels object
    /// (`metadata.labels`). `null` or a missing map means no labels;
    /// non-string values are ignored.
    pub fn matches_json(&self, labels: &Value) -> bool {
        let map = labels.as_object();
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches_with(|k| map.and_then(|m| m.get(k)).and_then(Value::as_str)))
    }
}

impl fmt::Display for LabelSelector {
    /// Canonical selector syntax: requirements sorted by key, joined by `,`.
    /// Both the everything and the nothing selector print as the empty
    /// string, as in Kubernetes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing {
            return Ok(());
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn expression_requirement(i: usize, expr: &Value) -> Result<Requirement, SelectorError> {
    let err = |msg: String| SelectorError::Structured(format!("matchExpressions[{i}]: {msg}"));
    let Some(expr) = expr.as_object() else {
        return Err(err(format!("must be an object, not {}", json_type(expr))));
    };
    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
    let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    let operator = match op_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(err(format!(
                "{other:?} is not a valid label selector operator"
            )));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err(format!("values must be strings, not {}", json_type(v))))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(err(format!(
                "values must be an array, not {}",
                json_type(other)
            )));
        }
    };
    Requirement::new(key, operator, values).map_err(err)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Renders values the way Go's `%#v` shows a `[]string` in validation errors.
fn go_list(values: &[String]) -> String {
    let inner: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

// --- lexer -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Identifier,
    In,
    NotIn,
    Comma,
    OpenPar,
    ClosedPar,
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Greater,
    Less,
    End,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn symbol_token(s: &str) -> Option<Tok> {
    Some(match s {
        "," => Tok::Comma,
        "(" => Tok::OpenPar,
        ")" => Tok::ClosedPar,
        "=" => Tok::Equals,
        "==" => Tok::DoubleEquals,
        "!=" => Tok::NotEquals,
        "!" => Tok::Bang,
        ">" => Tok::Greater,
        "<" => Tok::Less,
        _ => return None,
    })
}

/// Splits a selector into tokens. Runs of symbol characters are cut
/// greedily into the longest known symbols (`!=`, `==`, ...); every other
/// run of non-space characters is an identifier or the keywords `in`/`notin`.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_whitespace(c) {
            i += 1;
        } else if is_special(c) {
            // Longest known symbol starting here; every single special char
            // is itself a symbol, so this always advances.
            let mut best = (Tok::Comma, 1);
            let mut len = 1;
            while i + len <= chars.len() && chars[i..i + len].iter().all(|&c| is_special(c)) {
                let text: String = chars[i..i + len].iter().collect();
                match symbol_token(&text) {
                    Some(tok) => best = (tok, len),
                    None => break,
                }
                len += 1;
            }
            let text: String = chars[i..i + best.1].iter().collect();
            out.push((best.0, text));
            i += best.1;
        } else {
            let start = i;
            while i < chars.len() && !is_whitespace(chars[i]) && !is_special(chars[i]) {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let tok = match text.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Identifier,
            };
            out.push((tok, text));
        }
    }
    out.push((Tok::End, String::new()));
    out
}

// --- parser ----------------------------------------------------------------

/// Recursive-descent parser over the token list. Where a token is read
/// "as a value" the keywords `in`/`notin` count as identifiers, so
/// `in in (in)` is a valid selector, as in Kubernetes.
struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, as_value: bool) -> (Tok, &str) {
        let (tok, lit) = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        let tok = match tok {
            Tok::In | Tok::NotIn if as_value => Tok::Identifier,
            t => *t,
        };
        (tok, lit)
    }

    fn next(&mut self, as_value: bool) -> (Tok, String) {
        let (tok, lit) = self.peek(as_value);
        let lit = lit.to_owned();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        (tok, lit)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.peek(true);
            match tok {
                Tok::Identifier | Tok::Bang => {
                    let r = self.requirement().map_err(SelectorError::Requirement)?;
                    out.push(r);
                    let (tok, lit) = self.next(true);
                    match tok {
                        Tok::End => return Ok(out),
                        Tok::Comma => {
                            let (tok, lit) = self.peek(true);
                            if tok != Tok::Identifier && tok != Tok::Bang {
                                return Err(SelectorError::Syntax(format!(
                                    "found '{lit}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax(format!(
                                "found '{lit}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Tok::End => return Ok(out),
                _ => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut negated = false;
        let (mut tok, mut key) = self.next(true);
        if tok == Tok::Bang {
            negated = true;
            (tok, key) = self.next(true);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        validate_label_key(&key)?;
        let (after, _) = self.peek(true);
        if negated {
            // `!key` takes no operator; anything after it is reported by the
            // caller as an unexpected token.
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if after == Tok::End || after == Tok::Comma {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let (tok, lit) = self.next(false);
        let operator = match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::Greater => Operator::GreaterThan,
            Tok::Less => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, operator, values)
    }

    /// `(a,b,c)`. As in Kubernetes, empty members are the empty value:
    /// `()` and `(,a)` both contain `""`.
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(true);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(true);
        match tok {
            Tok::ClosedPar => {
                self.next(true);
                Ok(vec![String::new()])
            }
            Tok::Identifier | Tok::Comma => {
                let lit = lit.to_owned();
                let values = self.identifier_list()?;
                let (tok, _) = self.next(true);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(true);
            match tok {
                Tok::Identifier => {
                    values.push(lit);
                    let (tok, lit) = self.peek(true);
                    match tok {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{lit}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek(true).0 {
                        Tok::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Tok::Comma => {
                            self.next(true);
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>`, `<`; nothing before a
    /// comma or the end means the empty value (`a=` selects `a: ""`).
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(true);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(true);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// --- validation ------------------------------------------------------------

const NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a label key
/// and (when non-empty) a label value.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain: dot-separated lowercase labels of `[a-z0-9-]`, each
/// starting and ending alphanumeric.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";

/// A label key is a qualified name: `name` or `prefix/name`, the prefix a DNS
/// subdomain of at most 253 characters, the name at most 63 characters.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let mut errs: Vec<String> = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                if prefix.len() > SUBDOMAIN_MAX {
                    errs.push(format!(
                        "prefix part must be no more than {SUBDOMAIN_MAX} characters"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(
                        "prefix part a lowercase RFC 1123 subdomain must consist of lower case \
                         alphanumeric characters, '-' or '.', and must start and end with an \
                         alphanumeric character"
                            .into(),
                    );
                }
            }
            *name
        }
        _ => {
            return Err(format!(
                "key: Invalid value: {key:?}: a qualified name {NAME_RULE}, with an optional DNS \
                 subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > NAME_MAX {
        errs.push(format!(
            "name part must be no more than {NAME_MAX} characters"
        ));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {NAME_RULE}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: {key:?}: {}", errs.join("; ")))
    }
}

/// A label value is empty, or at most 63 characters of `[A-Za-z0-9-_.]`
/// starting and ending with an alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if value.len() > NAME_MAX {
        errs.push(format!("must be no more than {NAME_MAX} characters"));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(format!("a valid label {NAME_RULE}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("Invalid value: {value:?}: {}", errs.join("; ")))
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// How a field requirement compares the field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value`
    Equals,
    /// `field==value` (same meaning as `=`)
    DoubleEquals,
    /// `field!=value`
    NotEquals,
}

impl FieldOperator {
    /// The operator as written in a selector.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::DoubleEquals => "==",
            FieldOperator::NotEquals => "!=",
        }
    }
}

/// One `field op value` term of a field selector. The value is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name` or `spec.nodeName`, as written.
    pub field: String,
    /// How the field's value is compared.
    pub operator: FieldOperator,
    /// The value to compare with, escapes (`\,` `\=` `\\`) resolved.
    pub value: String,
}

/// A parsed field selector: terms that must all hold (logical AND).
///
/// Which fields exist is up to each resource (the API server checks the
/// field names per kind); this type only knows the syntax and the matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `?fieldSelector=`: comma-separated `k=v`, `k==v`, `k!=v`
    /// terms. A `,` or `=` inside a value must be escaped with `\`, and `\\`
    /// is a backslash. Empty terms are skipped; the empty string matches
    /// everything. Like Kubernetes, the text around the operator is taken
    /// verbatim (no trimming), and terms are kept in sorted order.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The terms, in sorted order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when there is no term, so every object matches.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value that `field` must equal, if the selector pins it with `=` or
    /// `==` (lets a caller narrow a lookup, e.g. `metadata.name=x`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object matches. `get` returns a field's value; a field it
    /// does not know (`None`) counts as the empty string, as in Kubernetes.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals | FieldOperator::DoubleEquals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    /// Selector syntax with values re-escaped, terms joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{}{}{}",
                r.field,
                r.operator.as_str(),
                escape_value(&r.value)
            )?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Escapes `\`, `,` and `=` so a value can be written into a field selector.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not escaped by a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Finds the first operator in a term, preferring `!=`, then `==`, then `=`
/// at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in [
            FieldOperator::NotEquals,
            FieldOperator::DoubleEquals,
            FieldOperator::Equals,
        ] {
            if rest.starts_with(op.as_str()) {
                return Some((&term[..i], op, &rest[op.as_str().len()..]));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )));
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn parses_every_operator() {
        let cases = [
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a in (y,x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("a", "a"),
            ("!a", "!a"),
            ("a>1", "a>1"),
            ("a<10", "a<10"),
            ("a=", "a="),
            ("example.com/app=web", "example.com/app=web"),
        ];
        for (input, printed) in cases {
            assert_eq!(sel(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn whitespace_is_ignored_and_requirements_are_sorted() {
        let s = sel("  tier in ( a , b ) ,  app = web , !canary ");
        assert_eq!(s.to_string(), "app=web,!canary,tier in (a,b)");
        assert_eq!(s.requirements().len(), 3);
        assert_eq!(s.requirements()[2].operator(), Operator::In);
        assert_eq!(s.requirements()[2].values(), ["a", "b"]);
    }

    #[test]
    fn keywords_are_identifiers_in_value_position() {
        let s = sel("in in (in,notin)");
        assert!(s.matches(&labels(&[("in", "notin")])));
        assert!(sel("notin=in").matches(&labels(&[("notin", "in")])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(&BTreeMap::new()));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert!(sel("   ").is_empty());
        assert!(s.matches_json(&Value::Null));
    }

    #[test]
    fn matching_semantics() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "7")]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(sel("missing!=x").matches(&l), "!= matches absent labels");
        assert!(sel("tier in (front,back)").matches(&l));
        assert!(!sel("tier notin (front)").matches(&l));
        assert!(
            sel("missing notin (x)").matches(&l),
            "notin matches absent labels"
        );
        assert!(!sel("missing in (x)").matches(&l));
        assert!(sel("app").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("!missing").matches(&l));
        assert!(sel("n>6,n<8").matches(&l));
        assert!(!sel("n>7").matches(&l));
        assert!(
            !sel("app>1").matches(&l),
            "non-integer label never compares"
        );
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(
            !sel("app=web,tier=back").matches(&l),
            "requirements are ANDed"
        );
        assert!(sel("x=").matches(&labels(&[("x", "")])));
        assert!(!sel("x=").matches(&BTreeMap::new()));
    }

    #[test]
    fn matches_json_labels() {
        let l = json!({"app": "web", "odd": 3});
        assert!(sel("app=web").matches_json(&l));
        assert!(
            !sel("odd").matches_json(&l),
            "non-string values are ignored"
        );
        assert!(sel("!app").matches_json(&json!(null)));
    }

    #[test]
    fn empty_set_members_are_the_empty_value() {
        // Kubernetes reads `()` and `(,a)` as containing the empty value.
        assert_eq!(sel("a in ()").requirements()[0].values(), [""]);
        assert_eq!(sel("a in (,b)").requirements()[0].values(), ["", "b"]);
        assert_eq!(sel("a in (b,)").requirements()[0].values(), ["", "b"]);
        assert!(sel("a in ()").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn invalid_selectors() {
        let bad = [
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            ("a=b,", "found '', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "a=(b)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "(a)",
                "found '(', expected: !, identifier, or 'end of string'",
            ),
            ("a>b", "the value must be an integer"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ];
        for (input, want) in bad {
            let err = LabelSelector::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn keys_and_values_are_validated() {
        for key in [
            "-a",
            "a-",
            "a%b",
            "A/b",
            "/a",
            "a/",
            "a/b/c",
            &"k".repeat(64),
        ] {
            let err = LabelSelector::parse(&format!("{key}=v"))
                .expect_err(key)
                .to_string();
            assert!(
                err.starts_with("unable to parse requirement: key: Invalid value"),
                "{key}: {err}"
            );
        }
        for key in ["a", "A_b.c-9", "example.com/a", &"k".repeat(63)] {
            sel(&format!("{key}=v"));
        }
        for value in ["-v", "v-", "v/x", &"v".repeat(64)] {
            let err = LabelSelector::parse(&format!("a={value}"))
                .expect_err(value)
                .to_string();
            assert!(err.contains("Invalid value"), "{value}: {err}");
        }
        sel(&format!("a={}", "v".repeat(63)));
        sel("a=V_1.x-2");
    }

    #[test]
    fn structured_selectors() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,tier in (a,b)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));

        let everything = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(everything.is_empty());
        assert!(everything.matches(&labels(&[("x", "y")])));

        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(nothing.is_nothing() && !nothing.is_empty());
        assert!(!nothing.matches(&BTreeMap::new()));
        assert_eq!(nothing.to_string(), "");

        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        let err = LabelSelector::from_label_selector_json(&empty_in)
            .unwrap_err()
            .to_string();
        assert!(err.contains("values set can't be empty"), "{err}");

        let bad_op =
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]});
        let err = LabelSelector::from_label_selector_json(&bad_op)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"Equals\" is not a valid label selector operator"),
            "{err}"
        );

        let exists_with_values =
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]});
        assert!(LabelSelector::from_label_selector_json(&exists_with_values).is_err());
        assert!(
            LabelSelector::from_label_selector_json(&json!({"matchLabels": {"a b": "c"}})).is_err()
        );
        assert!(LabelSelector::from_label_selector_json(&json!("app=web")).is_err());
    }

    #[test]
    fn from_map_is_an_equality_selector() {
        let s = LabelSelector::from_map(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!s.matches(&labels(&[("a", "1")])));
        assert!(LabelSelector::from_map(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn field_selector_parsing() {
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Running").unwrap();
        let r = f.requirements();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            FieldRequirement {
                field: "spec.nodeName".into(),
                operator: FieldOperator::Equals,
                value: "n1".into()
            }
        );
        assert_eq!(r[1].operator, FieldOperator::NotEquals);
        assert_eq!(r[1].field, "status.phase");
        assert_eq!(f.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(f.requires_exact_match("status.phase"), None);

        let f = FieldSelector::parse("metadata.name==a").unwrap();
        assert_eq!(f.requirements()[0].operator, FieldOperator::DoubleEquals);
        assert_eq!(f.requirements()[0].value, "a");

        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a=").unwrap().requirements()[0].value,
            ""
        );
    }

    #[test]
    fn field_selector_escapes() {
        let f = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(f.requirements().len(), 1);
        assert_eq!(f.requirements()[0].value, r"a,b=c\d");
        assert_eq!(f.to_string(), r"metadata.name=a\,b\=c\\d");

        for (bad, want) in [
            ("a", "can't understand 'a'"),
            (r"a=b\x", r"invalid escape sequence: \x"),
            (r"a=b\", r"invalid escape sequence: \"),
            ("a=b=c", "unescaped character in value: ="),
        ] {
            let err = FieldSelector::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
    }

    #[test]
    fn field_selector_matching() {
        let get = |f: &str| match f {
            "metadata.name" => Some("web-1".to_string()),
            "spec.nodeName" => Some(String::new()),
            _ => None,
        };
        assert!(FieldSelector::parse("").unwrap().matches(get));
        assert!(
            FieldSelector::parse("metadata.name=web-1")
                .unwrap()
                .matches(get)
        );
        assert!(
            !FieldSelector::parse("metadata.name=web-2")
                .unwrap()
                .matches(get)
        );
        assert!(
            FieldSelector::parse("metadata.name!=web-2")
                .unwrap()
                .matches(get)
        );
        assert!(FieldSelector::parse("spec.nodeName=").unwrap().matches(get));
        assert!(
            FieldSelector::parse("unknown=").unwrap().matches(get),
            "unknown fields read as empty"
        );
        assert!(
            !FieldSelector::parse("metadata.name=web-1,spec.nodeName!=")
                .unwrap()
                .matches(get)
        );
    }
}
