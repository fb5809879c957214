//! The unified social credit code (统一社会信用代码) of GB 32100-2015: an
//! 18-character identifier whose last character is a mod-31 check character.
//!
//! Layout: position 1 registration authority, 2 entity type, 3-8 the
//! administrative division code (digits), 9-17 the organisation code, 18 the
//! check character. The alphabet is the digits and the capital letters less
//! I, O, S, V and Z. Weights are 3^(i-1) mod 31 for i in 1..=17 and the check
//! value is 31 - (sum mod 31), with 31 written as 0.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The 31 characters a credit code may use, in value order.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weight of each of the first 17 positions.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a string is not a valid credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("credit code `{code}` has {len} characters, expected 18")]
    Length { code: String, len: usize },
    #[error("credit code `{code}`: character {position} `{ch}` is not allowed (digits and A-Y without I, O, S, V, Z)")]
    Character {
        code: String,
        position: usize,
        ch: char,
    },
    #[error(
        "credit code `{code}`: positions 3-8 must be the digits of an administrative division code"
    )]
    Division { code: String },
    #[error("credit code `{code}`: check character is `{found}`, expected `{expected}`")]
    Check {
        code: String,
        found: char,
        expected: char,
    },
}

/// A validated unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

fn value_of(ch: u8) -> Option<u32> {
    ALPHABET.iter().position(|&c| c == ch).map(|p| p as u32)
}

/// The check character for the first 17 characters, or `None` when one of them
/// is outside the alphabet.
pub fn check_character(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (b, w) in bytes.iter().zip(WEIGHTS) {
        sum += value_of(*b)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(ALPHABET[check as usize] as char)
}

impl CreditCode {
    /// Validates `code` (surrounding whitespace ignored, letters must be capitals).
    pub fn parse(code: &str) -> Result<Self, CreditCodeError> {
        let code = code.trim();
        let len = code.chars().count();
        if len != 18 {
            return Err(CreditCodeError::Length {
                code: code.to_owned(),
                len,
            });
        }
        for (i, ch) in code.chars().enumerate() {
            if !ch.is_ascii() || value_of(ch as u8).is_none() {
                return Err(CreditCodeError::Character {
                    code: code.to_owned(),
                    position: i + 1,
                    ch,
                });
            }
        }
        if !code.as_bytes()[2..8].iter().all(u8::is_ascii_digit) {
            return Err(CreditCodeError::Division {
                code: code.to_owned(),
            });
        }
        let expected = check_character(&code[..17]).expect("alphabet checked above");
        let found = code.as_bytes()[17] as char;
        if found != expected {
            return Err(CreditCodeError::Check {
                code: code.to_owned(),
                found,
                expected,
            });
        }
        Ok(Self(code.to_owned()))
    }

    /// Builds a valid code from a 17-character body by appending its check
    /// character. Used by the simulator to mint codes for generated plants.
    pub fn from_body(body17: &str) -> Result<Self, CreditCodeError> {
        match check_character(body17) {
            Some(c) => Self::parse(&format!("{body17}{c}")),
            None => Self::parse(body17),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit administrative division code (positions 3-8).
    pub fn division(&self) -> &str {
        &self.0[2..8]
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CreditCode {
    type Err = CreditCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CreditCode {
    type Error = CreditCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CreditCode> for String {
    fn from(c: CreditCode) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Published examples of real codes (business licences shown on public sites).
    const VALID: &[&str] = &[
        "91350100M000100Y43",
        "91110000600037341L",
        "914403001922038216",
    ];

    #[test]
    fn published_codes_are_valid() {
        for code in VALID {
            CreditCode::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            CreditCode::parse("9135"),
            Err(CreditCodeError::Length { len: 4, .. })
        ));
        assert!(matches!(
            CreditCode::parse("91350100M000100I43"),
            Err(CreditCodeError::Character {
                position: 16,
                ch: 'I',
                ..
            })
        ));
        assert!(matches!(
            CreditCode::parse("91350100M000100Y44"),
            Err(CreditCodeError::Check {
                found: '4',
                expected: '3',
                ..
            })
        ));
        let msg = CreditCode::parse("91350100M000100Y44")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("91350100M000100Y44") && msg.contains("check character"),
            "{msg}"
        );
    }

    #[test]
    fn from_body_appends_the_check_character() {
        assert_eq!(
            CreditCode::from_body("91350100M000100Y4").unwrap().as_str(),
            "91350100M000100Y43"
        );
    }

    proptest! {
        /// Changing any one character of a valid code to any other allowed
        /// character is always detected (the weights are units mod 31).
        #[test]
        fn any_single_change_is_rejected(which in 0usize..3, pos in 0usize..18, rep in 0usize..31) {
            let code = VALID[which];
            let mut bytes = code.as_bytes().to_vec();
            prop_assume!(bytes[pos] != ALPHABET[rep]);
            bytes[pos] = ALPHABET[rep];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(CreditCode::parse(&changed).is_err(), "{changed} accepted");
        }
    }
}
