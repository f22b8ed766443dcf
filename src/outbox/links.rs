//! One-click acknowledge links: signed, expiring, and (with `used_ack_links`) single-use.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a link lets its holder do: acknowledge one task, as one person, until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckClaim {
    /// The notification the link was sent in; a link works once.
    pub n: String,
    pub task: String,
    pub staff: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this acknowledge link is damaged or was not made by this service")]
    Invalid,
    #[error("this acknowledge link has expired; open Bleepless to acknowledge")]
    Expired,
}

#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac
    }

    pub fn sign(&self, claim: &AckClaim) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AckClaim, LinkError> {
        let (body, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| LinkError::Invalid)?;
        self.mac(body.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| LinkError::Invalid)?;
        let claim: AckClaim = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
        if claim.exp < now.timestamp() {
            return Err(LinkError::Expired);
        }
        Ok(claim)
    }
}

/// What a short code stands for: its purpose is part of what is signed, so a code made for
/// one use does not work for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A text message's acknowledge link: one outbox row.
    Ack,
    /// A phone's report that it showed a push: one outbox row and one device.
    Receipt,
    /// The secret address of one person's rota as a calendar feed.
    StaffCalendar,
    /// The secret address of one role's rota as a calendar feed.
    RoleCalendar,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Ack => b"ack",
            Purpose::Receipt => b"receipt",
            Purpose::StaffCalendar => b"calendar-staff",
            Purpose::RoleCalendar => b"calendar-role",
        }
    }
}

/// Bytes of the MAC a short code carries: 96 bits, beyond guessing.
const SHORT_TAG: usize = 12;

impl LinkSigner {
    /// A short code standing for the given ids (UUIDs), signed for `purpose`: 38 characters
    /// for one id, short enough for a text message. `None` if an id is not a UUID.
    pub fn seal(&self, purpose: Purpose, ids: &[&str]) -> Option<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 16 + SHORT_TAG);
        for id in ids {
            bytes.extend_from_slice(uuid::Uuid::parse_str(id).ok()?.as_bytes());
        }
        let mut mac = self.mac(purpose.label());
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes()[..SHORT_TAG]);
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The `n` ids a short code made by [`LinkSigner::seal`] for `purpose` stands for.
    pub fn open(&self, purpose: Purpose, code: &str, n: usize) -> Result<Vec<String>, LinkError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(code)
            .map_err(|_| LinkError::Invalid)?;
        if bytes.len() != n * 16 + SHORT_TAG {
            return Err(LinkError::Invalid);
        }
        let (ids, tag) = bytes.split_at(n * 16);
        let mut mac = self.mac(purpose.label());
        mac.update(ids);
        mac.verify_truncated_left(tag)
            .map_err(|_| LinkError::Invalid)?;
        Ok(ids
            .chunks(16)
            .map(|c| uuid::Uuid::from_slice(c).unwrap_or_default().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_code_opens_only_for_its_purpose_and_only_untouched() {
        let s = LinkSigner::new(b"secret");
        let (row, device) = (crate::store::new_id(), crate::store::new_id());
        let code = s.seal(Purpose::Ack, &[&row]).unwrap();
        assert_eq!(code.len(), 38);
        assert_eq!(s.open(Purpose::Ack, &code, 1), Ok(vec![row.clone()]));
        assert_eq!(s.open(Purpose::Receipt, &code, 1), Err(LinkError::Invalid));
        assert_eq!(
            LinkSigner::new(b"other").open(Purpose::Ack, &code, 1),
            Err(LinkError::Invalid)
        );
        let mut bad = code.clone().into_bytes();
        bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(s.open(Purpose::Ack, &bad, 1), Err(LinkError::Invalid));
        let both = s.seal(Purpose::Receipt, &[&row, &device]).unwrap();
        assert_eq!(s.open(Purpose::Receipt, &both, 2), Ok(vec![row, device]));
        assert_eq!(s.seal(Purpose::Ack, &["not-a-uuid"]), None);
    }

    #[test]
    fn a_link_verifies_until_it_expires_and_not_after_tampering() {
        let s = LinkSigner::new(b"secret");
        let now = Utc::now();
        let claim = AckClaim {
            n: "n1".into(),
            task: "t1".into(),
            staff: "s1".into(),
            exp: now.timestamp() + 60,
        };
        let token = s.sign(&claim);
        assert_eq!(s.verify(&token, now), Ok(claim.clone()));
        assert_eq!(
            s.verify(&token, now + chrono::Duration::seconds(61)),
            Err(LinkError::Expired)
        );
        let forged = LinkSigner::new(b"other").sign(&claim);
        assert_eq!(s.verify(&forged, now), Err(LinkError::Invalid));
        let mut bad = token.clone();
        bad.insert(3, 'x');
        assert_eq!(s.verify(&bad, now), Err(LinkError::Invalid));
    }
}
