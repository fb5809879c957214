//! Fixtures shared by the end-to-end tests: the registry rows a test enterprise points at.

use shuzhuan_aggregator::store::{SqliteStore, Store};
use shuzhuan_common::inventory::IndustryType;
use shuzhuan_common::registry::{County, CountyKind, IndustryChain};

/// Seeds a store with the county `xiping` (西平县) and the chain `equipment`
/// (装备制造, discrete): what a test enterprise of the registry points at.
pub fn seed_county_and_chain(s: &SqliteStore) {
    s.upsert_counties(&[County {
        id: "xiping".into(),
        name: "西平县".into(),
        name_en: "Xiping".into(),
        kind: CountyKind::County,
        division_code: None,
    }])
    .unwrap();
    s.upsert_chains(&[IndustryChain {
        id: "equipment".into(),
        name: "装备制造".into(),
        name_en: "Equipment".into(),
        cluster: None,
        industry_type: IndustryType::Discrete,
    }])
    .unwrap();
}
