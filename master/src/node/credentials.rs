//! Secure by default: a master started without a cluster token, or without
//! any client token or tenants file, generates what is missing, keeps it in
//! `<data dir>/credentials.toml` (readable by its owner only) so that a
//! restart keeps agents and clients working, and reports it so the operator
//! can hand it out (see `docs/operators-guide.md`, Tenants and tokens).

use super::MasterConfig;
use std::path::{Path, PathBuf};
use weft_core::token;

/// Tokens the master made up for itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Stored {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cluster_token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    client_token: String,
}

/// What the master generated for itself at start, to tell the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    /// The cluster token was generated (or read back from an earlier run).
    pub cluster_token: bool,
    /// The admin client token was.
    pub client_token: bool,
    /// Where they are kept.
    pub file: Option<PathBuf>,
}

/// Fill in a missing cluster token, and a client token when no tenant is
/// configured at all, from the credentials file of an earlier run or fresh.
pub(super) fn ensure(config: &mut MasterConfig) -> Result<Generated, String> {
    let need_cluster = config.cluster_token.is_empty();
    let need_client = config.client_token.is_empty() && config.tenants.is_none();
    if !need_cluster && !need_client {
        return Ok(Generated::default());
    }
    let path = config.data_dir.join("credentials.toml");
    let mut stored = read(&path)?;
    let mut changed = false;
    let mut fill = |slot: &mut String, prefix: &str| -> Result<(), String> {
        if slot.is_empty() {
            *slot = token::generate(prefix).map_err(|e| e.to_string())?;
            changed = true;
        }
        Ok(())
    };
    if need_cluster {
        fill(&mut stored.cluster_token, "weft_c_")?;
        config.cluster_token = stored.cluster_token.clone();
    }
    if need_client {
        fill(&mut stored.client_token, "weft_t_")?;
        config.client_token = stored.client_token.clone();
    }
    if changed {
        write(&path, &stored)?;
    }
    Ok(Generated { cluster_token: need_cluster, client_token: need_client, file: Some(path) })
}

fn read(path: &Path) -> Result<Stored, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| format!("{}: {e} (delete it to generate new tokens)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn write(path: &Path, stored: &Stored) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("writing {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = toml::to_string(stored).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("toml.tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp).map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_tokens_are_generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MasterConfig { data_dir: dir.path().into(), ..Default::default() };
        let made = ensure(&mut config).unwrap();
        assert!(made.cluster_token && made.client_token);
        assert!(config.cluster_token.starts_with("weft_c_") && config.client_token.starts_with("weft_t_"));
        let file = made.file.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mut again = MasterConfig { data_dir: dir.path().into(), ..Default::default() };
        ensure(&mut again).unwrap();
        assert_eq!((again.cluster_token, again.client_token), (config.cluster_token, config.client_token));
    }

    #[test]
    fn configured_tokens_or_tenants_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MasterConfig {
            data_dir: dir.path().into(),
            cluster_token: "weft_c_given".into(),
            tenants: Some(dir.path().join("tenants.toml")),
            ..Default::default()
        };
        assert_eq!(ensure(&mut config).unwrap(), Generated::default());
        assert_eq!((config.cluster_token.as_str(), config.client_token.as_str()), ("weft_c_given", ""));
        assert!(!dir.path().join("credentials.toml").exists());
    }
}
