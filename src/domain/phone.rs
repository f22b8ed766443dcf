//! Mobile numbers for text messages: kept in E.164 (`+447700900123`). A UK number must be a
//! mobile (07…), since a text to a landline goes nowhere.

/// A number as given by a person (spaces, dashes, brackets, a leading 0 or 0044 allowed),
/// in E.164, or why it cannot be texted.
pub fn parse_mobile(given: &str) -> Result<String, String> {
    let compact: String = given
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let international = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest.to_string()
    } else if let Some(rest) = compact.strip_prefix('0') {
        format!("44{rest}")
    } else {
        return Err(format!(
            "mobile number {given:?} is not valid: give a UK mobile such as 07700 900123, or an international number starting with +"
        ));
    };
    if !international.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "mobile number {given:?} is not valid: only digits, spaces and a leading + are allowed"
        ));
    }
    if let Some(national) = international.strip_prefix("44") {
        if national.len() != 10 || !national.starts_with('7') {
            return Err(format!(
                "mobile number {given:?} is not a UK mobile: a UK mobile has 11 digits starting 07 (or +44 7 and 9 more digits)"
            ));
        }
    } else if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err(format!(
            "mobile number {given:?} is not valid: an international number has a country code and 8 to 15 digits in all"
        ));
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::parse_mobile;

    #[test]
    fn uk_mobiles_in_any_usual_form_become_e164() {
        for given in [
            "07700 900123",
            "07700-900-123",
            "+44 7700 900123",
            "0044 7700 900123",
            "+447700900123",
        ] {
            assert_eq!(
                parse_mobile(given).as_deref(),
                Ok("+447700900123"),
                "{given}"
            );
        }
        assert_eq!(
            parse_mobile("+33 6 12 34 56 78").as_deref(),
            Ok("+33612345678")
        );
    }

    #[test]
    fn landlines_short_numbers_and_letters_are_refused_with_the_reason() {
        let why = |s| parse_mobile(s).unwrap_err();
        assert!(why("020 7946 0000").contains("not a UK mobile"));
        assert!(why("07700 90012").contains("not a UK mobile"));
        assert!(why("7700900123").contains("07700 900123"));
        assert!(why("07700 9OO123").contains("only digits"));
        assert!(why("+1 234").contains("8 to 15 digits"));
    }
}
