//! JSON text → [`TaskDefinition`], with the JSON path of any error.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::error::Error;
use crate::model::{DescribeTaskDefinitionOutput, TaskDefinition};

/// Path shown for an error at the top of the document.
const ROOT: &str = "(root)";

/// Reads a task definition: either the bare object (RegisterTaskDefinition input, or the
/// `taskDefinition` member) or whole `aws ecs describe-task-definition` output
/// (`{"taskDefinition": {...}, "tags": [...]}`), whose tags are moved into the definition.
pub fn parse(json: &str) -> Result<TaskDefinition, Error> {
    if is_describe_output(json) {
        let output: DescribeTaskDefinitionOutput = deserialize(json)?;
        let mut definition = output.task_definition;
        // DescribeTaskDefinition returns tags beside the definition, RegisterTaskDefinition takes them
        // inside; keep both if a hand-edited file has both.
        if let Some(outer) = output.tags {
            definition.tags.get_or_insert_with(Vec::new).extend(outer);
        }
        Ok(definition)
    } else {
        deserialize(json)
    }
}

/// The wrapper is recognised by its `taskDefinition` key. A document that is not valid JSON is not a
/// wrapper; the typed pass then reports the syntax error with its path.
fn is_describe_output(json: &str) -> bool {
    matches!(
        serde_json::from_str::<serde_json::Value>(json),
        Ok(serde_json::Value::Object(map)) if map.contains_key("taskDefinition")
    )
}

fn deserialize<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = render_path(err.path());
        parse_error(path, err.inner())
    })?;
    // Trailing text after the object is as wrong as a syntax error inside it.
    de.end().map_err(|err| parse_error(ROOT.to_owned(), &err))?;
    Ok(value)
}

fn parse_error(path: String, err: &serde_json::Error) -> Error {
    let full = err.to_string();
    // serde_json appends " at line L column C"; the line and column get their own fields.
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let (path, message) = match unknown_field(message) {
        Some((field, expected)) => {
            // serde_path_to_error usually records the key already; make sure it is the last segment.
            let path = if path == ROOT {
                field.to_owned()
            } else if path == field || path.ends_with(&format!(".{field}")) {
                path
            } else {
                format!("{path}.{field}")
            };
            (path, unknown_field_message(field, &expected))
        }
        None => (path, message.to_owned()),
    };
    Error::Parse {
        path,
        message,
        line: err.line(),
        column: err.column(),
    }
}

/// Renders serde_path_to_error's path in the style the validator uses: `a.b[2].c`.
fn render_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            // Only untagged/externally tagged enums produce these; the model has none that matter.
            Segment::Enum { .. } => {}
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() {
        ROOT.to_owned()
    } else {
        out
    }
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into the field and the expected names.
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    // Backtick-quoted names alternate with separators, so the odd pieces are the names.
    let expected = expected.split('`').skip(1).step_by(2).collect();
    Some((field, expected))
}

fn unknown_field_message(field: &str, expected: &[&str]) -> String {
    let base = "unknown field: not part of the ECS task definition schema";
    match closest(field, expected) {
        Some(suggestion) => format!("{base} (did you mean `{suggestion}`?)"),
        None => base.to_owned(),
    }
}

/// The expected name nearest to a misspelling, if it is near enough to be a plausible typo.
fn closest<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    let field_lower = field.to_ascii_lowercase();
    expected
        .iter()
        .map(|candidate| {
            (
                edit_distance(&field_lower, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 5))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance (two-row form).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(json: &str) -> (String, String, usize, usize) {
        match parse(json) {
            Err(Error::Parse {
                path,
                message,
                line,
                column,
            }) => (path, message, line, column),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn bare_definition() {
        let def = parse(
            r#"{"family": "web", "containerDefinitions": [{"name": "a", "image": "busybox"}]}"#,
        )
        .expect("parses");
        assert_eq!(def.family.as_deref(), Some("web"));
        assert_eq!(def.container_definitions.map(|c| c.len()), Some(1));
    }

    #[test]
    fn describe_wrapper_moves_tags_inside() {
        let json = r#"{"taskDefinition": {"family": "web", "tags": [{"key": "a", "value": "1"}]},
                       "tags": [{"key": "b", "value": "2"}]}"#;
        let def = parse(json).expect("parses");
        assert_eq!(def.family.as_deref(), Some("web"));
        let keys: Vec<_> = def
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| t.key)
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn unknown_field_names_its_path_and_suggests() {
        let (path, message, line, _) = parse_err(
            "{\"family\": \"web\",\n \"containerDefinitions\": [{\"name\": \"a\"}, {\"name\": \"b\", \"esential\": true}]}",
        );
        assert_eq!(path, "containerDefinitions[1].esential");
        assert_eq!(
            message,
            "unknown field: not part of the ECS task definition schema (did you mean `essential`?)"
        );
        assert_eq!(line, 2);
    }

    #[test]
    fn unknown_top_level_field() {
        let (path, message, _, _) = parse_err(r#"{"family": "web", "zzz": 1}"#);
        assert_eq!(path, "zzz");
        assert_eq!(
            message,
            "unknown field: not part of the ECS task definition schema"
        );
    }

    #[test]
    fn unknown_field_inside_wrapper_has_wrapper_path() {
        let (path, _, _, _) =
            parse_err(r#"{"taskDefinition": {"family": "web", "volumes": [{"nme": "x"}]}}"#);
        assert_eq!(path, "taskDefinition.volumes[0].nme");
        let (path, _, _, _) = parse_err(r#"{"taskDefinition": {"family": "web"}, "extra": 1}"#);
        assert_eq!(path, "extra");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let (path, message, line, column) = parse_err(
            r#"{"containerDefinitions": [{"name": "a", "portMappings": [{"containerPort": "80"}]}]}"#,
        );
        assert_eq!(
            path,
            "containerDefinitions[0].portMappings[0].containerPort"
        );
        assert_eq!(message, "invalid type: string \"80\", expected i64");
        assert_eq!((line, column), (1, 79));
    }

    #[test]
    fn syntax_error_has_position() {
        let (path, message, line, column) = parse_err("{\"family\": \"web\",\n \"cpu\": }");
        assert_eq!(path, "cpu");
        assert!(message.starts_with("expected value"), "{message}");
        assert_eq!((line, column), (2, 9));
        let (path, _, _, _) = parse_err(r#"{"family": "web"} trailing"#);
        assert_eq!(path, "(root)");
    }

    #[test]
    fn error_display_is_path_then_message() {
        let err = parse(r#"{"family": 5}"#).expect_err("wrong type");
        assert_eq!(
            err.to_string(),
            "family: invalid type: integer `5`, expected a string (line 1, column 12)"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("esential", "essential"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("memroy", &["memory", "cpu"]), Some("memory"));
        assert_eq!(closest("xyzzy", &["memory", "cpu"]), None);
    }
}
