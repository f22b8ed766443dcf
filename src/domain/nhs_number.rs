//! NHS numbers: ten digits, the last a modulus-11 check digit.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsNumber(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("an NHS number has exactly 10 digits (spaces allowed), got {0} digits")]
    WrongLength(usize),
    #[error("an NHS number holds only digits and spaces")]
    NotDigits,
    #[error("the check digit does not match: this is not a valid NHS number (typo?)")]
    BadCheckDigit,
}

impl NhsNumber {
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let trimmed: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if !trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(NhsNumberError::NotDigits);
        }
        if trimmed.len() != 10 {
            return Err(NhsNumberError::WrongLength(trimmed.len()));
        }
        let digits: Vec<u32> = trimmed.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = digits[..9]
            .iter()
            .enumerate()
            .map(|(i, d)| d * (10 - i as u32))
            .sum();
        let check = match 11 - (sum % 11) {
            11 => 0,
            10 => return Err(NhsNumberError::BadCheckDigit),
            c => c,
        };
        if check != digits[9] {
            return Err(NhsNumberError::BadCheckDigit);
        }
        Ok(Self(trimmed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_test_range_numbers_with_valid_check_digit() {
        assert_eq!(
            NhsNumber::parse("9990000018").unwrap().as_str(),
            "9990000018"
        );
        assert_eq!(
            NhsNumber::parse("999 000 0026").unwrap().as_str(),
            "9990000026"
        );
    }

    #[test]
    fn rejects_wrong_check_digit_length_and_letters() {
        assert_eq!(
            NhsNumber::parse("9990000019"),
            Err(NhsNumberError::BadCheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("999000001"),
            Err(NhsNumberError::WrongLength(9))
        );
        assert_eq!(
            NhsNumber::parse("99900000A8"),
            Err(NhsNumberError::NotDigits)
        );
    }
}
