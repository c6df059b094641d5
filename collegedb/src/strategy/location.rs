//! Location placement: new keys go to the shard nearest a target region.
//!
//! Scoring, in order:
//! 1. distance: the great-circle distance between the centres of the target
//!    region and the shard's region, in 500 km bands (same region = band 0);
//! 2. priority: within a band, the shard with the higher `priority` wins;
//! 3. ties: shards equal on both are chosen among by the key's hash, so keys
//!    spread over them evenly.
//!
//! Shards without a configured location rank after every located shard.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A D1 location hint region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Western North America.
    Wnam,
    /// Eastern North America.
    Enam,
    /// Western Europe.
    Weur,
    /// Eastern Europe.
    Eeur,
    /// Asia-Pacific.
    Apac,
    /// Oceania.
    Oc,
    /// Middle East.
    Me,
    /// Africa.
    Af,
}

impl Region {
    /// Every region.
    pub const ALL: [Region; 8] = [
        Region::Wnam,
        Region::Enam,
        Region::Weur,
        Region::Eeur,
        Region::Apac,
        Region::Oc,
        Region::Me,
        Region::Af,
    ];

    /// The region's code (`"wnam"`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Region::Wnam => "wnam",
            Region::Enam => "enam",
            Region::Weur => "weur",
            Region::Eeur => "eeur",
            Region::Apac => "apac",
            Region::Oc => "oc",
            Region::Me => "me",
            Region::Af => "af",
        }
    }

    /// A representative centre (latitude, longitude) in degrees.
    fn centre(self) -> (f64, f64) {
        match self {
            Region::Wnam => (37.4, -122.1),
            Region::Enam => (39.0, -77.5),
            Region::Weur => (50.1, 8.7),
            Region::Eeur => (52.2, 21.0),
            Region::Apac => (1.35, 103.8),
            Region::Oc => (-33.9, 151.2),
            Region::Me => (25.2, 55.3),
            Region::Af => (-26.2, 28.0),
        }
    }

    /// Great-circle distance between two region centres, in kilometres.
    pub fn distance_km(self, other: Region) -> f64 {
        let (lat1, lon1) = self.centre();
        let (lat2, lon2) = other.centre();
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let dp = p2 - p1;
        let dl = (lon2 - lon1).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().asin()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Region {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Region::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown region `{s}`: expected one of wnam, enam, weur, eeur, apac, oc, me, af"
                ))
            })
    }
}

/// Where a shard lives, and how much it is preferred within its distance band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardLocation {
    /// The shard's region.
    pub region: Region,
    /// Higher wins among shards at the same distance.
    pub priority: u32,
}

impl ShardLocation {
    /// A location with priority 1.
    pub fn new(region: Region) -> Self {
        ShardLocation {
            region,
            priority: 1,
        }
    }

    /// The same location with another priority.
    pub fn priority(self, priority: u32) -> Self {
        ShardLocation { priority, ..self }
    }
}

/// The 500 km band of [`Region::distance_km`] between every two regions, in
/// [`Region::ALL`] order: placement needs only the band, and a table spares
/// the Worker the trigonometry of the distance (several KB of wasm). No
/// distance is within 15 km of a band's edge, so rounding cannot move one; a
/// test checks the table against the distances.
const BANDS: [[u8; 8]; 8] = [
    [0, 7, 18, 18, 27, 23, 26, 33],
    [7, 0, 13, 14, 31, 31, 22, 26],
    [18, 13, 0, 1, 20, 32, 9, 17],
    [18, 14, 1, 0, 18, 31, 8, 17],
    [27, 31, 20, 18, 0, 12, 11, 17],
    [23, 31, 32, 31, 12, 0, 24, 22],
    [26, 22, 9, 8, 11, 24, 0, 12],
    [33, 26, 17, 17, 17, 22, 12, 0],
];

/// The rank of a shard for `target`: lower is better.
fn rank(target: Region, location: Option<ShardLocation>) -> (u64, i64) {
    match location {
        Some(l) => (
            u64::from(BANDS[l.region as usize][target as usize]),
            -i64::from(l.priority),
        ),
        None => (u64::MAX, 0),
    }
}

/// The index of the best shard for `target` among `locations`, ties broken by `key_hash`.
pub fn pick(target: Region, locations: &[Option<ShardLocation>], key_hash: u64) -> usize {
    let best = locations
        .iter()
        .map(|l| rank(target, *l))
        .min()
        .expect("location placement needs at least one shard");
    let tied: Vec<usize> = (0..locations.len())
        .filter(|&i| rank(target, locations[i]) == best)
        .collect();
    tied[(key_hash % tied.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_region_wins_then_priority() {
        let shards = [
            Some(ShardLocation::new(Region::Weur)),
            Some(ShardLocation::new(Region::Enam)),
            Some(ShardLocation::new(Region::Wnam).priority(1)),
            Some(ShardLocation::new(Region::Wnam).priority(3)),
        ];
        assert_eq!(pick(Region::Wnam, &shards, 0), 3);
        assert_eq!(pick(Region::Wnam, &shards, 1), 3);
        assert_eq!(pick(Region::Enam, &shards, 7), 1);
        assert_eq!(pick(Region::Eeur, &shards, 7), 0);
        // From Oceania, western North America is nearer than eastern North America or Europe.
        assert_eq!(pick(Region::Oc, &shards, 0), 3);
    }

    #[test]
    fn ties_spread_by_hash_and_unlocated_shards_come_last() {
        let shards = [
            None,
            Some(ShardLocation::new(Region::Apac)),
            Some(ShardLocation::new(Region::Apac)),
        ];
        let picks: std::collections::HashSet<usize> =
            (0..10).map(|h| pick(Region::Apac, &shards, h)).collect();
        assert_eq!(picks, [1, 2].into_iter().collect());
    }

    #[test]
    fn bands_are_the_distances_in_500_km_steps() {
        for (i, from) in Region::ALL.into_iter().enumerate() {
            assert_eq!(from as usize, i);
            for to in Region::ALL {
                let km = from.distance_km(to);
                assert_eq!(u64::from(BANDS[i][to as usize]), (km / 500.0) as u64);
                // Far enough from a band's edge for any rounding of the trigonometry.
                let edge = km % 500.0;
                assert!(
                    km == 0.0 || (15.0..485.0).contains(&edge),
                    "{from}-{to}: {km}"
                );
            }
        }
    }

    #[test]
    fn regions_parse_and_reject_unknown() {
        assert_eq!("WNAM".parse::<Region>().unwrap(), Region::Wnam);
        assert_eq!("mars".parse::<Region>().unwrap_err().code(), "config");
        assert_eq!(Region::Weur.distance_km(Region::Weur), 0.0);
    }
}
