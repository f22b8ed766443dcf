//! RFC 8291 message encryption for Web Push (`Content-Encoding: aes128gcm`, RFC 8188), on
//! `ring`.
//!
//! web-push 0.11 encrypts through the `ece` crate, whose only backend is OpenSSL; with
//! OpenSSL 3 it rebuilds `EVP_PKEY` objects (key generation, peer-key import and checks) for
//! every message, about 320 µs of CPU each on our CI machine, which capped the dispatcher
//! near 3,000 pushes/s on two cores. `ece` cannot take another backend while web-push
//! enables its OpenSSL one, so we encrypt here and hand web-push a ready
//! [`web_push::WebPushPayload`]; web-push still does the HTTP and the response handling.
//! ring does the same P-256 arithmetic (BoringSSL's) without the key-object overhead.
//!
//! Every message gets a fresh ephemeral key pair and a fresh random salt, so no two
//! messages share a content key or nonce. The payload is one record: plaintext, the
//! last-record delimiter 0x02, no padding.
//!
//! A [`KeyStock`] makes key pairs, and the key agreements of the pushes foreseen, ahead,
//! on a thread that runs only when the machine has nothing else to do; each is still used
//! for one message only, and when the stock has none a message makes its own.

use super::stock::{key_pair, KeyStock};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{agree_ephemeral, UnparsedPublicKey, ECDH_P256};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The largest plaintext we send; what the big push services accept (as web-push enforces).
pub const MAX_PAYLOAD: usize = 3052;

/// Record size written in the header: one record holds the whole message.
const RECORD_SIZE: u32 = 4096;

/// Why a message could not be encrypted for a subscription.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    #[error("the subscription's p256dh key is not an uncompressed P-256 point (65 bytes, 0x04…)")]
    BadPublicKey,
    #[error("the subscription's auth secret must be 16 bytes, got {0}")]
    BadAuthSecret(usize),
    #[error("push payload is {0} bytes; at most {MAX_PAYLOAD} can be sent")]
    TooLarge(usize),
    #[error("the system random number generator failed")]
    Random,
}

/// Encrypts `plaintext` for the user agent whose public key is `ua_public` (65 bytes,
/// uncompressed) and whose auth secret is `auth` (16 bytes). Returns the request body:
/// the RFC 8188 header (salt, record size, our ephemeral public key) then the record.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EceError> {
    encrypt_with(None, ua_public, auth, plaintext)
}

/// As [`encrypt`], with an agreement made ahead for this phone, or else a key pair made
/// ahead, when `stock` has one.
pub fn encrypt_with(
    stock: Option<&KeyStock>,
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EceError> {
    if ua_public.len() != 65 || ua_public[0] != 0x04 {
        return Err(EceError::BadPublicKey);
    }
    if auth.len() != 16 {
        return Err(EceError::BadAuthSecret(auth.len()));
    }
    if plaintext.len() > MAX_PAYLOAD {
        return Err(EceError::TooLarge(plaintext.len()));
    }
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| EceError::Random)?;
    if let Some(agreed) = stock.and_then(|s| s.take_agreed(ua_public)) {
        let (as_public, secret) = (agreed.as_public, agreed.secret);
        return Ok(seal(&secret, &as_public, ua_public, auth, &salt, plaintext));
    }
    let (private, as_public) = match stock.and_then(KeyStock::take) {
        Some(pair) => pair,
        None => key_pair(&rng).ok_or(EceError::Random)?,
    };
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    agree_ephemeral(private, &peer, |ecdh_secret| {
        seal(
            ecdh_secret,
            as_public.as_ref(),
            ua_public,
            auth,
            &salt,
            plaintext,
        )
    })
    // ring refuses a point that is not on the curve.
    .map_err(|_| EceError::BadPublicKey)
}

/// Output length for ring's HKDF-Expand.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(info, Len(N))
        .and_then(|okm| okm.fill(&mut out))
        // Only fails for lengths over 255 × 32 bytes; ours are 12, 16 and 32.
        .expect("HKDF-SHA-256 output of at most 32 bytes");
    out
}

/// The deterministic part of RFC 8291 §3.3–§3.4 and RFC 8188 §2, given the key agreement's
/// result: derives the content key and nonce and writes header and record.
fn seal(
    ecdh_secret: &[u8],
    as_public: &[u8],
    ua_public: &[u8],
    auth: &[u8],
    salt: &[u8; 16],
    plaintext: &[u8],
) -> Vec<u8> {
    // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    let ikm: [u8; 32] = hkdf(
        auth,
        ecdh_secret,
        &[b"WebPush: info\0", ua_public, as_public],
    );
    let cek: [u8; 16] = hkdf(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"]);
    let nonce: [u8; 12] = hkdf(salt, &ikm, &[b"Content-Encoding: nonce\0"]);

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + plaintext.len() + 1 + 16);
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    let header = body.len();

    let mut record = Vec::with_capacity(plaintext.len() + 1 + 16);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).expect("a 16-byte AES key"));
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut record,
    )
    .expect("a record far below AES-GCM's length limit");
    body.extend_from_slice(&record);
    debug_assert_eq!(body.len(), header + plaintext.len() + 17);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8291 Appendix A: with the example's keys, salt and ECDH result, the body is
    /// byte for byte the one the RFC gives.
    #[test]
    fn matches_rfc_8291_example() {
        let as_public = hex("04fe33f4ab0dea71914db55823f73b54948f41306d920732dbb9a59a53286482200e597a7b7bc260ba1c227998580992e93973002f3012a28ae8f06bbb78e5ec0f");
        let ua_public = hex("042571b2becdfde360551aaf1ed0f4cd366c11cebe555f89bcb7b186a53339173168ece2ebe018597bd30479b86e3c8f8eced577ca59187e9246990db682008b0e");
        // The key agreement, worked out independently (RustCrypto's p256) from the RFC's
        // application server private key.
        let as_private = hex("c9f58f89813e9f8e872e71f42aa64e1757c9254dcc62b72ddc010bb4043ea11c");
        let ecdh = p256::ecdh::diffie_hellman(
            p256::SecretKey::from_slice(&as_private)
                .unwrap()
                .to_nonzero_scalar(),
            p256::PublicKey::from_sec1_bytes(&ua_public)
                .unwrap()
                .as_affine(),
        );
        let ecdh = ecdh.raw_secret_bytes().to_vec();
        let auth = hex("05305932a1c7eabe13b6cec9fda48882");
        let salt: [u8; 16] = hex("0c6bfaadad67958803092d454676f397").try_into().unwrap();
        let expected = hex("0c6bfaadad67958803092d454676f397000010004104fe33f4ab0dea71914db55823f73b54948f41306d920732dbb9a59a53286482200e597a7b7bc260ba1c227998580992e93973002f3012a28ae8f06bbb78e5ec0ff297de5b429bba7153d3a4ae0caa091fd425f3b4b5414add8ab37a19c1bbb05cf5cb5b2a2e0562d558635641ec52812c6c8ff42e95ccb86be7cd");
        let body = seal(
            &ecdh,
            &as_public,
            &ua_public,
            &auth,
            &salt,
            b"When I grow up, I want to be a watermelon",
        );
        assert_eq!(body, expected);
    }

    /// A message encrypted here decrypts with the `ece` crate (OpenSSL), as a browser would.
    #[test]
    fn decrypts_with_an_independent_implementation() {
        let (keys, auth) = ::ece::generate_keypair_and_auth_secret().unwrap();
        let components = keys.raw_components().unwrap();
        let message = b"{\"title\":\"Stat task, Ward 5 bed 3\"}";
        let body = encrypt(components.public_key(), &auth, message).unwrap();
        assert_eq!(::ece::decrypt(&components, &auth, &body).unwrap(), message);
        // A fresh salt and key each time: the same message never encrypts the same way.
        assert_ne!(
            body,
            encrypt(components.public_key(), &auth, message).unwrap()
        );
    }

    /// A stock fills to its size; its pairs encrypt messages that decrypt, each with a key
    /// of its own; taken empty, a message still goes, with a pair made for it.
    #[test]
    fn stocked_key_pairs_are_used_once_each() {
        let stock = KeyStock::new(8);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stock.len() < 8 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(stock.len(), 8);
        let (keys, auth) = ::ece::generate_keypair_and_auth_secret().unwrap();
        let components = keys.raw_components().unwrap();
        let mut senders_keys = std::collections::HashSet::new();
        for i in 0..20 {
            let message = format!("message {i}");
            let body = encrypt_with(
                Some(&stock),
                components.public_key(),
                &auth,
                message.as_bytes(),
            )
            .unwrap();
            assert_eq!(
                ::ece::decrypt(&components, &auth, &body).unwrap(),
                message.as_bytes()
            );
            // The header's key id: the sender's public key for this message.
            assert!(
                senders_keys.insert(body[21..86].to_vec()),
                "a key pair was used twice"
            );
        }
        drop(stock);
    }

    #[test]
    fn refuses_bad_keys_and_oversized_payloads() {
        let (keys, auth) = ::ece::generate_keypair_and_auth_secret().unwrap();
        let public = keys.raw_components().unwrap().public_key().to_vec();
        assert_eq!(
            encrypt(&public[1..], &auth, b"x"),
            Err(EceError::BadPublicKey)
        );
        let mut off_curve = public.clone();
        off_curve[64] ^= 1;
        assert_eq!(
            encrypt(&off_curve, &auth, b"x"),
            Err(EceError::BadPublicKey)
        );
        assert_eq!(
            encrypt(&public, &auth[..15], b"x"),
            Err(EceError::BadAuthSecret(15))
        );
        assert_eq!(
            encrypt(&public, &auth, &[0u8; MAX_PAYLOAD + 1]),
            Err(EceError::TooLarge(MAX_PAYLOAD + 1))
        );
        assert!(encrypt(&public, &auth, &[0u8; MAX_PAYLOAD]).is_ok());
    }
}
