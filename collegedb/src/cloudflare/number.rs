//! Reading decimal numbers without the standard library's parser.

/// Reads `text` as `text.parse::<f64>().ok()` does: the same syntax (an
/// optional sign, then `inf`, `infinity` or `nan` in any case, or decimal
/// digits with an optional point and exponent) and the same correctly
/// rounded value, but through the JavaScript runtime's `parseFloat`. The
/// standard library's parser carries about 14 KB (gzip) of tables that a
/// Worker needs for nothing else.
///
/// ```ignore
/// assert_eq!(collegedb::cloudflare::parse_f64("-1.5e3"), Some(-1500.0));
/// assert_eq!(collegedb::cloudflare::parse_f64(".5"), Some(0.5));
/// assert_eq!(collegedb::cloudflare::parse_f64("0x10"), None);
/// ```
pub fn parse_f64(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let named = if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity")
    {
        f64::INFINITY
    } else if unsigned.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if is_decimal(unsigned) {
        // `parseFloat` reads exactly this syntax, sign included.
        return Some(js_sys::parse_float(text));
    } else {
        return None;
    };
    Some(if text.starts_with('-') { -named } else { named })
}

/// Digits with at most one point and at least one digit, then optionally
/// `e` or `E`, a sign and at least one digit.
fn is_decimal(text: &str) -> bool {
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent_ok = exponent.is_none_or(|exponent| {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        !exponent.is_empty() && digits(exponent)
    });
    !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction) && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::is_decimal;

    #[test]
    fn decimal_syntax_is_that_of_str_parse() {
        for text in ["0", "12", "1.", ".5", "1.5", "1e5", "1.E-3", ".5e+2", "007"] {
            assert!(is_decimal(text), "{text}");
            assert!(text.parse::<f64>().is_ok(), "{text}");
        }
        for text in [
            "", ".", "e5", "1e", "1e+", "1.2.3", "0x10", "1_0", " 1", "1 ", "--1", "+-1",
        ] {
            assert!(!is_decimal(text), "{text}");
            assert!(text.parse::<f64>().is_err(), "{text}");
        }
    }
}
