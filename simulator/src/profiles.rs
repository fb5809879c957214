//! Loading device profiles (`config/profiles/*.toml`, schema
//! `shuzhuan_common::profile::Profile`) by id, with file:line:column errors.

use shuzhuan_common::profile::Profile;
use shuzhuan_common::tomlpos::{self, Located};
use std::collections::BTreeMap;
use std::path::Path;

/// Why the profiles could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[from] Located),
    #[error("profile file `{path}` declares id `{id}`; the id must match the file name")]
    IdMismatch { path: String, id: String },
}

/// Every profile in `dir`, by id.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Profile>, ProfileError> {
    let read_err = |e| ProfileError::Read {
        path: dir.display().to_string(),
        source: e,
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = BTreeMap::new();
    for path in paths {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ProfileError::Read {
            path: shown.clone(),
            source: e,
        })?;
        let profile: Profile = tomlpos::parse(&shown, &text)?;
        if path.file_stem().and_then(|s| s.to_str()) != Some(profile.id.as_str()) {
            return Err(ProfileError::IdMismatch {
                path: shown,
                id: profile.id,
            });
        }
        out.insert(profile.id.clone(), profile);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhuan_common::profile::{DataType, Protocol, Table, TagRole};

    fn repo_profiles() -> BTreeMap<String, Profile> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
        load_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shipped_profiles_parse_and_carry_the_manual_addresses() {
        let p = repo_profiles();
        for id in [
            "eastron-sdm630",
            "acrel-adl400",
            "chint-dtsu666",
            "schneider-pm5xxx",
            "generic-plc",
            "opcua-machinetool-cnc",
        ] {
            assert!(p.contains_key(id), "{id} missing");
        }
        let tag = |id: &str, role| {
            p[id]
                .modbus
                .iter()
                .find(|t| t.role == role)
                .unwrap()
                .clone()
        };
        let sdm = tag("eastron-sdm630", TagRole::ActivePower);
        assert_eq!(
            (sdm.table, sdm.address, sdm.data_type),
            (Table::Input, 0x0034, DataType::F32)
        );
        assert_eq!(
            tag("eastron-sdm630", TagRole::EnergyCounter).address,
            0x0048
        );
        let adl = tag("acrel-adl400", TagRole::EnergyCounter);
        assert_eq!(
            (adl.address, adl.data_type, adl.scale),
            (0x084C, DataType::U32, 0.1)
        );
        assert_eq!(tag("chint-dtsu666", TagRole::EnergyCounter).address, 0x401E);
        // 1-based register numbers in the manual: 3060 and 2700.
        assert_eq!(tag("schneider-pm5xxx", TagRole::ActivePower).address, 3059);
        assert_eq!(
            tag("schneider-pm5xxx", TagRole::EnergyCounter).address,
            2699
        );
        let cnc = &p["opcua-machinetool-cnc"];
        assert_eq!(cnc.protocol, Protocol::Opcua);
        assert!(cnc
            .opcua
            .iter()
            .any(|t| t.browse_path.as_deref() == Some("Monitoring/Channel1/ChannelState")));
        for profile in p.values() {
            assert!(
                ["src", "sec", "unverified"].contains(&profile.provenance.confidence.as_str()),
                "{}",
                profile.id
            );
        }
    }

    #[test]
    fn a_bad_profile_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.toml"),
            "id = \"x\"\nname = \"x\"\nprotocol = \"modbus\"\ncolour = 1\n",
        )
        .unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("x.toml:4:1") && err.contains("colour"),
            "{err}"
        );
    }
}
