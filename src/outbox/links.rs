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

#[cfg(test)]
mod tests {
    use super::*;

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
