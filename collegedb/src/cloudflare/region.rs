//! The D1 region closest to a request, from Cloudflare's geolocation of it.
//!
//! Used as the target of [`Strategy::Location`](crate::Strategy::Location):
//! place a new user's rows near where they signed up.

use js_sys::Reflect;
use wasm_bindgen::JsValue;
use worker::Request;

use super::parse_f64;
use crate::strategy::Region;

/// The region used when a request has no usable geolocation: no `cf`
/// object (requests made by the Worker itself, and local development with
/// `wrangler dev`, where `cf` is a placeholder), or a country such as `T1`
/// (Tor) or `XX` (unknown). Eastern North America hosts the most Cloudflare
/// traffic and D1's default primary locations.
pub const FALLBACK_REGION: Region = Region::Enam;

/// Countries placed in the Middle East region (`me`), whatever their continent.
const MIDDLE_EAST: &[&str] = &[
    "AE", "BH", "EG", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "SY", "YE",
];

/// Countries placed in Eastern Europe (`eeur`), whatever their continent
/// (Turkey, Cyprus and the Caucasus are `AS` in Cloudflare's data but nearer
/// Eastern Europe's data centres than Asia-Pacific's). Every other `EU`
/// country is Western Europe (`weur`).
const EASTERN_EUROPE: &[&str] = &[
    "AL", "AM", "AZ", "BA", "BG", "BY", "CY", "CZ", "EE", "FI", "GE", "GR", "HR", "HU", "LT", "LV",
    "MD", "ME", "MK", "PL", "RO", "RS", "RU", "SK", "TR", "UA", "XK",
];

/// US states and Canadian provinces in Western North America (`wnam`), used
/// when a North American request has no longitude.
const WESTERN_NORTH_AMERICA: &[(&str, &str)] = &[
    ("US", "AK"),
    ("US", "AZ"),
    ("US", "CA"),
    ("US", "CO"),
    ("US", "HI"),
    ("US", "ID"),
    ("US", "MT"),
    ("US", "NM"),
    ("US", "NV"),
    ("US", "OR"),
    ("US", "UT"),
    ("US", "WA"),
    ("US", "WY"),
    ("CA", "AB"),
    ("CA", "BC"),
    ("CA", "NT"),
    ("CA", "YT"),
];

/// West of this longitude, North America is `wnam`; east of it, `enam`
/// (about halfway between the two regions' centres).
const WNAM_ENAM_LONGITUDE: f64 = -100.0;

/// What Cloudflare knows of where a request comes from (`request.cf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code (`"US"`), `cf.country`.
    pub country: Option<String>,
    /// Continent code (`"NA"`, `"SA"`, `"EU"`, `"AS"`, `"OC"`, `"AF"`, `"AN"`), `cf.continent`.
    pub continent: Option<String>,
    /// Longitude in degrees, `cf.longitude`.
    pub longitude: Option<f64>,
    /// ISO 3166-2 code of the first-level region (`"TX"`), `cf.regionCode`.
    pub region_code: Option<String>,
}

impl Geo {
    /// The geolocation of `request`, or `None` when it has no `cf` object.
    pub fn of(request: &Request) -> Option<Geo> {
        let cf = Reflect::get(request.inner(), &JsValue::from_str("cf")).ok()?;
        if !cf.is_object() {
            return None;
        }
        let text = |field: &str| {
            Reflect::get(&cf, &JsValue::from_str(field))
                .ok()
                .and_then(|v| v.as_string())
                .filter(|s| !s.is_empty())
        };
        let longitude = Reflect::get(&cf, &JsValue::from_str("longitude"))
            .ok()
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_string().and_then(|s| parse_f64(s.trim())))
            })
            .filter(|l: &f64| l.is_finite());
        Some(Geo {
            country: text("country"),
            continent: text("continent"),
            longitude,
            region_code: text("regionCode"),
        })
    }
}

/// The D1 region for a geolocation, or `None` if it says too little.
///
/// In order:
/// 1. Middle-East countries → `me`; Eastern-European countries (including
///    Turkey, Cyprus, the Caucasus) → `eeur`.
/// 2. By continent: `NA` → `wnam` west of 100° W, else `enam` (without a
///    longitude: `wnam` for the western US states and Canadian provinces,
///    else `enam`); `SA` → `enam`; `EU` → `weur`; `AS` → `apac`;
///    `OC` and `AN` → `oc`; `AF` → `af`.
/// 3. Anything else (no continent, `T1`, `XX`) → `None`.
pub fn region_for(geo: &Geo) -> Option<Region> {
    let country = geo.country.as_deref().map(str::to_ascii_uppercase);
    if let Some(country) = country.as_deref() {
        if MIDDLE_EAST.contains(&country) {
            return Some(Region::Me);
        }
        if EASTERN_EUROPE.contains(&country) {
            return Some(Region::Eeur);
        }
    }
    let continent = geo.continent.as_deref()?.to_ascii_uppercase();
    Some(match continent.as_str() {
        "NA" => match geo.longitude {
            Some(longitude) if longitude < WNAM_ENAM_LONGITUDE => Region::Wnam,
            Some(_) => Region::Enam,
            None => {
                let region = geo.region_code.as_deref().map(str::to_ascii_uppercase);
                let west = match (country.as_deref(), region.as_deref()) {
                    (Some(c), Some(r)) => WESTERN_NORTH_AMERICA.contains(&(c, r)),
                    _ => false,
                };
                if west {
                    Region::Wnam
                } else {
                    Region::Enam
                }
            }
        },
        "SA" => Region::Enam,
        "EU" => Region::Weur,
        "AS" => Region::Apac,
        "OC" | "AN" => Region::Oc,
        "AF" => Region::Af,
        _ => return None,
    })
}

/// The D1 region closest to where `request` comes from, or
/// [`FALLBACK_REGION`] when Cloudflare did not geolocate it (see there).
pub fn closest_region(request: &Request) -> Region {
    Geo::of(request)
        .as_ref()
        .and_then(region_for)
        .unwrap_or(FALLBACK_REGION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(country: &str, continent: &str, longitude: Option<f64>, region: Option<&str>) -> Geo {
        Geo {
            country: Some(country.into()),
            continent: Some(continent.into()),
            longitude,
            region_code: region.map(Into::into),
        }
    }

    #[test]
    fn north_america_splits_by_longitude_then_by_state() {
        assert_eq!(
            region_for(&geo("US", "NA", Some(-122.4), None)),
            Some(Region::Wnam)
        );
        assert_eq!(
            region_for(&geo("US", "NA", Some(-74.0), None)),
            Some(Region::Enam)
        );
        assert_eq!(
            region_for(&geo("US", "NA", None, Some("CA"))),
            Some(Region::Wnam)
        );
        assert_eq!(
            region_for(&geo("US", "NA", None, Some("TX"))),
            Some(Region::Enam)
        );
        assert_eq!(
            region_for(&geo("CA", "NA", None, Some("BC"))),
            Some(Region::Wnam)
        );
        assert_eq!(region_for(&geo("BR", "SA", None, None)), Some(Region::Enam));
    }

    #[test]
    fn europe_middle_east_and_the_rest() {
        assert_eq!(region_for(&geo("DE", "EU", None, None)), Some(Region::Weur));
        assert_eq!(region_for(&geo("PL", "EU", None, None)), Some(Region::Eeur));
        assert_eq!(region_for(&geo("TR", "AS", None, None)), Some(Region::Eeur));
        assert_eq!(region_for(&geo("AE", "AS", None, None)), Some(Region::Me));
        assert_eq!(region_for(&geo("EG", "AF", None, None)), Some(Region::Me));
        assert_eq!(region_for(&geo("JP", "AS", None, None)), Some(Region::Apac));
        assert_eq!(region_for(&geo("AU", "OC", None, None)), Some(Region::Oc));
        assert_eq!(region_for(&geo("ZA", "AF", None, None)), Some(Region::Af));
        assert_eq!(region_for(&geo("T1", "T1", None, None)), None);
        assert_eq!(region_for(&Geo::default()), None);
    }
}
