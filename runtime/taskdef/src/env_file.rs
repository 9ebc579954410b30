//! Environment files (containerDefinitions[].environmentFiles), read from the host by the runner.

use crate::error::Error;

/// Parses an environment file in ECS's format into `NAME=VALUE` entries:
/// one `NAME=VALUE` per line; lines that are blank or start with `#` are skipped; the value is the rest
/// of the line taken literally (no quote or escape processing, as in ECS); a trailing `\r` is dropped.
/// A line without `=` or with an empty name is an error, since ECS has no "inherit from host" form.
pub fn parse_env_file(text: &str) -> Result<Vec<String>, Error> {
    let mut entries = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let error = |message: &str| Error::EnvFile {
            line: number + 1,
            message: message.to_owned(),
        };
        let Some((name, _)) = line.split_once('=') else {
            return Err(error("expected NAME=VALUE"));
        };
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '\0') {
            return Err(error(
                "the name must be non-empty and contain no whitespace",
            ));
        }
        if line.contains('\0') {
            return Err(error("NUL is not allowed"));
        }
        entries.push(line.to_owned());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_comments_and_blank_lines() {
        let text = "# settings\nA=1\n\n  # indented comment\nB=two words = ok\r\nC=\n";
        assert_eq!(
            parse_env_file(text).expect("valid"),
            ["A=1", "B=two words = ok", "C="]
        );
    }

    #[test]
    fn values_are_literal() {
        assert_eq!(
            parse_env_file("Q=\"quoted\"").expect("valid"),
            ["Q=\"quoted\""]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        let err = parse_env_file("A=1\nJUSTNAME\n").expect_err("no =");
        assert_eq!(err.to_string(), "line 2: expected NAME=VALUE");
        let err = parse_env_file("=x").expect_err("empty name");
        assert_eq!(
            err.to_string(),
            "line 1: the name must be non-empty and contain no whitespace"
        );
        assert!(parse_env_file(" A=1").is_err());
    }
}
