//! Secrets from the environment, so that they show in no config file and
//! in no `ps`: a variable, or a file named by the same variable with
//! `_FILE` appended (the convention of Docker secrets and of systemd's
//! credentials).

use super::ConfigError;

/// A secret read from the environment, and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvSecret {
    /// The secret.
    pub value: String,
    /// The variable, or `{var}_FILE (path)`: what a configuration error
    /// about the value names ([`super::Origins`]).
    pub origin: String,
}

impl std::fmt::Debug for EnvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSecret")
            .field("value", &"***")
            .field("origin", &self.origin)
            .finish()
    }
}

/// The secret in `var`, or in the file named by `{var}_FILE`, without its
/// final line break. `Ok(None)`: neither is set. An empty secret, both set,
/// or a file that cannot be read is an error naming the variable and `key`,
/// the setting it stands for.
pub fn secret_from_env(var: &str, key: &'static str) -> Result<Option<EnvSecret>, ConfigError> {
    let file_var = format!("{var}_FILE");
    let invalid = |origin: &str, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        message,
    };
    let secret = match (std::env::var(var), std::env::var(&file_var)) {
        (Ok(_), Ok(_)) => return Err(invalid(var, format!("is set, and so is {file_var}: set one"))),
        (Ok(value), Err(_)) => (value, var.to_owned()),
        (Err(_), Ok(path)) => {
            let text =
                std::fs::read_to_string(&path).map_err(|e| invalid(&file_var, format!("cannot read {path}: {e}")))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            (text.to_owned(), format!("{file_var} ({path})"))
        }
        (Err(_), Err(_)) => return Ok(None),
    };
    match secret {
        (value, origin) if value.is_empty() => Err(invalid(&origin, "is set but empty: unset it for none".to_owned())),
        (value, origin) => Ok(Some(EnvSecret { value, origin })),
    }
}
