//! The few command-line options the examples take (no parser dependency).

/// The value after `--name` in `args` (e.g. `--port 3000`), parsed.
///
/// # Errors
///
/// A message naming the option if the value is missing or does not parse.
pub fn option<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>, String> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args
        .get(i + 1)
        .ok_or_else(|| format!("{name} needs a value"))?;
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{name}: cannot parse {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::option;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_present_missing_and_bad_values() {
        assert_eq!(option::<u16>(&args("x --port 80"), "--port"), Ok(Some(80)));
        assert_eq!(option::<u16>(&args("x"), "--port"), Ok(None));
        assert!(option::<u16>(&args("x --port"), "--port").is_err());
        assert!(option::<u16>(&args("x --port http"), "--port").is_err());
    }
}
