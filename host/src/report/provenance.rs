//! `plugins.json`: which plugin files a run used, so that it can be reproduced and audited:
//! each plugin's name, version, file and the SHA-256 of the file, with the components of the
//! recipe it provided.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::recipe::Recipe;
use crate::registry::Registry;

/// One plugin file used by a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginUse {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The file it was loaded from.
    pub file: String,
    /// SHA-256 of the file, in hex.
    pub sha256: String,
    /// The recipe's components it provided.
    pub components: Vec<String>,
}

/// The hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let digest = Sha256::digest(fs::read(path)?);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Every component name the recipe uses.
fn component_names(recipe: &Recipe) -> Vec<&str> {
    let mut names = vec![recipe.model.name.as_str(), recipe.loss.name.as_str()];
    names.extend(recipe.augment.iter().map(|c| c.name.as_str()));
    names.extend(recipe.batch_augment.entries.iter().map(|c| c.name.as_str()));
    names.extend(recipe.metrics.iter().map(|c| c.name.as_str()));
    names.extend(recipe.export.iter().map(|c| c.name.as_str()));
    names.extend(recipe.loggers.iter().map(|c| c.name.as_str()));
    names
}

/// The plugins providing the recipe's components, in file order.
pub fn plugins_used(recipe: &Recipe, registry: &Registry) -> std::io::Result<Vec<PluginUse>> {
    let mut by_file: BTreeMap<String, PluginUse> = BTreeMap::new();
    for name in component_names(recipe) {
        let Some(entry) = registry.get(name) else {
            continue;
        };
        let lib = &entry.plugin.library;
        let file = lib.path.display().to_string();
        let used = match by_file.get_mut(&file) {
            Some(used) => used,
            None => by_file.entry(file.clone()).or_insert(PluginUse {
                name: lib.info.name.to_string(),
                version: lib.info.version.to_string(),
                sha256: sha256_file(&lib.path)?,
                file,
                components: Vec::new(),
            }),
        };
        if !used.components.iter().any(|c| c == name) {
            used.components.push(name.to_string());
        }
    }
    Ok(by_file.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
